import Foundation
import Synchronization
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

    // MARK: - Importance-weighted scale search
    //
    // As llama.cpp's make_qx_quants: 19 trial inverse scales around the plain one; for each, the levels
    // it gives and the weighted least-squares scale (and Q4_1 minimum) for those levels, in closed form.
    // Each refitted candidate is then measured as it would be stored (f16 scale, levels re-derived from
    // it) and the least weighted error wins; the winner is measured once more in Double and kept only if
    // it beats ggml's plain reference encoding, so the weighted result never loses to the plain one.
    // One block is four 8-wide vectors: a candidate costs three vector passes over 32 weights instead
    // of the scalar, Double, per-weight integer-converting loops of the first version (37.6 s → see README).

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

    typealias V8 = SIMD8<Float>

    @inline(__always)
    static func load4(_ p: UnsafePointer<Float>) -> (V8, V8, V8, V8) {
        let r = UnsafeRawPointer(p)
        return (r.loadUnaligned(as: V8.self), r.loadUnaligned(fromByteOffset: 32, as: V8.self),
                r.loadUnaligned(fromByteOffset: 64, as: V8.self), r.loadUnaligned(fromByteOffset: 96, as: V8.self))
    }

    /// `v` clamped to [lo, hi] with compares and selects: the stdlib's generic `clamped` / `pointwiseMin`
    /// were not specialised into vector min/max (perf: 44 % of the search in those calls).
    @inline(__always)
    static func clamp(_ v: V8, _ lo: Float, _ hi: Float) -> V8 {
        var r = v
        r.replace(with: lo, where: v .< lo)
        r.replace(with: hi, where: v .> hi)
        return r
    }

    /// The signed levels of a symmetric type under inverse scale `inv` (ggml's rounding, as `level`).
    @inline(__always)
    static func symmetricLevels(_ x: V8, _ inv: Float, q8: Bool) -> V8 {
        if q8 { return clamp((x * inv).rounded(.toNearestOrAwayFromZero), -128, 127) }
        return clamp((x * inv + 8.5).rounded(.towardZero), 0, 15) - 8
    }

    /// The same with a per-lane inverse scale (eight blocks in the lanes: `searchSymmetric8`).
    @inline(__always)
    static func symmetricLevels(_ x: V8, _ inv: V8, q8: Bool) -> V8 {
        if q8 { return clamp((x * inv).rounded(.toNearestOrAwayFromZero), -128, 127) }
        return clamp((x * inv + 8.5).rounded(.towardZero), 0, 15) - 8
    }

    /// The stored (f16) value of a scale, by the CPU's F16C conversion: used only to rank candidates (the
    /// chosen one is measured again through `floatToHalf`, the conversion the writer uses).
    @inline(__always)
    static func f16Round(_ v: Float) -> Float { Float(Float16(v)) }

    /// The levels of one symmetric type as a type, so that each search is specialised for it and the level
    /// computation is inlined (as a `q8: Bool` parameter it stayed an out-of-line call: 11 % of quantize's profile).
    protocol SymmetricType {
        static var nmax: Float { get }
        static func levels(_ x: V8, _ inv: Float) -> V8
        static func levels(_ x: V8, _ inv: V8) -> V8
    }
    enum Q8Levels: SymmetricType {
        static var nmax: Float { 127 }
        @inline(__always) static func levels(_ x: V8, _ inv: Float) -> V8 { symmetricLevels(x, inv, q8: true) }
        @inline(__always) static func levels(_ x: V8, _ inv: V8) -> V8 { symmetricLevels(x, inv, q8: true) }
    }
    enum Q40Levels: SymmetricType {
        static var nmax: Float { 8 }
        @inline(__always) static func levels(_ x: V8, _ inv: Float) -> V8 { symmetricLevels(x, inv, q8: false) }
        @inline(__always) static func levels(_ x: V8, _ inv: V8) -> V8 { symmetricLevels(x, inv, q8: false) }
    }

    static func searchSymmetric(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, type: GGMLType,
                                plain: (d: Float, inverse: Float), plainError: Double) -> (Float, Float, Double) {
        type == .q8_0 ? searchSymmetric(Q8Levels.self, x, w, type: type, plain: plain, plainError: plainError)
                      : searchSymmetric(Q40Levels.self, x, w, type: type, plain: plain, plainError: plainError)
    }

    @inline(__always)
    static func searchSymmetric<L: SymmetricType>(_: L.Type, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, type: GGMLType,
                                                  plain: (d: Float, inverse: Float), plainError: Double) -> (Float, Float, Double) {
        guard plain.d != 0 else { return (plain.d, plain.inverse, plainError) }
        let nmax = L.nmax
        let (x0, x1, x2, x3) = load4(x), (w0, w1, w2, w3) = load4(w)
        let (wx0, wx1, wx2, wx3) = (w0 * x0, w1 * x1, w2 * x2, w3 * x3)
        var bestErr = Float.infinity, bestD: Float = 0, bestInv: Float = 0, seen: Float = .nan
        for step in -9...9 {
            let inv0 = plain.inverse * nmax / (nmax + 0.1 * Float(step))
            let l0 = L.levels(x0, inv0), l1 = L.levels(x1, inv0)
            let l2 = L.levels(x2, inv0), l3 = L.levels(x3, inv0)
            let slx = (wx0 * l0 + wx1 * l1 + wx2 * l2 + wx3 * l3).sum()
            let sll = (w0 * l0 * l0 + w1 * l1 * l1 + w2 * l2 * l2 + w3 * l3 * l3).sum()
            guard sll > 0 else { continue }
            let d = slx / sll, ds = f16Round(d)
            // Neighbouring trials often give the same levels, so the same stored scale: measured once.
            guard d.isFinite, d != 0, ds.isFinite, ds != 0, ds != seen else { continue }
            seen = ds
            // As stored: f16 scale, levels re-derived from its inverse.
            let inv = 1 / ds
            let r0 = x0 - L.levels(x0, inv) * ds, r1 = x1 - L.levels(x1, inv) * ds
            let r2 = x2 - L.levels(x2, inv) * ds, r3 = x3 - L.levels(x3, inv) * ds
            let e = (w0 * r0 * r0 + w1 * r1 * r1 + w2 * r2 * r2 + w3 * r3 * r3).sum()
            if e < bestErr { bestErr = e; bestD = d; bestInv = inv }
        }
        guard bestErr.isFinite else { return (plain.d, plain.inverse, plainError) }
        let e = symmetricError(x, w, d: bestD, inverse: bestInv, type: type)
        return e < plainError ? (bestD, bestInv, e) : (plain.d, plain.inverse, plainError)
    }

    // MARK: - The symmetric search, eight blocks at a time
    //
    // The same search as `searchSymmetric`, with eight blocks in the eight lanes of each vector (weight j of the eight
    // blocks in one SIMD8) instead of one block's 32 weights in four vectors: every per-block sum becomes a lane-wise
    // add (no horizontal sums: three per trial scale and block were most of the search's time, with the scalar
    // bookkeeping between them), and the trial's scale, its f16 rounding and the choice run on eight blocks at once.
    // Bit for bit the same result: each lane adds the same products in the same order as the one-block code
    // (elementwise over the four 8-wide vectors, then `sum()`'s left-to-right order from −0), divides and rounds the
    // same scalars, and keeps the first strictly smaller error (the one-block code's skip of a repeated stored scale
    // only avoids measuring an error equal to one already seen, which cannot win a strict comparison).

    /// Encodes the blocks `blocks` of `x` (searched symmetric type, importance `w`) into `o` and returns Σ of their
    /// weighted errors in block order, as `encodeBlock` would one by one.
    static func encodeSymmetricSearched<L: SymmetricType>(_: L.Type, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                                          blocks: Range<Int>, type: GGMLType, into o: UnsafeMutableRawPointer) -> Double {
        let n = blocks.count, bytes = type.blockLayout!.bytes
        // Per block of the range: (scale, inverse, error) — plain first, the search's winner where it beats it.
        var d = [Float](repeating: 0, count: n), inv = [Float](repeating: 0, count: n), err = [Double](repeating: 0, count: n)
        var pending: [Int] = []
        pending.reserveCapacity(n)
        for i in 0..<n {
            let p = x + (blocks.lowerBound + i) * 32
            let plain = symmetricReferenceScale(p, type: type)
            d[i] = plain.d; inv[i] = plain.inverse
            err[i] = symmetricError(p, w + (blocks.lowerBound + i) * 32, d: plain.d, inverse: plain.inverse, type: type)
            // As encodeBlock: a block stored exactly (error 0) or with scale 0 keeps its plain encoding.
            if err[i] > 0, plain.d != 0 { pending.append(i) }
        }
        // Transposed blocks (x, w, w·x: 32 vectors each) for searchSymmetric8, and the blocks of one group.
        let scratch = UnsafeMutablePointer<V8>.allocate(capacity: 96)
        defer { scratch.deallocate() }
        var starts = [Int](repeating: 0, count: 8), lanes = starts
        var k = 0
        while k < pending.count {
            // Eight blocks (the last group repeats its last block in the unused lanes; their results are dropped).
            var plainInverse = V8()
            for lane in 0..<8 {
                lanes[lane] = pending[min(k + lane, pending.count - 1)]
                starts[lane] = (blocks.lowerBound + lanes[lane]) * 32
                plainInverse[lane] = inv[lanes[lane]]
            }
            let best = searchSymmetric8(L.self, x, w, starts: starts, plainInverse: plainInverse, scratch: scratch)
            for lane in 0..<min(8, pending.count - k) {
                let i = lanes[lane]
                guard best.err[lane].isFinite else { continue }
                let e = symmetricError(x + starts[lane], w + starts[lane], d: best.d[lane], inverse: best.inv[lane], type: type)
                if e < err[i] { d[i] = best.d[lane]; inv[i] = best.inv[lane]; err[i] = e }
            }
            k += 8
        }
        var total = 0.0
        for i in 0..<n {
            let b = blocks.lowerBound + i
            writeSymmetric(x + b * 32, d: d[i], inverse: inv[i], type: type, into: o + b * bytes)
            total += err[i]
        }
        return total
    }

    /// The trial scales of `searchSymmetric` for eight blocks (starting at x + starts[lane]) at once: per lane the best
    /// refitted scale d, the inverse of its stored (f16) value, and its weighted error as ranked (Float; +∞ = none).
    @inline(__always)
    static func searchSymmetric8<L: SymmetricType>(_: L.Type, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, starts: [Int],
                                                   plainInverse: V8, scratch: UnsafeMutablePointer<V8>) -> (d: V8, inv: V8, err: V8) {
        // Transposed: X[j], W[j], WX[j] hold weight j of the eight blocks.
        let X = scratch, W = scratch + 32, WX = scratch + 64
        for j in 0..<32 {
            var xv = V8(), wv = V8()
            for lane in 0..<8 { xv[lane] = x[starts[lane] + j]; wv[lane] = w[starts[lane] + j] }
            X[j] = xv; W[j] = wv; WX[j] = wv * xv
        }
        let nmax = L.nmax
        var bestErr = V8(repeating: .infinity), bestD = V8(), bestInv = V8()
        for step in -9...9 {
            let inv0 = plainInverse * nmax / (nmax + 0.1 * Float(step))
            // Σ w·x·l and Σ w·l·l per lane, added as the one-block code adds them: element k of the four
            // vectors first (weights k, k+8, k+16, k+24), then k = 0…7 left to right.
            var slx = V8(), sll = V8()
            for k in 0..<8 {
                var px = V8(), pl = V8()
                for q in 0..<4 {
                    let j = k + 8 * q
                    let l = L.levels(X[j], inv0)
                    let a = WX[j] * l, b = W[j] * l * l
                    if q == 0 { px = a; pl = b } else { px = px + a; pl = pl + b }
                }
                if k == 0 { slx = px; sll = pl } else { slx = slx + px; sll = sll + pl }
            }
            let d = slx / sll
            let ds = V8(SIMD8<Float16>(d))
            let inv = 1 / ds
            var e = V8()
            for k in 0..<8 {
                var pe = V8()
                for q in 0..<4 {
                    let j = k + 8 * q
                    let r = X[j] - L.levels(X[j], inv) * ds
                    let a = W[j] * r * r
                    pe = q == 0 ? a : pe + a
                }
                e = k == 0 ? pe : e + pe
            }
            // The one-block code's guards: sll > 0, d and its stored value finite and non-zero.
            let valid = (sll .> 0) .& (d .< .infinity) .& (d .> -.infinity) .& (d .!= 0)
                .& (ds .< .infinity) .& (ds .> -.infinity) .& (ds .!= 0) .& (e .< bestErr)
            bestErr.replace(with: e, where: valid)
            bestD.replace(with: d, where: valid)
            bestInv.replace(with: inv, where: valid)
        }
        return (bestD, bestInv, bestErr)
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

    static func searchQ41(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, plain: (Float, Float, Float),
                          plainError: Double) -> (Float, Float, Float, Double) {
        guard plain.0 != 0 else { return (plain.0, plain.1, plain.2, plainError) }
        let (x0, x1, x2, x3) = load4(x), (w0, w1, w2, w3) = load4(w)
        let (wx0, wx1, wx2, wx3) = (w0 * x0, w1 * x1, w2 * x2, w3 * x3)
        let sw = Double((w0 + w1 + w2 + w3).sum()), sx = Double((wx0 + wx1 + wx2 + wx3).sum())
        let mn = V8(repeating: plain.1)
        var bestErr = Float.infinity, best: (Float, Float) = (0, 0), seen: (Float, Float) = (.nan, .nan)
        for step in -9...9 {
            let inv0 = 1 / (plain.0 * 15 / (15 + 0.1 * Float(step)))
            @inline(__always) func lev(_ v: V8) -> V8 { clamp(((v - mn) * inv0).rounded(.toNearestOrAwayFromZero), 0, 15) }
            let l0 = lev(x0), l1 = lev(x1), l2 = lev(x2), l3 = lev(x3)
            let sl = Double((w0 * l0 + w1 * l1 + w2 * l2 + w3 * l3).sum())
            let sll = Double((w0 * l0 * l0 + w1 * l1 * l1 + w2 * l2 * l2 + w3 * l3 * l3).sum())
            let slx = Double((wx0 * l0 + wx1 * l1 + wx2 * l2 + wx3 * l3).sum())
            let det = sw * sll - sl * sl
            guard det > 0 else { continue }
            let d = Float((sw * slx - sl * sx) / det), m = Float((sll * sx - sl * slx) / det)
            let ds = f16Round(d), ms = f16Round(m)
            guard d > 0, ds.isFinite, ms.isFinite, ds != 0, (ds, ms) != seen else { continue }
            seen = (ds, ms)
            // As stored (writeQ41 with the stored scale and minimum): q = trunc((x − m)/d + 0.5) in 0…15.
            let inv = 1 / ds, msv = V8(repeating: ms)
            @inline(__always) func res(_ v: V8) -> V8 {
                let q = clamp(((v - msv) * inv + 0.5).rounded(.towardZero), 0, 15)
                return v - (q * ds + msv)
            }
            let r0 = res(x0), r1 = res(x1), r2 = res(x2), r3 = res(x3)
            let e = (w0 * r0 * r0 + w1 * r1 * r1 + w2 * r2 * r2 + w3 * r3 * r3).sum()
            if e < bestErr { bestErr = e; best = (ds, ms) }
        }
        guard bestErr.isFinite else { return (plain.0, plain.1, plain.2, plainError) }
        let (ds, ms) = best
        let e = q41Error(x, w, d: ds, m: ms, inverse: 1 / ds)
        return e < plainError ? (ds, ms, 1 / ds, e) : (plain.0, plain.1, plain.2, plainError)
    }
}
