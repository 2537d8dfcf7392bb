import Foundation
import Transformer

// The importance-weighted block-scale search of GGMLBlockCodec (see GGMLBlockCodec.swift for the block layouts and
// the plain reference encoding it is measured against): one block at a time, and the symmetric types eight blocks at
// a time. Only used by `encodeMeasured` / `encodeBlock` when an importance is given.

extension GGMLBlockCodec {
    // MARK: - Importance-weighted scale search
    //
    // As llama.cpp's make_qx_quants: 19 trial inverse scales around the plain one; for each, the levels
    // it gives and the weighted least-squares scale (and Q4_1 minimum) for those levels, in closed form.
    // Each refitted candidate is then measured as it would be stored (f16 scale, levels re-derived from
    // it) and the least weighted error wins; the winner is measured once more in Double and kept only if
    // it beats ggml's plain reference encoding, so the weighted result never loses to the plain one.
    // One block is four 8-wide vectors: a candidate costs three vector passes over 32 weights instead
    // of the scalar, Double, per-weight integer-converting loops of the first version (37.6 s → see README).

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
