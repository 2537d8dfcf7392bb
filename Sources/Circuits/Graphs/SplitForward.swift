import Foundation
import Transformer

// MARK: - The forward pass as a graph of node outputs
//
// Each node input is the sum of its upstream node outputs (input embedding, head
// outputs o_proj[:, h]·z_h, MLP outputs). A circuit run keeps the in-graph edges
// and replaces each out-of-graph edge u → v by a source value of u (the corrupted
// run's output for patching, 0 for zero ablation, u's mean output for mean
// ablation), exactly as EAP-IG's `evaluate_graph`:
//   x_v = Σ_{u→v} out_u  +  Σ_{u→v ∉ C} (src_u − out_u).
// Upstream nodes are a prefix of the forward order, so with D = src − out kept per
// node the second sum of every input of a layer is one GEMM [inputs, prefix]·D; when a
// layer's inputs keep fewer edges than they replace, the equal form
//   x_v = Σ_u src_u  −  Σ_{u→v ∈ C} (src_u − out_u)
// needs only the kept terms (a top-k % circuit reads few rows of D).
// Heads need separate k/v per query head: the model is ungrouped once here.
// o_proj's bias (Llama with attention_bias, OPT) belongs to no head: it is a
// constant of the stream, never patched (as in EAP-IG, where it stays in the
// residual that the patches are applied to).

public final class SplitForward {
    /// The ungrouped model every pass runs on.
    public let model: Model
    public let graph: ComponentGraph

    public init(_ model: Model) {
        self.model = model.ungroupedQueryAttention()
        graph = ComponentGraph(GraphShape(model.config))
    }

    /// Segments (one per sequence) of a packed pass, with caches of the ungrouped model's shape.
    public func segments(_ sequences: [[Int]]) -> [Segment] {
        var out: [Segment] = [], row = 0
        for s in sequences {
            out.append(Segment(rowStart: row, count: s.count, pos0: 0, cache: KVCache(config: model.config, capacity: s.count)))
            row += s.count
        }
        return out
    }

    /// Consecutive ranges of `lengths` packed into passes of at most `maxRows` rows (a longer sequence alone).
    public static func passes(_ lengths: [Int], maxRows: Int) -> [Range<Int>] {
        var out: [Range<Int>] = [], start = 0
        while start < lengths.count {
            var end = start, rows = 0
            while end < lengths.count, end == start || rows + lengths[end] <= maxRows { rows += lengths[end]; end += 1 }
            out.append(start..<end)
            start = end
        }
        return out
    }

    public struct Run {
        /// Final residual stream [N, d] (the input of `logits`).
        public var final: [Float]
        /// Every node's output [n_forward, N, d] when recorded.
        public var outputs: [Float]?
    }

