#if canImport(Glibc)
import Glibc
#endif
import Foundation

// MARK: - Writer (the reader is SafetensorsFile.swift)

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
