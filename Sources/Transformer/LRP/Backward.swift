import Foundation

// MARK: - What is explained

/// One explained logit: coefficient · logit[position, token].
public struct ExplainTerm: Equatable, Sendable {
    public var position: Int
    public var token: Int
    public var coefficient: Float
    public init(position: Int, token: Int, coefficient: Float = 1) {
        self.position = position; self.token = token; self.coefficient = coefficient
    }
}

/// An explained quantity y = Σ coefficient · logit (one logit, or a logit difference).
public typealias ExplainGroup = [ExplainTerm]

public enum ExplainSpec: Equatable, Sendable {
    /// At every position t ≥ from, the logit of the true next token x_{t+1} (one group per position).
    case nextToken(from: Int)
    /// The largest logit at the last position.
    case lastMax
    /// Explicit groups (given ids at positions, logit differences such as IOI's logit(IO) − logit(S)).
    case groups([ExplainGroup])
}

/// How the output relevance is seeded: with the explained value (R_out = y, the
/// efficient-mode convention `y.backward()`) or with 1 per explained quantity.
public enum SeedValue: String, Sendable { case logit, one }

/// Receives one sample's modified gradients as they are produced (layer by layer,
/// last layer first). Relevance is R = parameter ⊙ gradient; the sink decides how
/// to aggregate (signed sum, |·| per sample, Wanda statistics…).
public protocol RelevanceSink: AnyObject {
    /// δW [out, in] of one linear layer, summed over the sample's positions.
    func weightGradient(_ linear: Linear, _ dW: UnsafePointer<Float>)
    /// Relevance of each MLP intermediate neuron (Σ_t act ⊙ δact) [dFF].
    func neurons(layer: Int, _ relevance: [Float])
    /// Asks for the signed δW (`weightGradient`). Default true; a sink that only
    /// aggregates per-token absolute values says false and saves one GEMM per linear.
    var wantsSignedGradient: Bool { get }
    /// Asks for per-token absolute aggregation: Σ_t |δy_t|ᵀ|x_t| per linear
    /// (`weightAbsGradient`) and Σ_t |·| for neurons and heads. Default false.
    var wantsAbsPerToken: Bool { get }
    /// Σ_t |δy_t| |x_t|ᵀ [out, in] of one linear layer (only when `wantsAbsPerToken`):
    /// |W| ⊙ this is Σ_t |R_W,t|, the weight relevance with no cancellation between positions.
    func weightAbsGradient(_ linear: Linear, _ g: UnsafePointer<Float>)
    /// Relevance passing through each head's output z_h (Σ_t z_h ⊙ δz_h) [nHeads].
    /// Under AttnLRP's uniform rule on A·V the softmax output A receives half of
    /// it (V the other half), so head rankings equal PXP's softmax-output
    /// relevance summed over keys; for the plain gradient it equals Σ A ⊙ δA.
    func heads(layer: Int, _ relevance: [Float])
}

extension RelevanceSink {
    public var wantsSignedGradient: Bool { true }
    public var wantsAbsPerToken: Bool { false }
    public func weightAbsGradient(_ linear: Linear, _ g: UnsafePointer<Float>) {}
}

public struct LRPResult {
    /// Resolved explained terms with their logit values.
    public var terms: [(term: ExplainTerm, logit: Float)]
    /// Total explained output (Σ y_g with seed logit, number of groups with seed one).
    public var explained: Double
    /// Per-token input relevance (token-embedding ⊙ δ summed over d) [T].
    public var tokenRelevance: [Float]
    /// OPT: per-token position-embedding relevance [T]; nil for Llama.
    public var positionRelevance: [Float]?
    /// Relevance absorbed by biases and LayerNorm β (conservation bookkeeping).
    public var biasRelevance: Double
    public var inputTotal: Double { tokenRelevance.reduce(0.0) { $0 + Double($1) } + (positionRelevance?.reduce(0.0) { $0 + Double($1) } ?? 0) }
}

// MARK: - Shared backward pieces

/// Per-pass scratch for the backward: one δW buffer sized for the largest matrix.
final class BackwardScratch {
    var dW: [Float]
    var s: [Float] = []
    var dP: [Float] = []
    var absDy: [Float] = []     // |δy| [N, out] for per-token absolute aggregation
    var absX: [Float] = []      // |x|  [N, in]
    var biasRelevance = 0.0
    init(maxWeight: Int) { dW = zeros(maxWeight) }
}