    /// One pass over packed rows. `embeddings` [N, d] = the input node's output. With `keep`
    /// ([n_backward · n_forward], the circuit) every edge not kept reads `source` [n_forward, N, d]
    /// instead of the run's own output; `keep == nil` is the unpatched model.
    /// `fullWidth`: an unpatched run computes q/k/v with one full-width product per projection (faster,
    /// equal to the per-head products to rounding); off, every run takes the per-head path, so a circuit
    /// that keeps every edge reproduces the unpatched run bit for bit (the evaluator's f(100 %) = 1).
    public func run(embeddings: [Float], segments: [Segment], keep: [Bool]? = nil, source: [Float]? = nil,
                    record: Bool = false, fullWidth: Bool = false) -> Run {
        let c = model.config, g = graph, d = c.dModel, H = c.nHeads, F = g.nForward
        let n = embeddings.count / d, nd = n * d
        precondition(keep == nil || (keep!.count == g.nBackward * F && source?.count == F * nd), "circuit run needs keep and source")
        let patching = keep != nil && keep!.contains(false)
        var outputs = record ? [Float](repeating: 0, count: F * nd) : []
        var delta = patching ? [Float](repeating: 0, count: F * nd) : []         // [F, N, d] src − out
        var sum = embeddings                                                      // [N, d] Σ of outputs so far
        var srcSum = patching ? [Float](repeating: 0, count: nd) : []             // [N, d] Σ of sources so far
        func put(_ u: Int, _ out: UnsafePointer<Float>) {
            if record { outputs.withUnsafeMutableBufferPointer { (($0.baseAddress! + u * nd)).update(from: out, count: nd) } }
            if patching {
                source!.withUnsafeBufferPointer { s in delta.withUnsafeMutableBufferPointer { dl in srcSum.withUnsafeMutableBufferPointer { ss in
                    let sp = s.baseAddress! + u * nd, dp = dl.baseAddress! + u * nd
                    for i in 0..<nd { dp[i] = sp[i] - out[i]; ss[i] += sp[i] }
                } } }
            }
        }
        /// Adds a constant of the stream (o_proj's bias) to both running sums.
        func addConstant(_ bo: [Float]) {
            for r in 0..<n { for j in 0..<d { sum[r * d + j] += bo[j] } }
            if patching { for r in 0..<n { for j in 0..<d { srcSum[r * d + j] += bo[j] } } }
        }
        /// x [inputs.count, N, d] for backward inputs `inputs`, whose upstream nodes are every node so far
        /// (`prefix` of them): x = sum + Σ_{u not kept} delta[u], or, when fewer edges are kept than replaced,
        /// the same as x = srcSum − Σ_{u kept} delta[u]. One GEMM [inputs, k]·delta[k, nd] per run of upstream
        /// nodes that some input needs (a top-k circuit touches few), so a sparse circuit reads little of delta.
        /// Every edge kept: x = sum exactly (no product), so the full circuit is the unpatched run bit for bit.
        func inputsOf(_ inputs: [Int], prefix: Int) -> [Float] {
            var replaced = 0
            if patching { for b in inputs { for u in 0..<prefix where !keep![b * F + u] { replaced += 1 } } }
            let complement = replaced * 2 > inputs.count * prefix                 // more replaced than kept
            var x = [Float](repeating: 0, count: inputs.count * nd)
            x.withUnsafeMutableBufferPointer { xp in (complement ? srcSum : sum).withUnsafeBufferPointer { s in
                for i in inputs.indices { (xp.baseAddress! + i * nd).update(from: s.baseAddress!, count: nd) }
            } }
            guard replaced > 0 else { return x }
            var mask = [Float](repeating: 0, count: inputs.count * prefix)      // [inputs, prefix] ±1 = this term
            var needed = [Bool](repeating: false, count: prefix)
            for (i, b) in inputs.enumerated() {
                for u in 0..<prefix where keep![b * F + u] == complement { mask[i * prefix + u] = complement ? -1 : 1; needed[u] = true }
            }
            mask.withUnsafeBufferPointer { m in delta.withUnsafeBufferPointer { dl in x.withUnsafeMutableBufferPointer { xp in
                var u0 = 0
                while u0 < prefix {
                    guard needed[u0] else { u0 += 1; continue }
                    var u1 = u0
                    while u1 < prefix, needed[u1] { u1 += 1 }
                    BLAS.gemm(transA: false, transB: false, m: inputs.count, n: nd, k: u1 - u0, m.baseAddress! + u0, lda: prefix,
                              dl.baseAddress! + u0 * nd, ldb: nd, beta: 1, xp.baseAddress!, ldc: nd)
                    u0 = u1
                }
            } } }
            return x
        }
        embeddings.withUnsafeBufferPointer { put(0, $0.baseAddress!) }
        for l in 0..<c.nLayers {
            let out: [Float]                                                      // [H, N, d]
            if patching || !fullWidth {
                let heads = (0..<3).flatMap { i in (0..<H).map { g.headInput(l, $0, ComponentGraph.Input(rawValue: i)!) } }
                let x = inputsOf(heads, prefix: g.head(l, 0))                      // [3H, N, d]
                out = x.withUnsafeBufferPointer { model.headOutputs(layer: l, inputs: $0.baseAddress!, segments: segments, rows: n) }
            } else {                                                              // every head input is the stream itself
                out = sum.withUnsafeBufferPointer { model.headOutputs(layer: l, sharedInput: $0.baseAddress!, segments: segments, rows: n) }
            }
            out.withUnsafeBufferPointer { o in
                for h in 0..<H {
                    let p = o.baseAddress! + h * nd
                    put(g.head(l, h), p)
                    sum.withUnsafeMutableBufferPointer { s in for i in 0..<nd { s[i] += p[i] } }
                }
            }
            if let bo = model.blocks[l].o.bias { addConstant(bo) }               // no head's output: a constant of the stream
            let xm = inputsOf([g.mlpInput(l)], prefix: g.mlp(l))                  // [N, d]
            let m = xm.withUnsafeBufferPointer { model.mlpOutput(layer: l, input: $0.baseAddress!, rows: n) }
            m.withUnsafeBufferPointer { p in
                put(g.mlp(l), p.baseAddress!)
                sum.withUnsafeMutableBufferPointer { s in for i in 0..<nd { s[i] += p[i] } }
            }
        }
        let final = inputsOf([g.logitsInput], prefix: F)
        return Run(final: final, outputs: record ? outputs : nil)
    }

    /// Last-position logits [b, vocab] of each segment from a final residual stream [N, d].
    public func lastLogits(_ final: [Float], segments: [Segment]) -> [Float] {
        let d = model.config.dModel
        var last = [Float](repeating: 0, count: segments.count * d)              // [b, d]
        for (i, s) in segments.enumerated() {
            let r = s.rowStart + s.count - 1
            last.replaceSubrange((i * d)..<((i + 1) * d), with: final[(r * d)..<((r + 1) * d)])
        }
        let normed = model.finalNormRows(last, rows: segments.count)
        return normed.withUnsafeBufferPointer { model.logits($0.baseAddress!, rows: segments.count) }
    }
}
