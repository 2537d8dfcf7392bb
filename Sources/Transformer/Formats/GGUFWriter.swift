import Foundation
import Tokenize

// GGUF v3 writer, laid out as ggml's gguf.cpp and gguf-py's GGUFWriter write it:
//   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv,
//   n_kv × (string key, u32 type, value), n_tensors × (string name, u32 n_dims, u64 ne[n_dims],
//   u32 ggml type, u64 offset relative to the data section),
//   zero padding to `general.alignment` (default 32), then each tensor's bytes, each padded to
//   the alignment (gguf-py pads after the last one too; checked against its output byte for byte).
// Strings are u64 length + UTF-8 without terminator; arrays are u32 element type, u64 count, elements.

/// One metadata entry to write: the value and the stored type it is written as.
public struct GGUFMetadataItem: Sendable {
    public var key: String
    public var value: GGUFValue
    public var tag: GGUFTypeTag
    public init(_ key: String, _ value: GGUFValue, as tag: GGUFTypeTag) { self.key = key; self.value = value; self.tag = tag }
}

/// One tensor to write: ggml `ne` (fastest-varying first, i.e. the HF shape reversed) and the encoded blocks.
public struct GGUFTensorRecord: Sendable {
    public var name: String
    public var dims: [Int]
    public var type: GGMLType
    public var data: [UInt8]
    public init(name: String, dims: [Int], type: GGMLType, data: [UInt8]) {
        self.name = name; self.dims = dims; self.type = type; self.data = data
    }
}

public enum GGUFWriterError: Error, LocalizedError, Equatable {
    case badTensor(name: String, reason: String)
    case badValue(key: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .badTensor(let n, let r): return "GGUF output: tensor '\(QuotedName.safe(n))': \(r)"
        case .badValue(let k, let r): return "GGUF output: metadata '\(QuotedName.safe(k))': \(r)"
        }
    }
}

public enum GGUFWriter {
    /// Writes a GGUF v3 file atomically (temporary sibling + rename: nothing half-written).
    /// Sizes are checked against each type's block layout before anything is written.
    public static func write(to path: String, metadata: [GGUFMetadataItem], tensors: [GGUFTensorRecord]) throws {
        let alignment = try alignmentOf(metadata)
        var names = Set<String>()
        for t in tensors {
            guard names.insert(t.name).inserted else { throw GGUFWriterError.badTensor(name: t.name, reason: "written twice") }
            guard let layout = t.type.blockLayout else { throw GGUFWriterError.badTensor(name: t.name, reason: "type \(t.type) has no known block layout") }
            guard (1...4).contains(t.dims.count), t.dims.allSatisfy({ $0 >= 1 }) else {
                throw GGUFWriterError.badTensor(name: t.name, reason: "dims \(t.dims) (1 to 4 positive dimensions)")
            }
            guard t.dims[0] % layout.elements == 0 else {
                throw GGUFWriterError.badTensor(name: t.name, reason: "row length \(t.dims[0]) is not a multiple of the \(t.type) block size \(layout.elements)")
            }
            let (n, o) = t.dims.reduce((1, false)) { acc, d in let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow) }
            guard !o, n / layout.elements * layout.bytes == t.data.count else {
                throw GGUFWriterError.badTensor(name: t.name, reason: "\(t.data.count) bytes for \(t.dims) of \(t.type)")
            }
        }
        var head = ByteWriter()
        head.bytes(Array("GGUF".utf8)); head.u32(3); head.u64(UInt64(tensors.count)); head.u64(UInt64(metadata.count))
        for item in metadata {
            head.string(item.key); head.u32(item.tag.type)
            try head.value(item.value, tag: item.tag, key: item.key)
        }
        var offset = 0
        for t in tensors {
            head.string(t.name); head.u32(UInt32(t.dims.count))
            for d in t.dims { head.u64(UInt64(d)) }
            head.u32(t.type.rawValue); head.u64(UInt64(offset))
            offset += padded(t.data.count, alignment)
        }
        head.bytes([UInt8](repeating: 0, count: padded(head.out.count, alignment) - head.out.count))
        try AtomicFile.write(to: path, allowStreams: false) { sink in
            try sink.write(head.out)
            for t in tensors {
                try sink.write(t.data)
                let pad = padded(t.data.count, alignment) - t.data.count
                if pad > 0 { try sink.write([UInt8](repeating: 0, count: pad)) }
            }
        }
    }

    static func padded(_ n: Int, _ a: Int) -> Int { (n + a - 1) / a * a }

    private static func alignmentOf(_ metadata: [GGUFMetadataItem]) throws -> Int {
        guard let item = metadata.first(where: { $0.key == "general.alignment" }) else { return 32 }
        guard let a = item.value.intValue, a > 0, a & (a - 1) == 0, a <= 1 << 20 else {
            throw GGUFWriterError.badValue(key: item.key, reason: "\(item.value) is not a power of two")
        }
        return a
    }
}

