import Foundation
import Tokenize

// MARK: - GGUF errors
//
// Layout (v2/v3, little-endian): "GGUF", u32 version, u64 tensor_count,
// u64 kv_count, kv pairs (string key, u32 type, value), tensor infos (string
// name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset relative to the
// data section), padding to `general.alignment` (default 32), tensor data.
// Every read is bounds-checked: a hostile or truncated file yields a GGUFError.

public enum GGUFError: LocalizedError, Equatable {
    case badMagic(path: String)
    case unsupportedVersion(path: String, version: UInt32)
    case truncated(path: String, what: String, offset: Int)
    case absurdCount(path: String, what: String, count: UInt64)
    case badValueType(path: String, key: String, type: UInt32)
    case badKey(path: String, key: String, reason: String)
    case missingKey(path: String, key: String)
    case badTensorInfo(path: String, tensor: String, reason: String)
    case tensorOutOfRange(path: String, tensor: String, end: Int, fileSize: Int)
    case unsupportedTensorType(path: String, tensor: String, type: String)
    case unsupportedArchitecture(path: String, architecture: String)
    case unexpectedTensor(path: String, tensor: String)

    public var errorDescription: String? {
        switch self {
        case .badMagic(let p): return "\(p): not a GGUF file (bad magic)"
        case .unsupportedVersion(let p, let v): return "\(p): unsupported GGUF version \(v) (supported: 2, 3)"
        case .truncated(let p, let w, let o): return "\(p): file is truncated while reading \(QuotedName.safe(w)) at byte \(o)"
        case .absurdCount(let p, let w, let n): return "\(p): implausible \(QuotedName.safe(w)) \(n) for the file size"
        case .badValueType(let p, let k, let t): return "\(p): metadata '\(QuotedName.safe(k))' has unknown value type \(t)"
        case .badKey(let p, let k, let r): return "\(p): metadata '\(QuotedName.safe(k))': \(r)"
        case .missingKey(let p, let k): return "\(p): required metadata '\(k)' is missing"
        case .badTensorInfo(let p, let t, let r): return "\(p): tensor '\(QuotedName.safe(t))': \(r)"
        case .tensorOutOfRange(let p, let t, let e, let s):
            return "\(p): tensor '\(QuotedName.safe(t))' data ends at byte \(e) but the file has \(s) bytes"
        case .unsupportedTensorType(let p, let t, let ty):
            return "\(p): tensor '\(QuotedName.safe(t))' has ggml type \(ty); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"
        case .unsupportedArchitecture(let p, let a): return "\(p): unsupported GGUF architecture '\(QuotedName.safe(a))' (supported: llama)"
        case .unexpectedTensor(let p, let t): return "\(p): unexpected tensor '\(QuotedName.safe(t))' for a llama model"
        }
    }
}

// MARK: - ggml types

public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0), f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2), q4_1 = GGMLType(rawValue: 3)
    public static let q8_0 = GGMLType(rawValue: 8), bf16 = GGMLType(rawValue: 30)

    private static let names: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
        11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
        19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
        27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
    ]
    // (elements per block, bytes per block) from ggml.c's type_traits; used to range-check
    // tensors even of types we cannot dequantize, so `info` works on any file.
    private static let layouts: [UInt32: (Int, Int)] = [
        0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
        10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
        24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2),
    ]

    public var name: String { Self.names[rawValue] ?? "type \(rawValue)" }
    public var description: String { name }
    /// (block elements, block bytes), nil for layouts this reader does not know.
    public var blockLayout: (elements: Int, bytes: Int)? { Self.layouts[rawValue].map { (elements: $0.0, bytes: $0.1) } }
    public var canDequantize: Bool { [0, 1, 2, 3, 8, 30].contains(rawValue) }
}

// MARK: - Metadata values

public enum GGUFValue: Equatable, Sendable, CustomStringConvertible {
    case uint(UInt64), int(Int64), float(Double), bool(Bool), string(String)
    /// Arrays are stored by element kind (all integer widths → Int64) so token tables stay cheap.
    case intArray([Int64]), floatArray([Double]), boolArray([Bool]), stringArray([String]), nestedArray([GGUFValue])

