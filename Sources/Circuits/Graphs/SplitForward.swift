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
// or, equally, x_v = Σ_u src_u − Σ_{u→v ∈ C} (src_u − out_u). Each input sums whichever
// list of deltas is shorter onto its base (`Plan`), tile by tile on both cores, so a
// top-k % circuit reads only its kept edges' deltas and an input without terms is its
// base itself (no copy; inputs that share a base share the norm too). A node no kept
// edge reads is not run at all (its source value stands in wherever it is read).
// Cost of a sparse circuit run: the forward of the nodes it keeps plus O(kept edges · N · d)
// additions. (Before, one dense GEMM [inputs, run of nodes]·D per run of needed nodes
// rewrote all 27 inputs of a layer per run: at 5 % of SmolLM2's edges ≈ 1,400 runs per pass.)
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

    /// What a circuit run computes, from its mask alone. A node is computed only when some kept edge reads its
    /// output (`computed`); any other node's output is replaced by its source value wherever it is read, which is
    /// what the circuit gives it anyway (all its outgoing edges are patched), so it is neither run nor stored.
    /// Each input b is x_b = Σ_u out_u + Σ_{u→b ∉ C} (src_u − out_u) = Σ_u src_u − Σ_{u→b ∈ C} (src_u − out_u):
    /// whichever list of terms is shorter is summed onto its base (`fromSource`: the corrupted stream Σ src, else the
    /// circuit's own stream Σ out), so a sparse circuit reads only its kept edges' deltas and a dense one only its
    /// patched ones. Nodes not computed count as src in Σ out and drop out of both lists (their delta is 0).
    struct Plan {
        var computed: [Bool]                 // [n_forward]
        var fromSource: [Bool]               // [n_backward]
        var terms: [[Int]]                   // [n_backward][terms]: forward nodes whose delta is added (or subtracted)
        var slot: [Int]                      // [n_forward] row of delta, -1 = not stored
        var slots: Int
        var needsSourceSum: Bool

        init(_ keep: [Bool], _ g: ComponentGraph, computeAll: Bool) {
            let F = g.nForward, B = g.nBackward
            computed = [Bool](repeating: computeAll, count: F)
            computed[0] = true
            for b in 0..<B { for u in 0..<g.upstream(b) where keep[b * F + u] { computed[u] = true } }
            fromSource = [Bool](repeating: false, count: B); terms = [[Int]](repeating: [], count: B)
            slot = [Int](repeating: -1, count: F); slots = 0; needsSourceSum = false
            for b in 0..<B {
                var kept: [Int] = [], replaced: [Int] = []
                for u in 0..<g.upstream(b) where computed[u] {
                    if keep[b * F + u] { kept.append(u) } else { replaced.append(u) }
                }
                fromSource[b] = kept.count < replaced.count
                terms[b] = fromSource[b] ? kept : replaced
                if fromSource[b] { needsSourceSum = true }
                for u in terms[b] where slot[u] < 0 { slot[u] = slots; slots += 1 }
            }
        }
    }

    /// Column tiles of the element-wise passes (4 KB of each row: the rows a tile touches stay in cache).
    static let tile = 1024

    /// One pass over packed rows. `embeddings` [N, d] = the input node's output. With `keep`
    /// ([n_backward · n_forward], the circuit) every edge not kept reads `source` [n_forward, N, d]
    /// instead of the run's own output; `keep == nil` is the unpatched model.
    /// `fullWidth`: an unpatched run computes q/k/v with one full-width product per projection (faster,
    /// equal to the per-head products to rounding); off, every run takes the per-head path, so a circuit
    /// that keeps every edge reproduces the unpatched run bit for bit (the evaluator's f(100 %) = 1).
    /// Without `record`, a circuit run computes only the nodes some kept edge reads (`Plan`).
    public func run(embeddings: [Float], segments: [Segment], keep: [Bool]? = nil, source: [Float]? = nil,
                    record: Bool = false, fullWidth: Bool = false) -> Run {
        let c = model.config, g = graph, d = c.dModel, H = c.nHeads, F = g.nForward
        let n = embeddings.count / d, nd = n * d
        precondition(keep == nil || (keep!.count == g.nBackward * F && source?.count == F * nd), "circuit run needs keep and source")
        let plan = keep != nil && keep!.contains(false) ? Plan(keep!, g, computeAll: record) : nil
        let sum = Buffer(uninitialized: nd)                                       // [N, d] Σ of outputs so far
        let srcSum = Buffer(uninitialized: plan?.needsSourceSum == true ? nd : 0) // [N, d] Σ of sources so far
        let delta = Buffer(uninitialized: (plan?.slots ?? 0) * nd)                // [slots, N, d] src − out of the nodes read so
        let x = Buffer(uninitialized: (plan == nil ? 0 : 3 * H) * nd)             // [3H, N, d] inputs that differ from a base
        let scratch = Buffer(uninitialized: record ? 0 : H * nd)                  // [H, N, d] outputs when not recorded
        let tiles = (nd + Self.tile - 1) / Self.tile
        var final: [Float] = []
        let outputs = [Float](unsafeUninitializedCapacity: record ? F * nd : 0) { buf, count in
            let rec = record ? buf.baseAddress : nil                              // [n_forward, N, d] (an empty buffer's address is no output)
            (source ?? []).withUnsafeBufferPointer { sb in
                let src = source == nil ? nil : sb.baseAddress
                /// Pointers to the inputs `bs` (each [N, d]): the base itself when no term is added, else its row of x,
                /// filled tile by tile on both cores (each delta tile read once per input group, from cache after the first).
                func inputs(_ bs: [Int]) -> [UnsafePointer<Float>] {
                    guard let plan else { return bs.map { _ in UnsafePointer(sum.p) } }
                    let base = bs.map { plan.fromSource[$0] ? srcSum.p : sum.p }
                    let jobs = bs.indices.filter { !plan.terms[bs[$0]].isEmpty }
                    if !jobs.isEmpty {
                        BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: tiles)) { _, t in
                            let j0 = t * Self.tile, len = min(Self.tile, nd - j0)
                            for i in jobs {
                                let xp = x.p + i * nd + j0, b = bs[i]
                                xp.update(from: base[i] + j0, count: len)
                                if plan.fromSource[b] {
                                    for u in plan.terms[b] { let dp = delta.p + plan.slot[u] * nd + j0; for j in 0..<len { xp[j] -= dp[j] } }
                                } else {
                                    for u in plan.terms[b] { let dp = delta.p + plan.slot[u] * nd + j0; for j in 0..<len { xp[j] += dp[j] } }
                                }
                            }
                        }
                    }
                    return bs.indices.map { plan.terms[bs[$0]].isEmpty ? UnsafePointer(base[$0]) : UnsafePointer(x.p + $0 * nd) }
                }
                /// Adds the outputs `outs` [us.count, N, d] of forward nodes `us` to Σ out (a node not computed adds its
                /// source instead), their sources to Σ src, and stores the deltas some input reads.
                func absorb(_ us: [Int], _ outs: UnsafePointer<Float>) {
                    BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: tiles)) { _, t in
                        let j0 = t * Self.tile, len = min(Self.tile, nd - j0), s = sum.p + j0
                        for (k, u) in us.enumerated() {
                            let o = outs + k * nd + j0
                            guard let plan, let src else { for j in 0..<len { s[j] += o[j] }; continue }
                            let sp = src + u * nd + j0
                            if plan.computed[u] {
                                for j in 0..<len { s[j] += o[j] }
                                if plan.slot[u] >= 0 { let dp = delta.p + plan.slot[u] * nd + j0; for j in 0..<len { dp[j] = sp[j] - o[j] } }
                            } else {
                                for j in 0..<len { s[j] += sp[j] }
                            }
                            if plan.needsSourceSum { let ss = srcSum.p + j0; for j in 0..<len { ss[j] += sp[j] } }
                        }
                    }
                }
                /// A constant of the stream (o_proj's bias, no head's output) added to both sums.
                func addConstant(_ bo: [Float]) {
                    for r in 0..<n { for j in 0..<d { sum.p[r * d + j] += bo[j] } }
                    if srcSum.count > 0 { for r in 0..<n { for j in 0..<d { srcSum.p[r * d + j] += bo[j] } } }
                }
                embeddings.withUnsafeBufferPointer { e in
                    sum.p.update(from: e.baseAddress!, count: nd)
                    rec?.update(from: e.baseAddress!, count: nd)
                    if let plan, let src {
                        if plan.needsSourceSum { srcSum.p.update(from: src, count: nd) }
                        if plan.slot[0] >= 0 { let dp = delta.p + plan.slot[0] * nd; for j in 0..<nd { dp[j] = src[j] - e[j] } }
                    }
                }
                for l in 0..<c.nLayers {
                    let h0 = g.head(l, 0), heads = rec.map { $0 + h0 * nd } ?? scratch.p   // [H, N, d]
                    let active = (0..<H).map { plan?.computed[h0 + $0] ?? true }
                    if plan == nil && fullWidth {                                 // every head input is the stream itself
                        model.headOutputs(layer: l, sharedInput: sum.p, segments: segments, rows: n, into: heads)
                    } else if active.contains(true) {
                        let ptrs = inputs((0..<3).flatMap { i in (0..<H).map { g.headInput(l, $0, ComponentGraph.Input(rawValue: i)!) } })
                        model.headOutputs(layer: l, inputs: ptrs, active: active, segments: segments, rows: n, into: heads)
                    }
                    absorb(Array(h0..<(h0 + H)), heads)
                    if let bo = model.blocks[l].o.bias { addConstant(bo) }
                    let u = g.mlp(l), m = rec.map { $0 + u * nd } ?? scratch.p     // [N, d]
                    if plan?.computed[u] ?? true {
                        model.mlpOutput(layer: l, input: inputs([g.mlpInput(l)])[0], rows: n, into: m)
                    }
                    absorb([u], m)
                }
                let f = inputs([g.logitsInput])[0]
                final = Array(UnsafeBufferPointer(start: f, count: nd))
            }
            count = record ? F * nd : 0
        }
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
