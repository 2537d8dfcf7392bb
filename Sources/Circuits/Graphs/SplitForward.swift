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
// Patching shortcuts (the evaluator's; each changes a result only by rounding): a head input equal to the
// corrupted stream takes the source run's q/k/v projections (244 of 810 head inputs at 5 % of SmolLM2's edges),
// and MLPs run only on the rows after a prompt's first corrupted token (`RowSelection`), the last MLP only on the
// last rows. A circuit that patches nothing takes none of them (f(100 %) = 1 bit for bit).
// Heads need separate k/v per query head: the model is ungrouped once here.
// o_proj's bias (Llama with attention_bias, OPT) belongs to no head: it is a
// constant of the stream, never patched (as in EAP-IG, where it stays in the
// residual that the patches are applied to).

public final class SplitForward {
    /// The ungrouped model every pass runs on.
    public let model: Model
    public let graph: ComponentGraph
    /// The [slots, N, d] delta buffer of the last circuit run, reused by the next (above glibc's mmap threshold:
    /// a fresh one re-faults and re-zeroes every page, ≈ 5 % of a faithfulness point). Taken under `lock`, so
    /// concurrent runs each get their own.
    private var spareDelta: Buffer?
    private let lock = NSLock()

    public init(_ model: Model) {
        self.model = model.ungroupedQueryAttention()
        graph = ComponentGraph(GraphShape(model.config))
    }

    private func takeDelta(_ count: Int) -> Buffer {
        lock.lock(); defer { lock.unlock() }
        if let b = spareDelta, b.count >= count { spareDelta = nil; return b }
        return Buffer(uninitialized: count)
    }

    private func giveBack(_ b: Buffer) {
        lock.lock(); defer { lock.unlock() }
        if b.count > (spareDelta?.count ?? -1) { spareDelta = b }
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
        /// Some edge is patched: a node is skipped, or some input adds a term or starts from Σ src.
        var patchesSomething: Bool { computed.contains(false) || needsSourceSum || terms.contains { !$0.isEmpty } }

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
        let nd = embeddings.count, F = graph.nForward
        precondition(keep == nil || (keep!.count == graph.nBackward * F && source?.count == F * nd), "circuit run needs keep and source")
        var final: [Float] = []
        let outputs = [Float](unsafeUninitializedCapacity: record ? F * nd : 0) { buf, count in
            (source ?? []).withUnsafeBufferPointer { sb in
                final = run(embeddings: embeddings, segments: segments, keep: keep, source: source == nil ? nil : sb.baseAddress,
                            record: record ? buf.baseAddress : nil, fullWidth: fullWidth)
            }
            count = record ? F * nd : 0
        }
        return Run(final: final, outputs: record ? outputs : nil)
    }

    /// The rows of a patched circuit run that are worth computing. `changed`: the rows at which a node's output can
    /// differ from its source at all, i.e. from the first position at which a prompt and its corrupted prompt differ
    /// (attention is causal: before it, every input of every node is the same in both runs, so each output is its
    /// source value, which the run takes instead). `read`: the rows the caller reads from the final stream (the last
    /// position of each prompt), so the last layer's MLP, which only the logits read, runs on them alone; the final
    /// stream's other rows are then not the model's. Both sorted, packed-row indices. The MLPs (two thirds of a
    /// run's products) run on these rows only; heads still run on every row (their k/v rows are read by later rows).
    public struct RowSelection: Sendable {
        public var changed: [Int]
        public var read: [Int]
        public init(changed: [Int], read: [Int]) { self.changed = changed; self.read = read }

        /// For packed prompts and their corrupted versions (`segments` in the same order).
        public init(clean: [[Int]], corrupted: [[Int]], segments: [Segment]) {
            changed = []; read = []
            for (i, s) in segments.enumerated() {
                let a = clean[i], b = corrupted[i]
                let same = zip(a, b).prefix { $0 == $1 }.count
                changed += (s.rowStart + same)..<(s.rowStart + s.count)
                read.append(s.rowStart + s.count - 1)
            }
        }
    }

