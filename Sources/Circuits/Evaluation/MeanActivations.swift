import Foundation
import Transformer

// MARK: - Mean activations over a reference set (for mean ablation)
//
// The mean is over every token position of every reference prompt (prompts
// differ in length, so there is no per-position mean). Sites: each MLP's hidden
// activation `post` (silu(gate)⊙up / relu(fc1)), i.e. what a neuron outputs into
// down_proj/fc2; and each layer's attention output `z` before o_proj, whose
// slice [h·headDim, (h+1)·headDim) is head h's output.

public struct MeanActivations: Sendable {
    /// [layers][dFF]
    public var post: [[Float]]
    /// [layers][qDim]
    public var z: [[Float]]
    /// Token positions averaged over.
    public var tokens: Int

    /// Runs `sequences` (packed, passes of ≤ `maxRows` token rows) and averages the sites in Double.
    public static func measure(_ model: Model, _ sequences: [[Int]], maxRows: Int = TaskEvaluator.defaultMaxRows) -> MeanActivations {
        let c = model.config
        var sumPost = [[Double]](repeating: [Double](repeating: 0, count: c.dFF), count: c.nLayers)
        var sumZ = [[Double]](repeating: [Double](repeating: 0, count: c.qDim), count: c.nLayers)
        var total = 0
        TaskEvaluator.forEachPackedPass(c, sequences, maxRows: maxRows) { _, tokens, segments in
            var x = model.embedRows(tokens, segments: segments)                 // [N, d]
            // Own `post` buffer (.mlpPost) and `z` are what the sums read after each block.
            let b = BlockBuffers(config: c, rows: tokens.count)
            for l in 0..<c.nLayers {
                model.runBlock(l, &x, segments: segments, buffers: b)
                accumulate(b.post, rows: tokens.count, cols: c.dFF, into: &sumPost[l])
                accumulate(b.z, rows: tokens.count, cols: c.qDim, into: &sumZ[l])
            }
            total += tokens.count
        }
        let inv = 1 / Double(max(total, 1))
        return MeanActivations(post: sumPost.map { $0.map { Float($0 * inv) } }, z: sumZ.map { $0.map { Float($0 * inv) } },
                               tokens: total)
    }

    static func accumulate(_ a: Buffer, rows: Int, cols: Int, into sum: inout [Double]) {
        let p = a.p
        for r in 0..<rows { for j in 0..<cols { sum[j] += Double(p[r * cols + j]) } }
    }
}
