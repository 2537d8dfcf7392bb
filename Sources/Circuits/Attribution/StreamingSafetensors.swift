import Foundation
import Transformer

// MARK: - Streaming safetensors writer
//
// Relevance files hold one F32 tensor per decoder weight: for SmolLM2 that is
// ~420 MB. `Safetensors.write` needs every tensor as a [UInt8] copy plus the
// serialized file in memory (3× the payload), so checkpoints here are written
// by streaming each tensor in 4 MB chunks through `AtomicFile` (temporary
// sibling, fsync, POSIX rename), byte-identical to `Safetensors.serialize`
// (same ordering, header and padding; tested) apart from the data checksum
// relevance files and checkpoints carry in their metadata.

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

    /// The values as F32, as the file would hold them after reading back (F64 narrowed).
    func values() -> [Float] {
        switch payload {
        case .f32(let v): return v
        case .f64(let v): return v.map { Float($0) }
        case .computed(let n, let fill):
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer { if n > 0 { fill(0..<n, $0.baseAddress!) } }
            return out
        }
    }
}

public enum StreamingSafetensors {
    static let chunk = 1 << 20   // elements per computed piece

    /// Writes `tensors` atomically to `path` (temp sibling → fsync → rename) via
    /// `Safetensors.writeStreaming`: same bytes as `Safetensors.serialize`, plus, with `checksum`,
    /// the sha256 of the tensor data in the metadata. `allowStreams: false` refuses a device or
    /// FIFO at `path` (checkpoints must be files that can be read back).
    public static func write(_ tensors: [OutTensor], metadata: [String: String]?, checksum: Bool = false,
                             allowStreams: Bool = true, to path: String) throws {
        for t in tensors { precondition(t.count == t.shape.reduce(1, *), "\(t.name): shape \(t.shape) vs \(t.count) values") }
        try Safetensors.writeStreaming(tensors.map(\.streamed), metadata: metadata, checksum: checksum, allowStreams: allowStreams, to: path)
    }
}

extension OutTensor {
    var streamed: StreamedTensor {
        switch payload {
        case .f32(let v): return StreamedTensor(name: name, floats: v, shape: shape)
        case .f64(let v): return StreamedTensor(name: name, doubles: v, shape: shape)
        case .computed(let n, let fill):
            return StreamedTensor(name: name, dtype: .F32, shape: shape, byteCount: n * 4) { sink in
                var buf = [Float](repeating: 0, count: StreamingSafetensors.chunk)
                var lo = 0
                while lo < n {
                    let hi = min(n, lo + StreamingSafetensors.chunk)
                    try buf.withUnsafeMutableBufferPointer { b in
                        fill(lo..<hi, b.baseAddress!)
                        try StreamedTensor.write(UnsafeRawBufferPointer(start: b.baseAddress, count: (hi - lo) * 4), sink)
                    }
                    lo = hi
                }
            }
        }
    }
}

// MARK: - Reading running sums back

/// Where restored running sums come from: a checkpoint or shard part (`SafetensorsFile`), or sums
/// added up from several parts (`SumTable`).
protocol SumSource {
    /// The F64 sums stored under `name`, exactly `count` of them, bit-exact, or a typed error.
    func sums(_ name: String, count: Int) throws -> [Double]
}

extension SafetensorsFile: SumSource {
    /// An F64 tensor with exactly `count` values, bit-exact. An F32 tensor (a checkpoint of a build
    /// that summed LRP relevance in F32) is widened, which is exact.
    func sums(_ name: String, count: Int) throws -> [Double] {
        guard let e = entries[name] else { throw AttributionError.badCheckpoint(path: path, reason: "tensor '\(name)' is missing") }
        guard e.dtype == .F64 || e.dtype == .F32, e.shape.reduce(1, *) == count else {
            throw AttributionError.badCheckpoint(path: path, reason: "tensor '\(name)' is \(e.dtype.rawValue) \(e.shape), expected F64 of \(count) values")
        }
        if e.dtype == .F32 { return try tensor(name).data.map { Double($0) } }
        let raw = try rawBytes(name)
        return [Double](unsafeUninitializedCapacity: count) { buf, n in
            for i in 0..<count {
                buf[i] = Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
            }
            n = count
        }
    }
}

/// Sums held in memory (shards added up), read like a checkpoint.
struct SumTable: SumSource {
    var values: [String: [Double]]
    /// Named in errors (the parts these sums came from).
    var origin: String

    func sums(_ name: String, count: Int) throws -> [Double] {
        guard let v = values[name] else { throw AttributionError.badCheckpoint(path: origin, reason: "tensor '\(name)' is missing") }
        guard v.count == count else {
            throw AttributionError.badCheckpoint(path: origin, reason: "tensor '\(name)' has \(v.count) values, expected \(count)")
        }
        return v
    }
}