/// Little-endian byte buffer for the GGUF header.
private struct ByteWriter {
    var out = [UInt8]()
    mutating func bytes(_ b: [UInt8]) { out += b }
    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    mutating func string(_ s: String) { let u = Array(s.utf8); u64(UInt64(u.count)); out += u }

    /// One scalar of GGUF type `t` from an integer, float or bool value.
    mutating func scalar(_ v: GGUFValue, type t: UInt32, key: String) throws {
        func int() throws -> Int64 {
            switch v {
            case .int(let i): return i
            case .uint(let u): return Int64(bitPattern: u)
            case .bool(let b): return b ? 1 : 0
            default: throw GGUFWriterError.badValue(key: key, reason: "\(v) is not an integer")
            }
        }
        func real() throws -> Double {
            guard let d = v.doubleValue else { throw GGUFWriterError.badValue(key: key, reason: "\(v) is not a number") }
            return d
        }
        switch t {
        case 0, 1: u8(UInt8(truncatingIfNeeded: try int()))
        case 2, 3: u16(UInt16(truncatingIfNeeded: try int()))
        case 4, 5: u32(UInt32(truncatingIfNeeded: try int()))
        case 10, 11: u64(UInt64(bitPattern: try int()))
        case 6: u32(Float(try real()).bitPattern)
        case 12: u64(try real().bitPattern)
        case 7: u8(try int() != 0 ? 1 : 0)
        case 8:
            guard case .string(let s) = v else { throw GGUFWriterError.badValue(key: key, reason: "\(v) is not a string") }
            string(s)
        default: throw GGUFWriterError.badValue(key: key, reason: "cannot write value type \(t) as a scalar")
        }
    }

    mutating func value(_ v: GGUFValue, tag: GGUFTypeTag, key: String) throws {
        guard tag.type == 9 else { return try scalar(v, type: tag.type, key: key) }
        guard let e = tag.element, e != 9 else { throw GGUFWriterError.badValue(key: key, reason: "array without a scalar element type") }
        let items: [GGUFValue]
        switch v {
        case .intArray(let a): items = a.map { .int($0) }
        case .floatArray(let a): items = a.map { .float($0) }
        case .boolArray(let a): items = a.map { .bool($0) }
        case .stringArray(let a): items = a.map { .string($0) }
        default: throw GGUFWriterError.badValue(key: key, reason: "\(v) is not an array")
        }
        u32(e); u64(UInt64(items.count))
        for item in items { try scalar(item, type: e, key: key) }
    }
}

extension GGUFFile {
    /// Every metadata entry in file order, with its stored type (to carry a file's metadata over).
    public var metadataItems: [GGUFMetadataItem] {
        metadataKeys.compactMap { k in
            guard let v = metadata[k], let t = metadataTypes[k] else { return nil }
            return GGUFMetadataItem(k, v, as: t)
        }
    }

    /// A tensor's stored bytes, as they are in the file (nil for unknown block layouts).
    public func rawBytes(_ t: GGUFTensorInfo) -> [UInt8]? {
        guard let n = t.byteCount else { return nil }
        return Array(UnsafeRawBufferPointer(start: file.base + t.offset, count: n))
    }
}
