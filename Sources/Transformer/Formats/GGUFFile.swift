import Foundation
import Tokenize

// GGUF reader: header, metadata, tensor infos (layout in GGUFError.swift).

public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// ggml `ne`, fastest-varying first; the row-major (HF) shape is `dims.reversed()`.
    public let dims: [Int]
    public let type: GGMLType
    /// Absolute file offset of the first byte.
    public let offset: Int
    /// nil when the type's block layout is unknown.
    public let byteCount: Int?
    public var count: Int { dims.reduce(1, *) }
    public var shape: [Int] { dims.reversed() }
}

/// What `workbench info` prints for a GGUF file.
public struct GGUFSummary: Sendable {
    public var path: String
    public var fileSize: Int
    public var version: Int
    public var tensorCount: Int
    public var metadataCount: Int
    public var alignment: Int
    public var dataOffset: Int
    public var architecture: String?
    /// ggml type name → number of tensors of that type.
    public var typeHistogram: [String: Int]
    /// "key = value" in file order, arrays summarised ("[string × 49152]").
    public var metadataLines: [String]
}

// MARK: - Reader

public final class GGUFFile {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let metadataKeys: [String]          // file order
    /// Each key's stored GGUF value type (and array element type), so a writer can carry
    /// metadata over with the same widths (GGUFValue folds every integer width into Int64).
    public let metadataTypes: [String: GGUFTypeTag]
    public let tensors: [GGUFTensorInfo]       // file order
    public let alignment: Int
    public let dataOffset: Int
    public var fileSize: Int { file.size }
    let file: MappedFile
    private let index: [String: Int]

    public init(path: String) throws {
        self.path = path
        let file = try MappedFile(path: path)
        self.file = file
        var c = GGUFCursor(file: file, pos: 0)
        guard file.size >= 4, file.u32(0) == 0x4655_4747 else { throw GGUFError.badMagic(path: path) }  // "GGUF"
        c.pos = 4
        version = try c.u32("version")
        // v1 used 32-bit counts and lengths; a big-endian file reads as 0x03000000 here.
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(path: path, version: version) }
        let nTensors = try c.u64("tensor count"), nKV = try c.u64("metadata count")
        // Real files have hundreds of each; a short file with a sane count reports `truncated` below.
        guard nKV <= 1 << 24 else { throw GGUFError.absurdCount(path: path, what: "metadata count", count: nKV) }
        guard nTensors <= 1 << 24 else { throw GGUFError.absurdCount(path: path, what: "tensor count", count: nTensors) }
        // No allocation is sized by these counts: each loop iteration below consumes at least
        // 13 (metadata) or 32 (tensor info) bytes or throws `truncated`.
        var meta = [String: GGUFValue](), keys = [String](), tags = [String: GGUFTypeTag]()
        for i in 0..<Int(nKV) {
            let key = try c.string("metadata key #\(i)")
            guard meta[key] == nil else { throw GGUFError.badKey(path: path, key: key, reason: "appears twice") }
            let t = try c.u32(key)
            // An array's element type is the next u32 (value() reads it again, bounds-checked).
            let element: UInt32? = t == 9 && file.size - c.pos >= 4 ? file.u32(c.pos) : nil
            meta[key] = try c.value(t, key: key)
            tags[key] = GGUFTypeTag(type: t, element: element)
            keys.append(key)
        }
        metadata = meta; metadataKeys = keys; metadataTypes = tags
        var align = 32
        if let v = meta["general.alignment"] {
            guard let a = v.intValue, a > 0, a & (a - 1) == 0, a <= 1 << 20 else {
                throw GGUFError.badKey(path: path, key: "general.alignment", reason: "\(v) is not a power of two")
            }
            align = a
        }
        alignment = align

        struct Raw { let name: String; let dims: [Int]; let type: GGMLType; let rel: UInt64 }
        var raws = [Raw]()
        for i in 0..<Int(nTensors) {
            let name = try c.string("tensor info #\(i)")
            let nd = try c.u32(name)
            guard nd >= 1, nd <= 4 else { throw GGUFError.badTensorInfo(path: path, tensor: name, reason: "\(nd) dimensions (1...4 allowed)") }
            var dims = [Int](), total = 1
            for _ in 0..<nd {
                let d = try c.u64(name)
                guard d >= 1, d <= 1 << 40 else { throw GGUFError.badTensorInfo(path: path, tensor: name, reason: "dimension \(d)") }
                let (p, o) = total.multipliedReportingOverflow(by: Int(d))
                guard !o, p <= 1 << 42 else { throw GGUFError.badTensorInfo(path: path, tensor: name, reason: "element count overflows") }
                dims.append(Int(d)); total = p
            }
            raws.append(Raw(name: name, dims: dims, type: GGMLType(rawValue: try c.u32(name)), rel: try c.u64(name)))
        }
        dataOffset = (c.pos + align - 1) / align * align