extension Model {
    /// Plain backward through y = xWᵀ + b for N rows: δx (+)= δy·W, δW = δyᵀx to
    /// the sink, bias relevance b ⊙ Σ_t δy_t recorded. With ε > 0, δy is first
    /// rescaled by the LRP-ε rule (needs the layer output z).
    func linearBackward(_ lin: Linear, x: UnsafePointer<Float>, dy dyIn: UnsafePointer<Float>, z: UnsafePointer<Float>?,
                        dx: UnsafeMutablePointer<Float>?, accumulate: Bool, rows n: Int, rules: LRPRules,
                        sink: RelevanceSink?, scratch: BackwardScratch) {
        var scaled: [Float] = []
        var dy = dyIn
        if rules.epsilon > 0, let z {
            scaled = zeros(n * lin.outDim)
            for i in 0..<(n * lin.outDim) { scaled[i] = dyIn[i] * epsilonRuleScale(z: z[i], epsilon: rules.epsilon) }
            dy = scaled.withUnsafeBufferPointer { $0.baseAddress! }
        }
        withExtendedLifetime(scaled) {
            if let bias = lin.bias {
                var r = 0.0
                for t in 0..<n { for j in 0..<lin.outDim { r += Double(bias[j] * dy[t * lin.outDim + j]) } }
                scratch.biasRelevance += r
            }
            if let dx {
                lin.weight.cptr { w in
                    BLAS.gemm(transA: false, transB: false, m: n, n: lin.inDim, k: lin.outDim, dy, lda: lin.outDim,
                              w, ldb: lin.inDim, beta: accumulate ? 1 : 0, dx, ldc: lin.inDim)
                }
            }
            if let sink {
                scratch.dW.ptr { dw in
                    if sink.wantsSignedGradient {
                        BLAS.gemm(transA: true, transB: false, m: lin.outDim, n: lin.inDim, k: n, dy, lda: lin.outDim,
                                  x, ldb: lin.inDim, dw, ldc: lin.inDim)
                        sink.weightGradient(lin, dw)
                    }
                    if sink.wantsAbsPerToken {
                        // Σ_t |δy_t,i| |x_t,j|: the same GEMM on absolute values.
                        absCopy(dy, into: &scratch.absDy, n * lin.outDim)
                        absCopy(x, into: &scratch.absX, n * lin.inDim)
                        scratch.absDy.cptr { a in scratch.absX.cptr { b in
                            BLAS.gemm(transA: true, transB: false, m: lin.outDim, n: lin.inDim, k: n, a, lda: lin.outDim,
                                      b, ldb: lin.inDim, dw, ldc: lin.inDim)
                        } }
                        sink.weightAbsGradient(lin, dw)
                    }
                }
            }
        }
    }

    /// buffer[0..<count] = |src|, growing the buffer when needed.
    private func absCopy(_ src: UnsafePointer<Float>, into buffer: inout [Float], _ count: Int) {
        if buffer.count < count { buffer = zeros(count) }
        buffer.ptr { d in parallelRows(count, work: count) { r in for i in r { d[i] = Swift.abs(src[i]) } } }
    }