    /// The same on caller-owned memory (the evaluator keeps its source across passes): `source` [n_forward, N, d],
    /// `record` [n_forward, N, d] receives every node's output when given. Returns the final stream [N, d].
    /// `projections` [L, 3, N, qDim] receives each layer's q/k/v projections of an unpatched full-width run;
    /// `sourceProjections` (those of the run that made `source`, patching only) gives a circuit run the q/k/v of
    /// every head input that equals the corrupted stream Σ src (no term added), instead of projecting it again.
    func run(embeddings: [Float], segments: [Segment], keep: [Bool]?, source src: UnsafePointer<Float>?,
             record rec: UnsafeMutablePointer<Float>?, fullWidth: Bool, projections: UnsafeMutablePointer<Float>? = nil,
             sourceProjections: UnsafePointer<Float>? = nil, rows: RowSelection? = nil) -> [Float] {
        let c = model.config, g = graph, d = c.dModel, H = c.nHeads, F = g.nForward, qDim = c.qDim
        let n = embeddings.count / d, nd = n * d, record = rec != nil
        precondition(keep == nil || (keep!.count == g.nBackward * F && src != nil), "circuit run needs keep and source")
        precondition(projections == nil || (keep == nil && fullWidth), "projections come from an unpatched full-width run")
        precondition(rows == nil || (keep != nil && !record), "row selections are for circuit runs that record nothing")
        let plan = keep != nil && keep!.contains(false) ? Plan(keep!, g, computeAll: record) : nil
        // A circuit that patches nothing (every edge kept) is the model: it takes no shortcut, so it reproduces the
        // unpatched run bit for bit (the evaluator's f(100 %) = 1).
        let rows = plan?.patchesSomething == true ? rows : nil
        let sum = Buffer(uninitialized: nd)                                       // [N, d] Σ of outputs so far
        let srcSum = Buffer(uninitialized: plan?.needsSourceSum == true ? nd : 0) // [N, d] Σ of sources so far
        let delta = takeDelta((plan?.slots ?? 0) * nd)                            // [slots, N, d] src − out of the nodes read so
        defer { giveBack(delta) }
        let x = Buffer(uninitialized: (plan == nil ? 0 : 3 * H) * nd)             // [3H, N, d] inputs that differ from a base
        let scratch = Buffer(uninitialized: record ? 0 : H * nd)                  // [H, N, d] outputs when not recorded
        let tiles = (nd + Self.tile - 1) / Self.tile
        var final: [Float] = []
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
                model.headOutputs(layer: l, sharedInput: sum.p, segments: segments, rows: n,
                                  into: heads, projections: projections.map { $0 + l * 3 * n * qDim })
            } else if active.contains(true) {
                let bs = (0..<3).flatMap { i in (0..<H).map { g.headInput(l, $0, ComponentGraph.Input(rawValue: i)!) } }
                let ptrs = inputs(bs)
                // An input with no term on the corrupted stream is the source run's input: take its projection.
                let given: [UnsafePointer<Float>?]? = sourceProjections.flatMap { sp in
                    plan.map { plan in bs.indices.map { i -> UnsafePointer<Float>? in
                        plan.fromSource[bs[i]] && plan.terms[bs[i]].isEmpty ? sp + (l * 3 + i / H) * n * qDim : nil } }
                }
                model.headOutputs(layer: l, inputs: ptrs, active: active, given: given, segments: segments, rows: n, into: heads)
            }
            absorb(Array(h0..<(h0 + H)), heads)
            if let bo = model.blocks[l].o.bias { addConstant(bo) }
            let u = g.mlp(l), m = rec.map { $0 + u * nd } ?? scratch.p     // [N, d]
            if plan?.computed[u] ?? true {
                let input = inputs([g.mlpInput(l)])[0]
                if let rows, let src {                                   // only the rows that can differ from the source
                    let rs = l == c.nLayers - 1 ? rows.read : rows.changed
                    m.update(from: src + u * nd, count: nd)
                    if !rs.isEmpty {
                        let gathered = Buffer(uninitialized: 2 * rs.count * d)   // [2, rows, d] input, output
                        for (i, r) in rs.enumerated() { (gathered.p + i * d).update(from: input + r * d, count: d) }
                        model.mlpOutput(layer: l, input: gathered.p, rows: rs.count, into: gathered.p + rs.count * d)
                        for (i, r) in rs.enumerated() { (m + r * d).update(from: gathered.p + (rs.count + i) * d, count: d) }
                    }
                } else {
                    model.mlpOutput(layer: l, input: input, rows: n, into: m)
                }
            }
            absorb([u], m)
        }
        let f = inputs([g.logitsInput])[0]
        final = Array(UnsafeBufferPointer(start: f, count: nd))
        return final
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
