import Foundation

// MARK: - Linear layers backward

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
            if let sink, sink.wantsWeightRelevance {
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
