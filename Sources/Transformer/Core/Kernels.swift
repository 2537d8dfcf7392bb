import Foundation

// MARK: - Element-wise kernels
//
// Plain loops over flat buffers (compiled with -Ounchecked, AVX2/FMA). Large
// loops fan out over the two cores with `parallelRows`; BLAS is idle while
// they run, so parallelism is never nested (toolchain.md §5).

/// Element-wise fan-out on/off (WORKBENCH_SERIAL=1 turns it off, for measurements).
public var parallelElementwise = ProcessInfo.processInfo.environment["WORKBENCH_SERIAL"] == nil

/// Split `rows` into two halves across cores when the work is big enough to pay
/// for the fan-out (≈1e5 elements, toolchain.md §5).
@inline(__always)
public func parallelRows(_ rows: Int, work: Int, _ body: (Range<Int>) -> Void) {
    if work < 65_536 || rows < 2 || !parallelElementwise {
        body(0..<rows)
        return
    }
    let chunks = 2
    WorkerTeam.shared.run(parts: chunks) { c in
        let lo = rows * c / chunks, hi = rows * (c + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
}

@inline(__always)
func addRowBias(_ y: UnsafeMutablePointer<Float>, _ b: [Float], rows: Int, cols: Int) {
    b.withUnsafeBufferPointer { bp in
        for r in 0..<rows {
            let row = y + r * cols
            for j in 0..<cols { row[j] += bp[j] }
        }
    }
}

/// x += y over n values (the residual add).
@inline(__always)
func addInPlace(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) {
    for i in 0..<n { x[i] += y[i] }
}

/// x += y over n values, split over the cores when large.
@inline(__always)
func addParallel(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) {
    parallelRows(n, work: n) { r in addInPlace(x + r.lowerBound, y + r.lowerBound, r.count) }
}

/// dst = src over n values, split over the cores when large.
@inline(__always)
func copyParallel(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    parallelRows(n, work: n) { r in (dst + r.lowerBound).update(from: src + r.lowerBound, count: r.count) }
}

/// RMSNorm: y = x / sqrt(mean(x²) + eps) ⊙ g. Writes the per-row inverse
/// RMS into `inv` (kept for the LRP backward, which treats it as a constant).
func rmsNorm(_ x: UnsafePointer<Float>, _ g: [Float], _ y: UnsafeMutablePointer<Float>, inv: UnsafeMutablePointer<Float>?,
             rows: Int, d: Int, eps: Float) {
    g.withUnsafeBufferPointer { gp in
        parallelRows(rows, work: rows * d) { range in
            for r in range {
                let xr = x + r * d, yr = y + r * d
                let ss = dotSIMD(xr, xr, d)
                let s = 1 / (ss / Float(d) + eps).squareRoot()
                inv?[r] = s
                for j in 0..<d { yr[j] = xr[j] * s * gp[j] }
            }
        }
    }
}

/// LayerNorm: y = (x − μ) / sqrt(var + eps) ⊙ γ + β. Writes 1/σ per row into `inv`.
func layerNorm(_ x: UnsafePointer<Float>, _ g: [Float], _ b: [Float], _ y: UnsafeMutablePointer<Float>,
               inv: UnsafeMutablePointer<Float>?, rows: Int, d: Int, eps: Float) {
    g.withUnsafeBufferPointer { gp in
        b.withUnsafeBufferPointer { bp in
            parallelRows(rows, work: rows * d) { range in
                for r in range {
                    let xr = x + r * d, yr = y + r * d
                    var mean: Float = 0
                    for j in 0..<d { mean += xr[j] }
                    mean /= Float(d)
                    var v: Float = 0
                    for j in 0..<d { let c = xr[j] - mean; v += c * c }
                    let s = 1 / (v / Float(d) + eps).squareRoot()
                    inv?[r] = s
                    for j in 0..<d { yr[j] = (xr[j] - mean) * s * gp[j] + bp[j] }
                }
            }
        }
    }
}

// MARK: - exp, softmax, activations

/// Vectorised exp (Cephes-style range reduction + degree-6 polynomial, rel. err ≈ 2e-7).
/// glibc expf costs ≈4 ns/value; causal attention at T=2048 needs ~10⁹ of them.
/// Inputs must be finite with |x| < 2²¹; results saturate to 0 below ≈ −88 and
/// to +inf above ≈ 88.7. Only wrapping integer ops and float arithmetic are
/// used: `clamped`, `replace(with:where:)` and `SIMD8<Int32>(_:rounding:)`
/// compile to per-lane generic calls here (measured: 10–15% of a prefill).
@inline(__always)
func expSIMD(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let (p, n) = expReduced(x)
    // Clamp n to [−127, 128] branch-free: 2¹²⁸ encodes as +inf.
    var ni = atLeastMinus127(n)
    let d = SIMD8<Int32>(repeating: 128) &- ni
    ni = ni &+ (d & (d &>> 31))                     // min(ni, 128)
    return p * unsafeBitCast((ni &+ 127) &<< 23, to: SIMD8<Float>.self)
}

/// max(n, −127), branch-free: 2⁻¹²⁷ encodes as 0 (underflow).
@inline(__always)
func atLeastMinus127(_ n: SIMD8<Int32>) -> SIMD8<Int32> {
    let d = n &- SIMD8<Int32>(repeating: -127)
    return n &- (d & (d &>> 31))
}

/// exp(x) for x ≤ 0 (softmax after the row maximum is subtracted): the same
/// polynomial as `expSIMD`, but n ≤ 0 needs no upper clamp, three integer ops
/// fewer per vector (the masked exp is ~20% of causal attention).
@inline(__always)
func expNonPositiveSIMD(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let (p, n) = expReduced(x)
    return p * unsafeBitCast((atLeastMinus127(n) &+ 127) &<< 23, to: SIMD8<Float>.self)
}

/// Range reduction x = n·ln2 + r, |r| ≤ ln2/2, and e^r by a degree-6 polynomial:
/// returns (e^r, n); e^x = e^r · 2ⁿ.
@inline(__always)
func expReduced(_ x: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Int32>) {
    // n = round(x·log2 e) via the 1.5·2²³ magic number: the integer lands in
    // the low mantissa bits, so float→int is a bit cast.
    let magic = SIMD8<Float>(repeating: 12_582_912)
    let shifted = x * 1.442_695_04 + magic
    let n = shifted - magic
    let ni = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    var r = x - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var p = SIMD8<Float>(repeating: 1.987_569_1e-4)
    p = p * r + 1.398_199_9e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 1.666_666_5e-1
    p = p * r + 5.000_000_1e-1
    p = p * r * r + r + 1
    return (p, ni)
}

@inline(__always)
public func fastExp(_ x: Float) -> Float { expSIMD(SIMD8(repeating: x))[0] }

// MARK: - Vectorised reductions
//
// Swift does not reassociate Float sums, so a plain `for` reduction runs one
// scalar add per element. These keep 16 lanes in flight; the summation order
// differs from a serial loop by rounding only.

/// Σ a[i]·b[i] over n values.
@inline(__always)
func dotSIMD(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD8<Float>(repeating: 0), acc1 = acc0
    var j = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while j + 16 <= n {
        acc0 += ra.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
        acc1 += ra.loadUnaligned(fromByteOffset: j * 4 + 32, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: j * 4 + 32, as: SIMD8<Float>.self)
        j += 16
    }
    var s = (acc0 + acc1).sum()
    while j < n { s += a[j] * b[j]; j += 1 }
    return s
}

/// max a[i] over n values (−inf for n = 0). Eight independent scalar maxima:
/// `pointwiseMax` on SIMD8 compiled to a generic per-lane call here (measured
/// 0.59 ns/value, 5% of an LRP pass at T=2048); this runs at 0.06 ns/value.
@inline(__always)
func maxSIMD(_ a: UnsafePointer<Float>, _ n: Int) -> Float {
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0, m4 = m0, m5 = m0, m6 = m0, m7 = m0
    var j = 0
    while j + 8 <= n {
        m0 = a[j] > m0 ? a[j] : m0; m1 = a[j + 1] > m1 ? a[j + 1] : m1
        m2 = a[j + 2] > m2 ? a[j + 2] : m2; m3 = a[j + 3] > m3 ? a[j + 3] : m3
        m4 = a[j + 4] > m4 ? a[j + 4] : m4; m5 = a[j + 5] > m5 ? a[j + 5] : m5
        m6 = a[j + 6] > m6 ? a[j + 6] : m6; m7 = a[j + 7] > m7 ? a[j + 7] : m7
        j += 8
    }
    while j < n { m0 = a[j] > m0 ? a[j] : m0; j += 1 }
    m0 = m1 > m0 ? m1 : m0; m2 = m3 > m2 ? m3 : m2; m4 = m5 > m4 ? m5 : m4; m6 = m7 > m6 ? m7 : m6
    m0 = m2 > m0 ? m2 : m0; m4 = m6 > m4 ? m6 : m4
    return m4 > m0 ? m4 : m0
}

/// In-place softmax of one row of length n; returns nothing. Stable (max-subtracted).
@inline(__always)
func softmaxRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) {
    let inv = 1 / expRow(p, n)
    for j in 0..<n { p[j] *= inv }
}

/// In place p[j] = exp(p[j] − max p) over a row of length n; returns Σ_j p[j].
/// The forward divides the attention output by the sum instead of normalising
/// the [rows, keys] scores (hd = 64 values per row instead of `keys`).
@inline(__always)
func expRow(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    let m = maxSIMD(p, n)
    var j = 0
    let mv = SIMD8<Float>(repeating: m)
    // Two vectors per step with their own sums: each exp is a chain of ~10
    // dependent FMAs, and two independent chains keep both FMA pipes busy.
    var acc0 = SIMD8<Float>(repeating: 0), acc1 = acc0
    let raw = UnsafeMutableRawPointer(p)
    while j + 16 <= n {
        let e0 = expNonPositiveSIMD(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - mv)
        let e1 = expNonPositiveSIMD(raw.loadUnaligned(fromByteOffset: j * 4 + 32, as: SIMD8<Float>.self) - mv)
        raw.storeBytes(of: e0, toByteOffset: j * 4, as: SIMD8<Float>.self)
        raw.storeBytes(of: e1, toByteOffset: j * 4 + 32, as: SIMD8<Float>.self)
        acc0 += e0; acc1 += e1
        j += 16
    }
    if j + 8 <= n {
        let e = expNonPositiveSIMD(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - mv)
        raw.storeBytes(of: e, toByteOffset: j * 4, as: SIMD8<Float>.self)
        acc0 += e
        j += 8
    }
    var sum = (acc0 + acc1).sum()
    while j < n { let e = fastExp(p[j] - m); p[j] = e; sum += e; j += 1 }
    return sum
}

/// log Σ_j exp(a[j]) over a row of length n, without writing it: the maximum,
/// then exp(a − max) summed in SIMD Float over blocks of 512 values whose sums
/// are added in Double (each Float lane sums ≤ 32 terms in (0, 1], so the
/// Float rounding stays ≈ 1e-6 relative even for a 49,152-entry vocabulary).
/// Tested against a Double reference in PerplexityTests.
@inline(__always)
public func logSumExp(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    let m = maxSIMD(p, n)
    let mv = SIMD8<Float>(repeating: m)
    let raw = UnsafeRawPointer(p)
    var total = 0.0, j = 0
    while j + 16 <= n {
        let end = min(n, j + 512)
        var acc0 = SIMD8<Float>(repeating: 0), acc1 = acc0
        while j + 16 <= end {
            acc0 += expNonPositiveSIMD(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - mv)
            acc1 += expNonPositiveSIMD(raw.loadUnaligned(fromByteOffset: j * 4 + 32, as: SIMD8<Float>.self) - mv)
            j += 16
        }
        total += Double((acc0 + acc1).sum())
    }
    while j < n { total += Double(fastExp(p[j] - m)); j += 1 }
    return Double(m) + log(total)
}

/// out = silu(gate) ⊙ up in one pass (the SwiGLU activation), vectorised.
@inline(__always)
func swiGLU(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let g = UnsafeRawPointer(gate), u = UnsafeRawPointer(up), o = UnsafeMutableRawPointer(out)
    while i + 8 <= n {
        let v = g.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        let w = u.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        o.storeBytes(of: v / (1 + expSIMD(-v)) * w, toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { out[i] = gate[i] / (1 + fastExp(-gate[i])) * up[i]; i += 1 }
}
