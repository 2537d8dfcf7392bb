import Foundation
import Transformer

// Encode F32 weights into ggml's storage types, bit-exact with ggml-quants.c's reference rows
// (quantize_row_q8_0_ref / q4_0_ref / q4_1_ref, as gguf-py reproduces them; golden:
// Tests/Fixtures/goldens/ggml_blocks.gguf, recipe in tools/README.md), and decode them back
// (ggmlDequantize). With an importance per weight, the block scales (and Q4_1 minimums) are
// searched to minimise the importance-weighted squared error, as llama.cpp does with an
// importance matrix (make_qx_quants: trial inverse scales around the plain one, each refitted
// by weighted least squares). The plain reference encoding is always one of the candidates,
// so the weighted result is never worse than the plain one on the weighted error.
//
// Block layouts (32 weights): Q8_0 = f16 d, 32 × i8 (x ≈ d·q); Q4_0 = f16 d, 16 bytes of
// nibbles, q − 8 (low nibbles are weights 0–15, high 16–31); Q4_1 = f16 d, f16 m, nibbles (x ≈ d·q + m).

public enum GGMLBlockCodec {
    /// The storage types this codec writes (and the fault injector flips).
    public static let types: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_1, .q4_0]

    /// Exact storage bits per weight, block scales included (Q4_0: 18 bytes / 32 = 4.5).
    public static func bitsPerWeight(_ t: GGMLType) -> Double {
        guard let l = t.blockLayout else { return .nan }
        return Double(8 * l.bytes) / Double(l.elements)
    }

    /// Bytes for `count` weights (count a multiple of the block size).
    public static func byteCount(_ t: GGMLType, count: Int) -> Int {
        guard let l = t.blockLayout else { return 0 }
        return count / l.elements * l.bytes
    }

    /// Encodes `x` (count a multiple of the type's block size). `importance`, when given,
    /// has one non-negative value per weight and steers the block-scale search.
    public static func encode(_ x: [Float], type: GGMLType, importance: [Float]? = nil) -> [UInt8] {
        precondition(importance == nil || importance!.count == x.count)
        guard let l = type.blockLayout, x.count % l.elements == 0 else { preconditionFailure("\(x.count) weights for \(type)") }
        var out = [UInt8](repeating: 0, count: x.count / l.elements * l.bytes)
        let nBlocks = x.count / l.elements
        let imp = importance ?? []
        x.withUnsafeBufferPointer { xp in
          imp.withUnsafeBufferPointer { wp in
            out.withUnsafeMutableBytes { op in
                let src = xp.baseAddress!, dst = op.baseAddress!
                let w: UnsafePointer<Float>? = importance == nil ? nil : wp.baseAddress
                let parts = nBlocks >= 1 << 13 ? 8 : 1
                let per = (nBlocks + parts - 1) / parts
                let run = { (i: Int) in
                    let b0 = i * per, b1 = min(nBlocks, b0 + per)
                    for b in b0..<max(b0, b1) {
                        encodeBlock(src + b * l.elements, w.map { $0 + b * l.elements }, type: type, into: dst + b * l.bytes)
                    }
                }
                if parts == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: run) }
            }
          }
        }
        return out
    }

    /// Decodes `count` weights of `type` (count a multiple of the block size).
    public static func decode(_ bytes: [UInt8], type: GGMLType, count: Int) -> [Float] {
        guard let l = type.blockLayout else { return [] }
        precondition(bytes.count == count / l.elements * l.bytes)
        return [Float](unsafeUninitializedCapacity: count) { buf, n in
            bytes.withUnsafeBytes { ggmlDequantize($0.baseAddress!, type: type, blocks: count / l.elements, into: buf.baseAddress!) }
            n = count
        }
    }

    /// Σ w·(x − decode(encode(x)))² (w = 1 without importance).
    public static func weightedError(_ x: [Float], _ bytes: [UInt8], type: GGMLType, importance: [Float]? = nil) -> Double {
        let y = decode(bytes, type: type, count: x.count)
        var e = 0.0
        for i in x.indices { let d = Double(x[i] - y[i]); e += Double(importance?[i] ?? 1) * d * d }
        return e
    }

    // MARK: - One block

    static func encodeBlock(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, type: GGMLType, into o: UnsafeMutableRawPointer) {
        switch type {
        case .f32: o.storeBytes(of: x[0].bitPattern.littleEndian, as: UInt32.self)
        case .f16: o.storeBytes(of: floatToHalf(x[0]).littleEndian, as: UInt16.self)
        case .bf16: o.storeBytes(of: floatToBF16(x[0]).littleEndian, as: UInt16.self)
        case .q8_0, .q4_0:
            let plain = symmetricReferenceScale(x, type: type)
            var d = plain.d, inv = plain.inverse
            if let w { (d, inv) = searchSymmetric(x, w, type: type, plain: (d, inv)) }
            writeSymmetric(x, d: d, inverse: inv, type: type, into: o)
        case .q4_1:
            var (d, m) = q41ReferenceScale(x)
            var inv = d != 0 ? 1 / d : 0
            if let w { (d, m, inv) = searchQ41(x, w, plain: (d, m, inv)) }
            writeQ41(x, d: d, m: m, inverse: inv, into: o)
        default: preconditionFailure("GGMLBlockCodec cannot encode \(type)")
        }
    }

    /// ggml's reference scale: Q8_0 d = max|x| / 127; Q4_0 d = (signed value of largest |x|) / −8.
    static func symmetricReferenceScale(_ x: UnsafePointer<Float>, type: GGMLType) -> (d: Float, inverse: Float) {
        var amax: Float = 0, maxv: Float = 0
        for j in 0..<32 where abs(x[j]) > amax { amax = abs(x[j]); maxv = x[j] }
        let d: Float = type == .q8_0 ? amax / 127 : maxv / -8
        return (d, d != 0 ? 1 / d : 0)
    }

    static func q41ReferenceScale(_ x: UnsafePointer<Float>) -> (d: Float, m: Float) {
        var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
        for j in 0..<32 { lo = min(lo, x[j]); hi = max(hi, x[j]) }
        return ((hi - lo) / 15, lo)
    }

    /// Level for weight x under the inverse scale (ggml's rounding: roundf for Q8_0,
    /// truncation of x·id + 8.5 clamped to 0…15 for Q4_0), as the stored unsigned nibble / signed byte.
    @inline(__always)
    static func level(_ x: Float, _ inv: Float, type: GGMLType) -> Int32 {
        if type == .q8_0 {
            let v = x * inv
            return Int32(max(-128, min(127, v.rounded(.toNearestOrAwayFromZero))))
        }
        let t = x * inv
        let v = t + 8.5
        return min(15, max(0, Int32(v.rounded(.towardZero))))
    }

    static func writeSymmetric(_ x: UnsafePointer<Float>, d: Float, inverse: Float, type: GGMLType, into o: UnsafeMutableRawPointer) {
        o.storeBytes(of: floatToHalf(d).littleEndian, as: UInt16.self)
        if type == .q8_0 {
            for j in 0..<32 { o.storeBytes(of: Int8(level(x[j], inverse, type: type)), toByteOffset: 2 + j, as: Int8.self) }
        } else {
            for j in 0..<16 {
                let a = UInt8(level(x[j], inverse, type: type)), b = UInt8(level(x[j + 16], inverse, type: type))
                o.storeBytes(of: a | (b << 4), toByteOffset: 2 + j, as: UInt8.self)
            }
        }
    }

    static func writeQ41(_ x: UnsafePointer<Float>, d: Float, m: Float, inverse: Float, into o: UnsafeMutableRawPointer) {
        o.storeBytes(of: floatToHalf(d).littleEndian, as: UInt16.self)
        o.storeBytes(of: floatToHalf(m).littleEndian, toByteOffset: 2, as: UInt16.self)
        @inline(__always) func q(_ v: Float) -> UInt8 {
            let t = (v - m) * inverse
            let u = t + 0.5
            return UInt8(min(15, max(0, Int32(u.rounded(.towardZero)))))
        }
        for j in 0..<16 { o.storeBytes(of: q(x[j]) | (q(x[j + 16]) << 4), toByteOffset: 4 + j, as: UInt8.self) }
    }

    // MARK: - Importance-weighted scale search

    /// Weighted squared error of a symmetric block stored with scale d (rounded to f16 as stored).
    static func symmetricError(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, d: Float, inverse: Float, type: GGMLType) -> Double {
        let ds = halfToFloat(floatToHalf(d)), off: Int32 = type == .q8_0 ? 0 : 8
        var e = 0.0
        for j in 0..<32 {
            let y = Float(level(x[j], inverse, type: type) - off) * ds
            let r = Double(x[j] - y); e += Double(w[j]) * r * r
        }
        return e
    }

    static func searchSymmetric(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, type: GGMLType,
                                plain: (Float, Float)) -> (Float, Float) {
        var best = plain, bestErr = symmetricError(x, w, d: plain.0, inverse: plain.1, type: type)
        guard plain.0 != 0 else { return plain }
        let off: Int32 = type == .q8_0 ? 0 : 8
        let nmax: Float = type == .q8_0 ? 127 : 8
        for step in -9...9 {
            // Trial inverse scale around the plain one, then the weighted least-squares scale for those levels.
            let inv0 = plain.1 * nmax / (nmax + 0.1 * Float(step))
            var slx = 0.0, sll = 0.0
            for j in 0..<32 {
                let l = Double(level(x[j], inv0, type: type) - off)
                slx += Double(w[j]) * Double(x[j]) * l; sll += Double(w[j]) * l * l
            }
            guard sll > 0 else { continue }
            let d = Float(slx / sll)
            guard d.isFinite, d != 0, halfToFloat(floatToHalf(d)).isFinite else { continue }
            let stored = halfToFloat(floatToHalf(d))
            guard stored != 0 else { continue }
            let inv = 1 / stored
            let e = symmetricError(x, w, d: d, inverse: inv, type: type)
            if e < bestErr { bestErr = e; best = (d, inv) }
        }
        return best
    }

    static func q41Error(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, d: Float, m: Float, inverse: Float) -> Double {
        let ds = halfToFloat(floatToHalf(d)), ms = halfToFloat(floatToHalf(m))
        var e = 0.0
        for j in 0..<32 {
            let t = (x[j] - m) * inverse
            let u = t + 0.5
            let q = Float(min(15, max(0, Int32(u.rounded(.towardZero)))))
            let r = Double(x[j] - (q * ds + ms)); e += Double(w[j]) * r * r
        }
        return e
    }

    static func searchQ41(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, plain: (Float, Float, Float)) -> (Float, Float, Float) {
        var best = plain, bestErr = q41Error(x, w, d: plain.0, m: plain.1, inverse: plain.2)
        guard plain.0 != 0 else { return plain }
        for step in -9...9 {
            let d0 = plain.0 * 15 / (15 + 0.1 * Float(step)), inv0 = 1 / d0
            // Levels for this trial, then the weighted least-squares (d, m) for those levels.
            var sw = 0.0, sl = 0.0, sll = 0.0, sx = 0.0, slx = 0.0
            for j in 0..<32 {
                let l = Double(min(15, max(0, ((x[j] - plain.1) * inv0).rounded(.toNearestOrAwayFromZero))))
                let wj = Double(w[j]), xj = Double(x[j])
                sw += wj; sl += wj * l; sll += wj * l * l; sx += wj * xj; slx += wj * l * xj
            }
            let det = sw * sll - sl * sl
            guard det > 0 else { continue }
            let d = Float((sw * slx - sl * sx) / det), m = Float((sll * sx - sl * slx) / det)
            let ds = halfToFloat(floatToHalf(d)), ms = halfToFloat(floatToHalf(m))
            guard d > 0, ds.isFinite, ms.isFinite, ds != 0 else { continue }
            // Stored values are what decode sees: level with the stored scale and minimum.
            let e = q41Error(x, w, d: ds, m: ms, inverse: 1 / ds)
            if e < bestErr { bestErr = e; best = (ds, ms, 1 / ds) }
        }
        return best
    }
}