    /// Backward through causal attention for one sequence (pos0 = 0) with the
    /// AttnLRP factors: δv = vF·Pᵀδz; δS = P ⊙ (δP − rowdot(δP, P)) (plain softmax
    /// gradient); δq = qkF·scale·δS·K; δk = qkF·scale·δSᵀ·Q. Probabilities are
    /// recomputed per head and query block, never stored for all heads.
    func attentionBackward(_ b: BlockBuffers, dz: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>,
                           dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>, rules: LRPRules,
                           scratch: BackwardScratch) {
        let c = config, n = b.rows, hd = c.headDim, qDim = c.qDim, kvDim = c.kvDim
        let group = c.nHeads / c.nKVHeads, scale = 1 / Float(hd).squareRoot()
        let qkF = rules.qkFactor, vF = rules.vFactor
        dq.update(repeating: 0, count: n * qDim)
        dk.update(repeating: 0, count: n * kvDim)
        dv.update(repeating: 0, count: n * kvDim)
        // (query block × head) work items over the cores, single-threaded BLAS
        // inside. δq slices are disjoint; δk/δv of a kv head collect from many
        // items, so worker w > 0 accumulates into its own buffer, added in
        // worker order afterwards — the result does not depend on timing.
        let ways = max(BLAS.ways, 1), parallel = ways > 1
        let need = min(queryBlock, n) * n
        if scratch.s.count < need * ways { scratch.s = zeros(need * ways); scratch.dP = zeros(need * ways) }
        var extra = zeros((ways - 1) * 2 * n * kvDim)                  // [ways-1][dk | dv]
        let blocks = (n + queryBlock - 1) / queryBlock
        let costs = (0..<(blocks * c.nHeads)).map { min(($0 / c.nHeads + 1) * queryBlock, n) }
        b.q.cptr { q in b.k.cptr { k in b.v.cptr { v in
        scratch.s.ptr { sAll in scratch.dP.ptr { dPAll in extra.ptr { ex in
            BLAS.workers(costs: costs) { worker, item in
                let s = sAll + worker * need, dP = dPAll + worker * need
                let dkW = worker == 0 ? dk : ex + (worker - 1) * 2 * n * kvDim
                let dvW = worker == 0 ? dv : dkW + n * kvDim
                let gemm = parallel ? BLAS.gemmSerial : BLAS.gemm
                let h = item % c.nHeads, i0 = (item / c.nHeads) * queryBlock
                let i1 = min(i0 + queryBlock, n), rows = i1 - i0, keys = i1
                let g = h / group
                let qh = q + i0 * qDim + h * hd, kg = k + g * hd, vg = v + g * hd, dzh = dz + i0 * qDim + h * hd
                // Row strips stop at their own last key, as in the forward (`diagonalStrips`);
                // maskedSoftmax zeroes every masked entry, so P is exact for the transposed products.
                diagonalStrips(rows: rows, keys: keys, height: scoreStripRows) { r0, r1, kEnd in
                    gemm(false, true, r1 - r0, kEnd, hd, scale, qh + r0 * qDim, qDim, kg, kvDim, 0, s + r0 * keys, keys)
                }
                maskedSoftmax(s, rows: rows, keys: keys, firstPos: i0, parallel: !parallel)
                // δv_g += vF · Pᵀ δz_h
                diagonalKeyStrips(rows: rows, keys: keys, height: scoreStripRows) { k0, k1, rStart in
                    gemm(true, false, k1 - k0, hd, rows - rStart, vF, s + rStart * keys + k0, keys, dzh + rStart * qDim, qDim,
                         1, dvW + k0 * kvDim + g * hd, kvDim)
                }
                guard qkF != 0 else { return }
                // δP = δz_h V_gᵀ, then δS = P ⊙ (δP − Σ_j δP·P) in place in dP.
                diagonalStrips(rows: rows, keys: keys, height: scoreStripRows) { r0, r1, kEnd in
                    gemm(false, true, r1 - r0, kEnd, hd, 1, dzh + r0 * qDim, qDim, vg, kvDim, 0, dP + r0 * keys, keys)
                }
                parallelRows(rows, work: parallel ? 0 : rows * keys) { range in
                    for r in range {
                        let pr = s + r * keys, dr = dP + r * keys, visible = i0 + r + 1
                        let dot = dotSIMD(pr, dr, visible)
                        for j in 0..<visible { dr[j] = pr[j] * (dr[j] - dot) }
                        for j in visible..<keys { dr[j] = 0 }
                    }
                }
                diagonalStrips(rows: rows, keys: keys, height: valueStripRows) { r0, r1, kEnd in
                    gemm(false, false, r1 - r0, hd, kEnd, qkF * scale, dP + r0 * keys, keys, kg, kvDim, 0,
                         dq + (i0 + r0) * qDim + h * hd, qDim)
                }
                diagonalKeyStrips(rows: rows, keys: keys, height: scoreStripRows) { k0, k1, rStart in
                    gemm(true, false, k1 - k0, hd, rows - rStart, qkF * scale, dP + rStart * keys + k0, keys, qh + rStart * qDim, qDim,
                         1, dkW + k0 * kvDim + g * hd, kvDim)
                }
            }
            for w in 1..<ways {
                let base = ex + (w - 1) * 2 * n * kvDim
                addInPlace(dk, base, n * kvDim)
                addInPlace(dv, base + n * kvDim, n * kvDim)
            }
        } } }
        } } }
    }

    /// Σ_t z_h ⊙ δz_h per head: the relevance that passes through each head.
    func headRelevance(z: UnsafePointer<Float>, dz: UnsafePointer<Float>, rows n: Int, abs: Bool = false) -> [Float] {
        let c = config
        var r = [Float](repeating: 0, count: c.nHeads)
        for t in 0..<n { for h in 0..<c.nHeads {
            let o = t * c.qDim + h * c.headDim
            let s = dotSIMD(z + o, dz + o, c.headDim)
            r[h] += abs ? Swift.abs(s) : s
        } }
        return r
    }

    /// Σ_t a ⊙ δa per column j of an [N, m] activation.
    func columnRelevance(_ a: UnsafePointer<Float>, _ da: UnsafePointer<Float>, rows n: Int, cols m: Int, abs: Bool = false) -> [Float] {
        var r = [Float](repeating: 0, count: m)
        r.ptr { rp in
            // Columns split over the cores: each half walks every row.
            parallelRows(m, work: n * m) { cols in
                if abs { for t in 0..<n { let o = t * m; for j in cols { rp[j] += Swift.abs(a[o + j] * da[o + j]) } } }
                else { for t in 0..<n { let o = t * m; for j in cols { rp[j] += a[o + j] * da[o + j] } } }
            }
        }
        return r
    }
}
