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
}
