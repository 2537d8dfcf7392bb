// MARK: - Norm layers (RMSNorm and LayerNorm behind one type)
//
// The kind is fixed when the family builds the model, so the final norm and the
// block norms run (and run backward) without asking which family they belong to.

/// RMSNorm (weight only) or LayerNorm (weight + bias).
public struct Norm {
    public enum Kind: Sendable { case rms, layer }
    public let kind: Kind
    public let name: String          // HF weight name
    public var weight: [Float]       // [d]
    public var bias: [Float]?        // [d] (LayerNorm β)

    public init(kind: Kind, name: String, weight: [Float], bias: [Float]?) {
        self.kind = kind; self.name = name; self.weight = weight; self.bias = bias
    }

    /// y [rows, d] = norm(x); `inv` [rows] receives 1/rms or 1/σ (held constant by LRP).
    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, inv: UnsafeMutablePointer<Float>?,
                 rows: Int, d: Int, eps: Float) {
        switch kind {
        case .rms: rmsNorm(x, weight, y, inv: inv, rows: rows, d: d, eps: eps)
        // A LayerNorm always has β once built; zeros only keep the call total.
        case .layer: layerNorm(x, weight, bias ?? zeros(d), y, inv: inv, rows: rows, d: d, eps: eps)
        }
    }

    /// δx (+)= norm backward of δy [rows, d] from the forward's input x and `inv`. LayerNorm's β absorbs
    /// β ⊙ Σ_t δy_t of the relevance: it is added to `biasRelevance` (conservation bookkeeping).
    func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, inv: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                  rows n: Int, d: Int, constantNormaliser: Bool, accumulate: Bool, biasRelevance: inout Double) {
        switch kind {
        case .rms:
            rmsNormBackward(dy: dy, x: x, inv: inv, g: weight, dx: dx, rows: n, d: d,
                            constantNormaliser: constantNormaliser, accumulate: accumulate)
        case .layer:
            if let beta = bias {
                var r = 0.0
                for t in 0..<n { for j in 0..<d { r += Double(beta[j] * dy[t * d + j]) } }
                biasRelevance += r
            }
            layerNormBackward(dy: dy, x: x, inv: inv, g: weight, dx: dx, rows: n, d: d,
                              constantNormaliser: constantNormaliser, accumulate: accumulate)
        }
    }
}
