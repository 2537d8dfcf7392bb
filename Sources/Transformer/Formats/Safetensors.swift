#if canImport(Glibc)
import Glibc
#endif
import Foundation

// MARK: - safetensors
//
// Layout: [u64 LE header length N][N bytes JSON header][data buffer]. Header
// entries: "name": {"dtype", "shape", "data_offsets": [begin, end]} relative to
// the data buffer; optional "__metadata__" (string → string). Validation
// follows safetensors' tensor.rs (`Metadata::validate`): N ≤ 100 MB, offsets
// tile the buffer contiguously from 0, size == numel × dtype size, and the
// buffer ends exactly at end of file.

public enum SafetensorsError: LocalizedError, Equatable {
    case headerTooLarge(file: String, length: UInt64)
    case invalidHeaderLength(file: String, length: UInt64, fileSize: Int)
    case invalidHeader(file: String, reason: String)
    case unknownDType(file: String, tensor: String, dtype: String)
    case invalidOffset(file: String, tensor: String, reason: String)
    case sizeMismatch(file: String, tensor: String, expectedBytes: Int, foundBytes: Int)
    case incompleteBuffer(file: String, dataEnd: Int, fileSize: Int)
    case notFloat(file: String, tensor: String, dtype: String)
    case missingTensor(file: String, tensor: String)

    public var errorDescription: String? {
        switch self {
        case .headerTooLarge(let f, let n): return "\(f): safetensors header length \(n) exceeds the 100 MB limit"
        case .invalidHeaderLength(let f, let n, let s): return "\(f): safetensors header length \(n) does not fit in a \(s)-byte file"
        case .invalidHeader(let f, let r): return "\(f): invalid safetensors header: \(r)"
        case .unknownDType(let f, let t, let d): return "\(f): tensor '\(t)' has unknown dtype '\(d)'"
        case .invalidOffset(let f, let t, let r): return "\(f): tensor '\(t)': invalid data_offsets: \(r)"
        case .sizeMismatch(let f, let t, let e, let b):
            return "\(f): tensor '\(t)' spans \(b) bytes but shape × dtype needs \(e)"
        case .incompleteBuffer(let f, let e, let s): return "\(f): tensor data ends at byte \(e) but the file has \(s) bytes"
        case .notFloat(let f, let t, let d): return "\(f): tensor '\(t)' has dtype \(d), expected a floating-point dtype"
        case .missingTensor(let f, let t): return "\(f): tensor '\(t)' is missing"
        }
    }
}

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
    private let file: MappedFile

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
                        throw SafetensorsError.invalidHeader(file: path, reason: "__metadata__['\(k)'] is not a string")
                    }
                    meta[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shapeAny = info["shape"] as? [Any],
                  let offAny = info["data_offsets"] as? [Any], offAny.count == 2
            else { throw SafetensorsError.invalidHeader(file: path, reason: "entry '\(name)' lacks dtype/shape/data_offsets") }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw SafetensorsError.unknownDType(file: path, tensor: name, dtype: dtypeName)
            }
            let shape = try shapeAny.map { v -> Int in
                guard let i = (v as? NSNumber)?.intValue, i >= 0 else {
                    throw SafetensorsError.invalidHeader(file: path, reason: "entry '\(name)' has a bad shape")
                }
                return i
            }
            let offs = try offAny.map { v -> Int in
                guard let i = (v as? NSNumber)?.intValue, i >= 0 else {
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
                guard !o else { throw SafetensorsError.invalidHeader(file: path, reason: "entry '\(name)' shape overflows") }
                numel = p
            }
            let (need, over) = numel.multipliedReportingOverflow(by: dtype.size)
            guard !over else { throw SafetensorsError.invalidHeader(file: path, reason: "entry '\(name)' size overflows") }
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

// MARK: - Writer

/// One tensor to write: raw little-endian bytes with a dtype and shape.
public struct SafetensorsRecord {
    public var name: String
    public var dtype: SafetensorsDType
    public var shape: [Int]
    public var bytes: [UInt8]

    public init(name: String, dtype: SafetensorsDType, shape: [Int], bytes: [UInt8]) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.bytes = bytes
    }

    public init(name: String, tensor: Tensor, dtype: SafetensorsDType = .F32) {
        self.name = name; self.dtype = dtype; self.shape = tensor.shape
        switch dtype {
        case .F16: bytes = tensor.data.withUnsafeBufferPointer { p in Self.pack(p.map { floatToHalf($0).littleEndian }) }
        case .BF16: bytes = tensor.data.withUnsafeBufferPointer { p in Self.pack(p.map { floatToBF16($0).littleEndian }) }
        default: bytes = tensor.data.withUnsafeBytes { [UInt8]($0) }   // F32, little-endian host
        }
    }

    public init(name: String, u8 values: [UInt8], shape: [Int]) {
        self.name = name; self.dtype = .U8; self.shape = shape; self.bytes = values
    }

    public init(name: String, i64 values: [Int], shape: [Int]) {
        self.name = name; self.dtype = .I64; self.shape = shape
        self.bytes = values.map { Int64($0).littleEndian }.withUnsafeBytes { [UInt8]($0) }
    }

    private static func pack(_ v: [UInt16]) -> [UInt8] { v.withUnsafeBytes { [UInt8]($0) } }
}

