#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Tokenize

// MARK: - safetensors
//
// Layout: [u64 LE header length N][N bytes JSON header][data buffer]. Header
// entries: "name": {"dtype", "shape", "data_offsets": [begin, end]} relative to
// the data buffer; optional "__metadata__" (string → string). Validation
// follows safetensors' tensor.rs (`Metadata::validate`): N ≤ 100 MB, offsets
// tile the buffer contiguously from 0, size == numel × dtype size, and the
// buffer ends exactly at end of file.

public enum SafetensorsDType: String, CaseIterable, Sendable {
    case BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64
    public var size: Int {
        switch self {
        case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3: return 1
        case .I16, .U16, .F16, .BF16: return 2
        case .I32, .U32, .F32: return 4
        case .F64, .I64, .U64: return 8
        }
    }
}

public struct SafetensorsEntry: Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let begin: Int      // relative to the data buffer
    public let end: Int
    public var byteCount: Int { end - begin }
}

// MARK: - Reader

public final class SafetensorsFile {
    public let path: String
    public let metadata: [String: String]
    public let entries: [String: SafetensorsEntry]
    public let dataStart: Int
    let file: MappedFile

    public static let maxHeaderSize: UInt64 = 100_000_000

    public init(path: String) throws {
        self.path = path
        let file = try MappedFile(path: path)
        self.file = file
        guard file.size >= 8 else { throw SafetensorsError.invalidHeaderLength(file: path, length: 0, fileSize: file.size) }
        let n = file.u64(0)
        guard n <= Self.maxHeaderSize else { throw SafetensorsError.headerTooLarge(file: path, length: n) }
        guard 8 + Int(n) <= file.size else {
            throw SafetensorsError.invalidHeaderLength(file: path, length: n, fileSize: file.size)
        }
        let headerBytes = Data(file.bytes(8, Int(n)))
        guard String(data: headerBytes, encoding: .utf8) != nil else {
            throw SafetensorsError.invalidHeader(file: path, reason: "header is not valid UTF-8")
        }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerBytes) } catch {
            throw SafetensorsError.invalidHeader(file: path, reason: "header is not valid JSON")
        }
        guard let dict = json as? [String: Any] else {
            throw SafetensorsError.invalidHeader(file: path, reason: "header is not a JSON object")
        }
        var meta: [String: String] = [:]
        var entries: [String: SafetensorsEntry] = [:]
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw SafetensorsError.invalidHeader(file: path, reason: "__metadata__ is not an object")
                }
                for (k, v) in m {
                    guard let s = v as? String else {
                        throw SafetensorsError.invalidHeader(file: path, reason: "__metadata__['\(QuotedName.safe(k))'] is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any],
                  let offAny = info["data_offsets"] as? [Any], offAny.count == 2
            else { throw SafetensorsError.invalidHeader(file: path, reason: "entry '\(QuotedName.safe(name))' lacks dtype/shape/data_offsets") }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw SafetensorsError.unknownDType(file: path, tensor: name, dtype: dtypeName)
            }
            let shape = try shapeAny.map { v -> Int in
                guard let i = JSONInteger.exact(v), i >= 0 else {
                    throw SafetensorsError.invalidHeader(file: path, reason: "entry '\(QuotedName.safe(name))' has a bad shape")
                }
                return i
            }
            let offs = try offAny.map { v -> Int in
                guard let i = JSONInteger.exact(v), i >= 0 else {
                    throw SafetensorsError.invalidOffset(file: path, tensor: name, reason: "not a non-negative integer")
                }
                return i
            }
            guard offs[1] >= offs[0] else {
                throw SafetensorsError.invalidOffset(file: path, tensor: name, reason: "end \(offs[1]) < begin \(offs[0])")
            }
            var numel = 1
            for d in shape {
                let (p, o) = numel.multipliedReportingOverflow(by: d)
                guard !o else { throw SafetensorsError.invalidHeader(file: path, reason: "entry '\(QuotedName.safe(name))' shape overflows") }
                numel = p
            }
            let (need, over) = numel.multipliedReportingOverflow(by: dtype.size)
            guard !over else { throw SafetensorsError.invalidHeader(file: path, reason: "entry '\(QuotedName.safe(name))' size overflows") }
            guard need == offs[1] - offs[0] else {
                throw SafetensorsError.sizeMismatch(file: path, tensor: name, expectedBytes: need, foundBytes: offs[1] - offs[0])
            }
            entries[name] = SafetensorsEntry(name: name, dtype: dtype, shape: shape, begin: offs[0], end: offs[1])
        }
        // Offsets must tile [0, end) with no gap or overlap.
        var cursor = 0
        for e in entries.values.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard e.begin == cursor else {
                throw SafetensorsError.invalidOffset(file: path, tensor: e.name,
                    reason: e.begin < cursor ? "overlaps the previous tensor (begins at \(e.begin), previous ends at \(cursor))"
                                             : "gap before it (begins at \(e.begin), previous ends at \(cursor))")
            }
            cursor = e.end
        }
        let dataStart = 8 + Int(n)
        let (dataEnd, over) = dataStart.addingReportingOverflow(cursor)
        guard !over, dataEnd == file.size else {
            throw SafetensorsError.incompleteBuffer(file: path, dataEnd: over ? Int.max : dataEnd, fileSize: file.size)
        }
        self.metadata = meta
        self.entries = entries
        self.dataStart = dataStart
    }

    public var names: [String] { entries.keys.sorted() }

    /// Raw bytes of a tensor (zero-copy view into the mapping).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let e = entries[name] else { throw SafetensorsError.missingTensor(file: path, tensor: name) }
        return file.bytes(dataStart + e.begin, e.byteCount)
    }

    /// A floating-point tensor widened to F32. Source pages are released afterwards.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw SafetensorsError.missingTensor(file: path, tensor: name) }
        let n = e.shape.reduce(1, *)
        var out = [Float](repeating: 0, count: n)
        let src = file.base + dataStart + e.begin
        out.withUnsafeMutableBufferPointer { dst in
            switch e.dtype {
            case .F32:
                if n > 0 { memcpy(dst.baseAddress!, src, n * 4) }
                #if _endian(big)
                for i in 0..<n { dst[i] = Float(bitPattern: UInt32(littleEndian: dst[i].bitPattern)) }
                #endif
            case .F16:
                for i in 0..<n { dst[i] = halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .BF16:
                for i in 0..<n { dst[i] = bf16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .F64:
                for i in 0..<n { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
            default: break
            }
        }
        guard [.F32, .F16, .BF16, .F64].contains(e.dtype) else {
            throw SafetensorsError.notFloat(file: path, tensor: name, dtype: e.dtype.rawValue)
        }
        file.release(dataStart + e.begin, e.byteCount)
        return Tensor(shape: e.shape, data: out)
    }

    /// A U8/BOOL tensor as bytes (masks, bitmasks).
    public func bytes(_ name: String) throws -> [UInt8] {
        let raw = try rawBytes(name)
        return [UInt8](raw)
    }

    /// An integer tensor widened to Int (I32/I64/U8/U32/U64).
    public func integers(_ name: String) throws -> [Int] {
        guard let e = entries[name] else { throw SafetensorsError.missingTensor(file: path, tensor: name) }
        let raw = try rawBytes(name)
        let n = e.shape.reduce(1, *)
        switch e.dtype {
        case .U8, .BOOL: return raw.map { Int($0) }
        case .I32: return (0..<n).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .U32: return (0..<n).map { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        case .I64: return (0..<n).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        case .U64: return (0..<n).map { Int(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
        default: throw SafetensorsError.notFloat(file: path, tensor: name, dtype: e.dtype.rawValue)
        }
    }
}