        var infos = [GGUFTensorInfo](), idx = [String: Int]()
        for r in raws {
            guard idx[r.name] == nil else { throw GGUFError.badTensorInfo(path: path, tensor: r.name, reason: "duplicate name") }
            guard r.rel % UInt64(align) == 0, r.rel <= UInt64(file.size) else {
                throw GGUFError.badTensorInfo(path: path, tensor: r.name, reason: "offset \(r.rel) is unaligned or past the end")
            }
            let start = dataOffset + Int(r.rel)
            var bytes: Int?
            if let (be, bb) = r.type.blockLayout.map({ ($0.elements, $0.bytes) }) {
                guard r.dims[0] % be == 0 else {
                    throw GGUFError.badTensorInfo(path: path, tensor: r.name, reason: "row length \(r.dims[0]) is not a multiple of the \(r.type) block size \(be)")
                }
                let n = r.dims.reduce(1, *) / be * bb
                guard start + n <= file.size else {
                    throw GGUFError.tensorOutOfRange(path: path, tensor: r.name, end: start + n, fileSize: file.size)
                }
                bytes = n
            }
            idx[r.name] = infos.count
            infos.append(GGUFTensorInfo(name: r.name, dims: r.dims, type: r.type, offset: start, byteCount: bytes))
        }
        tensors = infos; index = idx
    }

    public func tensor(named name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }
    public var architecture: String? { string("general.architecture") }
    public func string(_ key: String) -> String? { if case .string(let s)? = metadata[key] { return s }; return nil }
    public func strings(_ key: String) -> [String]? { if case .stringArray(let a)? = metadata[key] { return a }; return nil }
    public func bool(_ key: String) -> Bool? { if case .bool(let b)? = metadata[key] { return b }; return nil }

    /// An integer key; present-but-not-an-integer (e.g. a per-layer array) is an error, absent is nil.
    public func int(_ key: String) throws -> Int? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.intValue else { throw GGUFError.badKey(path: path, key: key, reason: "expected an integer, found \(v)") }
        return i
    }
    public func double(_ key: String) throws -> Double? {
        guard let v = metadata[key] else { return nil }
        guard let d = v.doubleValue else { throw GGUFError.badKey(path: path, key: key, reason: "expected a number, found \(v)") }
        return d
    }

    /// BOS/EOS ids and `tokenizer.ggml.add_bos_token` (SmolLM2 says false), for the tokenizer factory.
    public var tokenizerHints: TokenizerHints {
        TokenizerHints(bosId: metadata["tokenizer.ggml.bos_token_id"]?.intValue,
                       eosId: metadata["tokenizer.ggml.eos_token_id"]?.intValue,
                       addBOS: bool("tokenizer.ggml.add_bos_token"))
    }

    public var summary: GGUFSummary {
        var hist = [String: Int]()
        for t in tensors { hist[t.type.name, default: 0] += 1 }
        return GGUFSummary(path: path, fileSize: file.size, version: Int(version), tensorCount: tensors.count,
                           metadataCount: metadataKeys.count, alignment: alignment, dataOffset: dataOffset,
                           architecture: architecture, typeHistogram: hist,
                           metadataLines: metadataKeys.map { "\($0) = \(metadata[$0].map { "\($0)" } ?? "")" })
    }

    /// Dequantize one tensor to F32 (ggml element order, i.e. row-major in the HF shape) and
    /// drop its source pages. Large tensors are split across cores by whole blocks.
    public func dequantize(_ t: GGUFTensorInfo) throws -> [Float] {
        guard t.type.canDequantize, let bytes = t.byteCount, let (be, bb) = t.type.blockLayout.map({ ($0.elements, $0.bytes) }) else {
            throw GGUFError.unsupportedTensorType(path: path, tensor: t.name, type: t.type.name)
        }
        let n = t.count, nBlocks = n / be
        let src = file.base + t.offset
        let out = [Float](unsafeUninitializedCapacity: n) { buf, initialized in
            guard let dst = buf.baseAddress else { initialized = 0; return }
            let chunks = n >= 1 << 18 ? min(ProcessInfo.processInfo.activeProcessorCount, 8) : 1
            let per = (nBlocks + chunks - 1) / chunks
            DispatchQueue.concurrentPerform(iterations: chunks) { i in
                let b0 = i * per, b1 = min(nBlocks, b0 + per)
                if b1 > b0 { ggmlDequantize(src + b0 * bb, type: t.type, blocks: b1 - b0, into: dst + b0 * be) }
            }
            initialized = n
        }
        file.release(t.offset, bytes)
        return out
    }
}