    public var intValue: Int? {
        switch self {
        case .uint(let v): return Int(exactly: v)
        case .int(let v): return Int(exactly: v)
        default: return nil
        }
    }
    public var doubleValue: Double? {
        switch self {
        case .float(let v): return v
        case .uint(let v): return Double(v)
        case .int(let v): return Double(v)
        default: return nil
        }
    }
    public var description: String {
        func list<T>(_ kind: String, _ a: [T]) -> String {
            a.count <= 8 ? "[\(a.map { "\($0)" }.joined(separator: ", "))]" : "[\(kind) × \(a.count)]"
        }
        switch self {
        case .uint(let v): return "\(v)"
        case .int(let v): return "\(v)"
        case .float(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        case .string(let s): return s.count <= 80 ? s.debugDescription : "\(String(s.prefix(77)).debugDescription)… (\(s.count) chars)"
        case .intArray(let a): return list("int", a)
        case .floatArray(let a): return list("float", a)
        case .boolArray(let a): return list("bool", a)
        case .stringArray(let a): return list("string", a.map { GGUFValue.string($0).description })
        case .nestedArray(let a): return list("array", a)
        }
    }
}

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

// MARK: - Bounds-checked cursor

private struct Cursor {
    let file: MappedFile
    var pos: Int

    mutating func take(_ n: Int, _ what: @autoclosure () -> String) throws -> Int {
        guard n >= 0, n <= file.size - pos else { throw GGUFError.truncated(path: file.path, what: what(), offset: pos) }
        defer { pos += n }
        return pos
    }
    mutating func u8(_ w: @autoclosure () -> String) throws -> UInt8 { file.u8(try take(1, w())) }
    mutating func u16(_ w: @autoclosure () -> String) throws -> UInt16 {
        UInt16(littleEndian: file.base.loadUnaligned(fromByteOffset: try take(2, w()), as: UInt16.self))
    }
    mutating func u32(_ w: @autoclosure () -> String) throws -> UInt32 { file.u32(try take(4, w())) }
    mutating func u64(_ w: @autoclosure () -> String) throws -> UInt64 { file.u64(try take(8, w())) }
    mutating func string(_ w: @autoclosure () -> String) throws -> String {
        let n = try u64(w())
        guard n <= UInt64(file.size - pos) else { throw GGUFError.truncated(path: file.path, what: w(), offset: pos) }
        let o = try take(Int(n), w())
        return String(decoding: file.bytes(o, Int(n)), as: UTF8.self)
    }
    /// Reads one value of GGUF type `t`; `depth` bounds array nesting.
    mutating func value(_ t: UInt32, key: String, depth: Int = 0) throws -> GGUFValue {
        switch t {
        case 0: return .uint(UInt64(try u8(key)))
        case 1: return .int(Int64(Int8(bitPattern: try u8(key))))
        case 2: return .uint(UInt64(try u16(key)))
        case 3: return .int(Int64(Int16(bitPattern: try u16(key))))
        case 4: return .uint(UInt64(try u32(key)))
        case 5: return .int(Int64(Int32(bitPattern: try u32(key))))
        case 6: return .float(Double(Float(bitPattern: try u32(key))))
        case 7: return .bool(try u8(key) != 0)
        case 8: return .string(try string(key))
        case 9: return try array(key: key, depth: depth)
        case 10: return .uint(try u64(key))
        case 11: return .int(Int64(bitPattern: try u64(key)))
        case 12: return .float(Double(bitPattern: try u64(key)))
        default: throw GGUFError.badValueType(path: file.path, key: key, type: t)
        }
    }
    private mutating func array(key: String, depth: Int) throws -> GGUFValue {
        let t = try u32(key), n = try u64(key)
        guard depth < 4 else { throw GGUFError.badKey(path: file.path, key: key, reason: "arrays nested too deeply") }
        // Smallest encoding of one element: a count larger than remaining bytes / that is absurd.
        let minSize: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8]
        guard let m = minSize[t] else { throw GGUFError.badValueType(path: file.path, key: key, type: t) }
        // Checked before reserveCapacity: a hostile length must not become a huge allocation.
        guard n <= 1 << 32 else { throw GGUFError.absurdCount(path: file.path, what: "array length of '\(key)'", count: n) }
        guard n <= UInt64((file.size - pos) / m) else { throw GGUFError.truncated(path: file.path, what: key, offset: pos) }
        let count = Int(n)
        switch t {
        case 8:
            var a = [String](); a.reserveCapacity(count)
            for _ in 0..<count { a.append(try string(key)) }
            return .stringArray(a)
        case 6, 12:
            var a = [Double](); a.reserveCapacity(count)
            for _ in 0..<count { if case .float(let v) = try value(t, key: key) { a.append(v) } }
            return .floatArray(a)
        case 7:
            var a = [Bool](); a.reserveCapacity(count)
            for _ in 0..<count { a.append(try u8(key) != 0) }
            return .boolArray(a)
        case 9:
            var a = [GGUFValue](); a.reserveCapacity(count)
            for _ in 0..<count { a.append(try self.array(key: key, depth: depth + 1)) }
            return .nestedArray(a)
        default:
            var a = [Int64](); a.reserveCapacity(count)
            for _ in 0..<count {
                switch try value(t, key: key) {
                case .int(let v): a.append(v)
                case .uint(let v): a.append(Int64(bitPattern: v))
                default: break
                }
            }
            return .intArray(a)
        }
    }
}

