#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Transformer

// MARK: - Streaming safetensors writer
//
// Relevance files hold one F32 tensor per decoder weight: for SmolLM2 that is
// ~420 MB. `Safetensors.write` needs every tensor as a [UInt8] copy plus the
// serialized file in memory (3× the payload), so checkpoints here are written
// by streaming each tensor in 4 MB chunks to a temporary sibling, fsync, then
// POSIX rename — the same atomic pattern as `AtomicFile`, and byte-identical to
// `Safetensors.serialize` (same ordering, header and padding; tested).

/// One tensor to write, produced without materialising a second copy.
public struct OutTensor {
    public enum Payload {
        /// Raw F32 values.
        case f32([Float])
        /// Raw F64 values (exact running sums in checkpoints).
        case f64([Double])
        /// F32 values computed on the fly: fill(range, dst) writes elements `range` to dst[0..<range.count].
        case computed(count: Int, fill: (Range<Int>, UnsafeMutablePointer<Float>) -> Void)
    }
    public var name: String
    public var shape: [Int]
    public var payload: Payload

    public init(name: String, shape: [Int], payload: Payload) { self.name = name; self.shape = shape; self.payload = payload }

    var dtype: SafetensorsDType { if case .f64 = payload { return .F64 } else { return .F32 } }
    var count: Int {
        switch payload {
        case .f32(let v): return v.count
        case .f64(let v): return v.count
        case .computed(let n, _): return n
        }
    }
    var byteCount: Int { count * dtype.size }
}

public enum StreamingSafetensors {
    static let chunk = 1 << 20   // elements per write

    /// Writes `tensors` atomically to `path` (temp sibling → fsync → rename).
    public static func write(_ tensors: [OutTensor], metadata: [String: String]?, to path: String) throws {
        for t in tensors { precondition(t.count == t.shape.reduce(1, *), "\(t.name): shape \(t.shape) vs \(t.count) values") }
        let sorted = tensors.sorted { a, b in a.dtype.size != b.dtype.size ? a.dtype.size > b.dtype.size : a.name < b.name }
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        guard FileManager.default.createFile(atPath: tmp, contents: nil), let fh = FileHandle(forWritingAtPath: tmp) else {
            throw ModelError.cannotWrite(path: path, reason: "cannot create a temporary file next to it")
        }
        do {
            try fh.write(contentsOf: header(sorted, metadata: metadata))
            var buf = [Float](repeating: 0, count: chunk)
            for t in sorted {
                switch t.payload {
                case .f32(let v):
                    try v.withUnsafeBytes { try writeChunks($0, fh) }
                case .f64(let v):
                    try v.withUnsafeBytes { try writeChunks($0, fh) }
                case .computed(let n, let fill):
                    var lo = 0
                    while lo < n {
                        let hi = min(n, lo + chunk)
                        try buf.withUnsafeMutableBufferPointer { b in
                            fill(lo..<hi, b.baseAddress!)
                            try fh.write(contentsOf: Data(bytes: b.baseAddress!, count: (hi - lo) * 4))
                        }
                        lo = hi
                    }
                }
            }
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

    static func writeChunks(_ raw: UnsafeRawBufferPointer, _ fh: FileHandle) throws {
        let step = chunk * 4
        var lo = 0
        while lo < raw.count {
            let hi = min(raw.count, lo + step)
            try fh.write(contentsOf: Data(bytes: raw.baseAddress! + lo, count: hi - lo))
            lo = hi
        }
    }

    /// The 8-byte length + JSON header exactly as `Safetensors.serialize` lays it out.
    static func header(_ sorted: [OutTensor], metadata: [String: String]?) -> Data {
        var h = "{"
        var first = true
        if let metadata {
            h += "\"__metadata__\":{" + metadata.keys.sorted().map { "\(json($0)):\(json(metadata[$0] ?? ""))" }.joined(separator: ",") + "}"
            first = false
        }
        var offset = 0
        for t in sorted {
            if !first { h += "," }
            first = false
            h += "\(json(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                + "\"data_offsets\":[\(offset),\(offset + t.byteCount)]}"
            offset += t.byteCount
        }
        h += "}"
        var bytes = Array(h.utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: bytes)
        return out
    }

    /// JSON string literal with the same escapes as the Transformer writer.
    static func json(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}

// MARK: - Reading checkpoints back

extension SafetensorsFile {
    /// An F32 tensor with exactly `count` values (checkpoint restore), or a typed error.
    func checkpointF32(_ name: String, count: Int) throws -> [Float] {
        guard let e = entries[name] else { throw AttributionError.badCheckpoint(path: path, reason: "tensor '\(name)' is missing") }
        guard e.dtype == .F32, e.shape.reduce(1, *) == count else {
            throw AttributionError.badCheckpoint(path: path, reason: "tensor '\(name)' is \(e.dtype.rawValue) \(e.shape), expected F32 of \(count) values")
        }
        return try tensor(name).data
    }

    /// An F64 tensor with exactly `count` values, bit-exact.
    func checkpointF64(_ name: String, count: Int) throws -> [Double] {
        guard let e = entries[name] else { throw AttributionError.badCheckpoint(path: path, reason: "tensor '\(name)' is missing") }
        guard e.dtype == .F64, e.shape.reduce(1, *) == count else {
            throw AttributionError.badCheckpoint(path: path, reason: "tensor '\(name)' is \(e.dtype.rawValue) \(e.shape), expected F64 of \(count) values")
        }
        let raw = try rawBytes(name)
        return (0..<count).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self))) }
    }
}
