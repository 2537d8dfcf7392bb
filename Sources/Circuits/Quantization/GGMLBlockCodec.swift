import Foundation
import Synchronization
import Transformer

// Encode F32 weights into ggml's storage types, bit-exact with ggml-quants.c's reference rows
// (quantize_row_q8_0_ref / q4_0_ref / q4_1_ref, as gguf-py reproduces them; golden:
// Tests/Fixtures/goldens/ggml_blocks.gguf, recipe in tools/README.md), and decode them back
// (ggmlDequantize). With an importance per weight, the block scales (and Q4_1 minimums) are
// searched (GGMLScaleSearch.swift) to minimise the importance-weighted squared error, as llama.cpp does with an
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
        encodeMeasured(x, type: type, importance: importance, search: importance != nil).bytes
    }

    /// Blocks per claimed chunk of `encodeMeasured` (a chunk's error is summed alone, then chunks in order,
    /// so the total does not depend on which thread ran which chunk).
    static let chunkBlocks = 1024

    /// Encodes `x` and returns Σ w·(x − decode)² (w = `importance`, or 1 without it) measured block by
    /// block as the blocks are written, with no decoded copy. `search`: importance-weighted block scales
    /// (needs `importance`); otherwise ggml's plain reference rounding. Blocks are encoded on the shared
    /// WorkerTeam, chunks claimed from a counter (a preempted helper delays no one).
    /// `magnitude`: the importance is |x| (importance must be nil), made chunk by chunk in a small buffer per worker
    /// instead of a whole-tensor copy (the same values, so the same bytes and error as `importance: x.map(abs)`).
    public static func encodeMeasured(_ x: [Float], type: GGMLType, importance: [Float]?, magnitude: Bool = false,
                                      search: Bool) -> (bytes: [UInt8], error: Double) {
        precondition(importance == nil || importance!.count == x.count)
        precondition(!(magnitude && importance != nil), "magnitude importance is made from x")
        precondition(!search || importance != nil || magnitude, "a weighted scale search needs an importance")
        guard let l = type.blockLayout, x.count % l.elements == 0 else { preconditionFailure("\(x.count) weights for \(type)") }
        var out = [UInt8](repeating: 0, count: x.count / l.elements * l.bytes)
        let nBlocks = x.count / l.elements
        let chunks = (nBlocks + chunkBlocks - 1) / chunkBlocks
        var chunkErrors = [Double](repeating: 0, count: chunks)
        let imp = importance ?? []
        x.withUnsafeBufferPointer { xp in
          imp.withUnsafeBufferPointer { wp in
            out.withUnsafeMutableBytes { op in
              chunkErrors.withUnsafeMutableBufferPointer { ep in
                let src = xp.baseAddress!, dst = op.baseAddress!, errs = ep.baseAddress!
                let w: UnsafePointer<Float>? = importance == nil ? nil : wp.baseAddress
                let next = Atomic<Int>(0)
                let parts = chunks > 1 ? WorkerTeam.shared.helpers + 1 : 1
                WorkerTeam.shared.run(parts: parts) { _ in
                    // |x| of the current chunk (magnitude importance), reused for every chunk this worker claims.
                    let mag = magnitude ? UnsafeMutablePointer<Float>.allocate(capacity: chunkBlocks * l.elements) : nil
                    defer { mag?.deallocate() }
                    while true {
                        let c = next.add(1, ordering: .relaxed).oldValue
                        guard c < chunks else { return }
                        var e = 0.0
                        let range = (c * chunkBlocks)..<min(nBlocks, (c + 1) * chunkBlocks)
                        var w = w
                        if let mag {
                            let first = range.lowerBound * l.elements, count = range.count * l.elements
                            for i in 0..<count { mag[i] = abs(src[first + i]) }
                            // Indexed like the whole tensor's importance: only this chunk's indices are read.
                            w = UnsafePointer(mag) - first
                        }
                        if type == .f16 {
                            // F16 weight by weight without the per-block dispatch (half of a plain-rounding quantize's
                            // CPU went there): the CPU's conversion (F16C, round to nearest even) for finite values is
                            // floatToHalf's, bit for bit; the error is summed in the same order and precision.
                            for i in range {
                                let v = src[i]
                                let h = v.isFinite ? Float16(v).bitPattern : floatToHalf(v)
                                (dst + 2 * i).storeBytes(of: h.littleEndian, as: UInt16.self)
                                let r = Double(v - Float(Float16(bitPattern: h)))
                                e += Double(w?[i] ?? 1) * r * r
                            }
                            errs[c] = e
                            continue
                        }
                        if search, type == .q4_0, let w {
                            errs[c] = encodeSymmetricSearched(Q40Levels.self, src, w, blocks: range, type: type, into: dst)
                            continue
                        }
                        for b in range {
                            e += encodeBlock(src + b * l.elements, w.map { $0 + b * l.elements }, type: type, search: search,
                                             into: dst + b * l.bytes)
                        }
                        errs[c] = e
                    }
                }
              }
            }
          }
        }
        return (out, chunkErrors.reduce(0, +))
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

    /// Encodes one block (32 weights, or one scalar for f32/f16/bf16) and returns its Σ w·(x − decode)².
    static func encodeBlock(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, type: GGMLType, search: Bool,
                            into o: UnsafeMutableRawPointer) -> Double {
        @inline(__always) func scalarError(_ y: Float) -> Double { let r = Double(x[0] - y); return Double(w?[0] ?? 1) * r * r }
        switch type {
        case .f32: o.storeBytes(of: x[0].bitPattern.littleEndian, as: UInt32.self); return 0
        case .f16: let h = floatToHalf(x[0]); o.storeBytes(of: h.littleEndian, as: UInt16.self); return scalarError(halfToFloat(h))
        case .bf16: let h = floatToBF16(x[0]); o.storeBytes(of: h.littleEndian, as: UInt16.self); return scalarError(bf16ToFloat(h))
        case .q8_0, .q4_0:
            let plain = symmetricReferenceScale(x, type: type)
            var (d, inv) = plain
            var e = symmetricError(x, w, d: d, inverse: inv, type: type)
            // A block the plain scale stores exactly (e = 0: e.g. Q4_1 of a Q4_1 source) cannot be improved: the search
            // keeps the plain encoding unless it is strictly better, so skipping it changes no byte.
            if search, e > 0, let w { (d, inv, e) = searchSymmetric(x, w, type: type, plain: plain, plainError: e) }
            writeSymmetric(x, d: d, inverse: inv, type: type, into: o)
            return e
        case .q4_1:
            let (d0, m0) = q41ReferenceScale(x)
            var (d, m, inv) = (d0, m0, d0 != 0 ? 1 / d0 : 0)
            var e = q41Error(x, w, d: d, m: m, inverse: inv)
            if search, e > 0, let w { (d, m, inv, e) = searchQ41(x, w, plain: (d, m, inv), plainError: e) }
            writeQ41(x, d: d, m: m, inverse: inv, into: o)
            return e
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

    /// Weighted squared error of a symmetric block stored with scale d (rounded to f16 as stored); w nil = 1.
    static func symmetricError(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, d: Float, inverse: Float, type: GGMLType) -> Double {
        let ds = halfToFloat(floatToHalf(d)), off: Int32 = type == .q8_0 ? 0 : 8
        var e = 0.0
        for j in 0..<32 {
            let y = Float(level(x[j], inverse, type: type) - off) * ds
            let r = Double(x[j] - y); e += Double(w?[j] ?? 1) * r * r
        }
        return e
    }

    static func q41Error(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>?, d: Float, m: Float, inverse: Float) -> Double {
        let ds = halfToFloat(floatToHalf(d)), ms = halfToFloat(floatToHalf(m))
        var e = 0.0
        for j in 0..<32 {
            let t = (x[j] - m) * inverse
            let u = t + 0.5
            let q = Float(min(15, max(0, Int32(u.rounded(.towardZero)))))
            let r = Double(x[j] - (q * ds + ms)); e += Double(w?[j] ?? 1) * r * r
        }
        return e
    }
}