// MARK: - Reader

public final class GGUFFile {
    public let path: String
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    public let metadataKeys: [String]          // file order
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
        var c = Cursor(file: file, pos: 0)
        guard file.size >= 4, file.u32(0) == 0x4655_4747 else { throw GGUFError.badMagic(path: path) }  // "GGUF"
        c.pos = 4
        version = try c.u32("version")
        // v1 used 32-bit counts and lengths; a big-endian file reads as 0x03000000 here.
        guard version == 2 || version == 3 else { throw GGUFError.unsupportedVersion(path: path, version: version) }
        let nTensors = try c.u64("tensor count"), nKV = try c.u64("metadata count")
        // Real files have hundreds of each; a short file with a sane count reports `truncated` below.
        guard nKV <= 1 << 24 else { throw GGUFError.absurdCount(path: path, what: "metadata count", count: nKV) }
        guard nTensors <= 1 << 24 else { throw GGUFError.absurdCount(path: path, what: "tensor count", count: nTensors) }
        // Declared counts against what the file can hold, before anything is sized by them:
        // a metadata pair takes at least 13 bytes (u64 key length, u32 type, 1-byte value),
        // a tensor info at least 32 (u64 name length, u32 n_dims, one u64 dim, u32 type, u64 offset).
        guard nKV * 13 + nTensors * 32 <= UInt64(file.size - c.pos) else {
            throw GGUFError.absurdCount(path: path, what: "metadata count \(nKV) / tensor count", count: nTensors)
        }

        var meta = [String: GGUFValue](), keys = [String]()
        for i in 0..<Int(nKV) {
            let key = try c.string("metadata key #\(i)")
            guard meta[key] == nil else { throw GGUFError.badKey(path: path, key: key, reason: "appears twice") }
            meta[key] = try c.value(try c.u32(key), key: key)
            keys.append(key)
        }
        metadata = meta; metadataKeys = keys
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

// MARK: - Dequantization kernels
//
// Plain loops over raw pointers: with -Ounchecked they vectorise, and one f16
// scale conversion per 32-element block is negligible.

@inline(__always)
private func f16(_ p: UnsafeRawPointer, _ o: Int) -> Float {
    halfToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
}

/// Dequantize `blocks` consecutive blocks of `type` (block = 1 element for F32/F16/BF16).
/// Types other than F32/F16/BF16/Q8_0/Q4_0/Q4_1 are left untouched; callers check `canDequantize`.
public func ggmlDequantize(_ src: UnsafeRawPointer, type: GGMLType, blocks: Int, into dst: UnsafeMutablePointer<Float>) {
    switch type {
    case .f32:
        // GGUF and every host we build for are little-endian, so F32 is a plain copy.
        UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: blocks * 4)
    case .f16:
        for i in 0..<blocks { dst[i] = f16(src, 2 * i) }
    case .bf16:
        for i in 0..<blocks {
            dst[i] = bf16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
    case .q8_0:
        for b in 0..<blocks {
            let s = src + 34 * b, d = dst + 32 * b, scale = f16(s, 0)
            let q = (s + 2).assumingMemoryBound(to: Int8.self)
            for j in 0..<32 { d[j] = Float(q[j]) * scale }
        }
    case .q4_0:
        for b in 0..<blocks {
            let s = src + 18 * b, d = dst + 32 * b, scale = f16(s, 0)
            let q = (s + 2).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                d[j] = Float(Int32(q[j] & 0x0F) - 8) * scale
                d[j + 16] = Float(Int32(q[j] >> 4) - 8) * scale
            }
        }
    case .q4_1:
        for b in 0..<blocks {
            let s = src + 20 * b, d = dst + 32 * b, scale = f16(s, 0), m = f16(s, 2)
            let q = (s + 4).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                d[j] = Float(q[j] & 0x0F) * scale + m
                d[j + 16] = Float(q[j] >> 4) * scale + m
            }
        }
    default:
        break
    }
}