/// A tensor whose bytes are produced while the file is written, so a large
/// payload (a 0.5 GB checkpoint, a 0.4 GB relevance map) is never copied.
public struct StreamedTensor {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let byteCount: Int
    public let emit: (FileHandle) throws -> Void

    public init(name: String, dtype: SafetensorsDType, shape: [Int], byteCount: Int, emit: @escaping (FileHandle) throws -> Void) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.byteCount = byteCount; self.emit = emit
    }

    public init(record r: SafetensorsRecord) {
        let bytes = r.bytes
        self.init(name: r.name, dtype: r.dtype, shape: r.shape, byteCount: bytes.count) { fh in
            try bytes.withUnsafeBytes { try StreamedTensor.write($0, fh) }
        }
    }

    /// F32 values straight from the array (little-endian host).
    public init(name: String, floats: [Float], shape: [Int]) {
        self.init(name: name, dtype: .F32, shape: shape, byteCount: floats.count * 4) { fh in
            try floats.withUnsafeBytes { try StreamedTensor.write($0, fh) }
        }
    }

    /// F64 values straight from the array.
    public init(name: String, doubles: [Double], shape: [Int]) {
        self.init(name: name, dtype: .F64, shape: shape, byteCount: doubles.count * 8) { fh in
            try doubles.withUnsafeBytes { try StreamedTensor.write($0, fh) }
        }
    }

    /// Writes a buffer without copying it (in 64 MB pieces).
    public static func write(_ raw: UnsafeRawBufferPointer, _ fh: FileHandle) throws {
        guard let base = raw.baseAddress else { return }
        var lo = 0
        while lo < raw.count {
            let n = min(raw.count - lo, 64 << 20)
            try fh.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base + lo), count: n, deallocator: .none))
            lo += n
        }
    }
}

public enum Safetensors {
    /// safetensors' `prepare` order: descending dtype alignment, then name.
    static func ordered<T>(_ items: [T], dtype: (T) -> SafetensorsDType, name: (T) -> String) -> [T] {
        items.sorted { a, b in
            dtype(a).size != dtype(b).size ? dtype(a).size > dtype(b).size : name(a) < name(b)
        }
    }

    /// [u64 LE length][JSON header padded with spaces to a multiple of 8] for
    /// entries already in file order.
    static func header(_ entries: [(name: String, dtype: SafetensorsDType, shape: [Int], bytes: Int)],
                       metadata: [String: String]?) -> [UInt8] {
        var header = "{"
        var first = true
        if let metadata {
            header += "\"__metadata__\":{"
            header += metadata.keys.sorted().map { "\(JSONText.quote($0)):\(JSONText.quote(metadata[$0]!))" }.joined(separator: ",")
            header += "}"
            first = false
        }
        var offset = 0
        for e in entries {
            if !first { header += "," }
            first = false
            header += "\(JSONText.quote(e.name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + e.bytes)]}"
            offset += e.bytes
        }
        header += "}"
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + h.count)
        withUnsafeBytes(of: UInt64(h.count).littleEndian) { out.append(contentsOf: $0) }
        return out + h
    }

    /// Serialise to bytes exactly as safetensors' `prepare`: sort by descending
    /// dtype alignment then name, contiguous offsets, header padded with spaces
    /// to a multiple of 8.
    public static func serialize(_ records: [SafetensorsRecord], metadata: [String: String]? = nil) -> [UInt8] {
        let sorted = ordered(records, dtype: \.dtype, name: \.name)
        var out = header(sorted.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) }, metadata: metadata)
        for r in sorted { out.append(contentsOf: r.bytes) }
        return out
    }

    /// Write atomically (temp file in the same directory, then rename).
    public static func write(_ records: [SafetensorsRecord], metadata: [String: String]? = nil, to path: String) throws {
        try AtomicFile.write(Data(serialize(records, metadata: metadata)), to: path)
    }

    /// Streams tensors into `path` with the same layout as `serialize`, via a
    /// temporary sibling, fsync and POSIX rename (atomic; nothing is held twice).
    public static func writeStreaming(_ tensors: [StreamedTensor], metadata: [String: String]?, to path: String) throws {
        let sorted = ordered(tensors, dtype: \.dtype, name: \.name)
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        guard FileManager.default.createFile(atPath: tmp, contents: nil), let fh = FileHandle(forWritingAtPath: tmp) else {
            throw ModelError.cannotWrite(path: path, reason: "cannot create a temporary file next to it")
        }
        do {
            try fh.write(contentsOf: Data(header(sorted.map { ($0.name, $0.dtype, $0.shape, $0.byteCount) }, metadata: metadata)))
            for t in sorted { try t.emit(fh) }
            try fh.synchronize()
            try fh.close()
        } catch {
            try? fh.close()
            try? FileManager.default.removeItem(atPath: tmp)
            throw ModelError.cannotWrite(path: path, reason: error.localizedDescription)
        }
        if rename(tmp, path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: tmp)
            throw ModelError.cannotWrite(path: path, reason: reason)
        }
    }
}
