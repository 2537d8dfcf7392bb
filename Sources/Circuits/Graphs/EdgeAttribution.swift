import Foundation
import Transformer

// MARK: - Edge scores: EAP, EAP-IG (inputs), LRP (relevance patching)
//
// For an edge u → v (v one node input) and metric m = the logit difference
// LSE(z_answers) − LSE(z_distractors) at the last position:
//   score(u → v) = Σ_t (a_u(clean) − a_u(corrupted))_t · δ_v,t ,  averaged over prompts,
// where δ_v = ∂m/∂(input of v) at the clean run (EAP), its average over the
// straight path of input embeddings from corrupted to clean (EAP-IG-inputs:
// α = k/steps, k = 1…steps), or the AttnLRP-modified gradient (LRP: relevance
// patching). Patching the edge moves v's input by a_u(corr) − a_u(clean), so to
// first order m(clean) − m(edge patched) = score: positive = the edge carries
// the behaviour (MIB orders attribution scores this way, `loss=True`).
// Node scores: Σ of a node's outgoing edge scores (= diff · ∂m/∂output, since a
// node's output enters each downstream input additively).
// For answer sets of several tokens the LSE weights are taken at the clean logits.

public enum GraphMethod: String, Sendable, CaseIterable {
    case eap, eapIG = "eap-ig", lrp
}

public enum GraphAttributionError: LocalizedError, Equatable {
    case needsCorrupted(SourceLocation)
    case lengthMismatch(SourceLocation, clean: Int, corrupted: Int)
    case needsDistractor(SourceLocation)
    case badSteps(Int)

    public var errorDescription: String? {
        switch self {
        case .needsCorrupted(let l): return "\(l): edge attribution needs a corrupted prompt for every prompt"
        case .lengthMismatch(let l, let c, let k): return "\(l): clean prompt has \(c) tokens, corrupted \(k) — positions must line up"
        case .needsDistractor(let l): return "\(l): the metric is a logit difference; this prompt has no distractor"
        case .badSteps(let s): return "--steps must be at least 1 (got \(s))"
        }
    }
}

public final class EdgeAttribution {
    public let split: SplitForward
    public var graph: ComponentGraph { split.graph }

    public init(_ split: SplitForward) { self.split = split }

    /// Entries of the [B, F] score matrix the per-layer products compute (each a dot product over
    /// a prompt's N·d values): every layer's 3H + 1 inputs against its MLP's upstream prefix, the logits
    /// against all F. About half of B·F; the bench counts 2 · this · N · d FLOPs per prompt.
    public static func scoreProducts(_ g: ComponentGraph) -> Int {
        (0..<g.shape.nLayers).reduce(g.nForward) { $0 + (3 * g.shape.nHeads + 1) * g.mlp($1) }
    }

    /// Checks what every method needs of a prompt set.
    public static func check(_ items: [TaskItem]) throws {
        for it in items {
            guard let c = it.corruptedTokens else { throw GraphAttributionError.needsCorrupted(it.location) }
            guard c.count == it.tokens.count else {
                throw GraphAttributionError.lengthMismatch(it.location, clean: it.tokens.count, corrupted: c.count)
            }
            guard !it.distractorIds.isEmpty else { throw GraphAttributionError.needsDistractor(it.location) }
        }
    }

    /// Edge scores [n_backward · n_forward] averaged over `items` (0 off the edges).
    ///
    /// The clean and corrupted split forwards run packed, several prompts per pass (one GEMM per linear
    /// for all their rows instead of one per prompt); a pass holds at most `maxRows` rows and at most
    /// `passBudget` bytes of recorded outputs (2 · n_forward · rows · d · 4: clean and corrupted), so a
    /// large model falls back to one prompt per pass. The backward (δ at every node input) runs packed too:
    /// eap and lrp put consecutive prompts of a pass into one LRP pass of at most `backwardRows` rows and
    /// `backwardBudget` bytes of node-input δ (n_backward · rows · d · 4); eap-ig puts up to `backwardRows`
    /// rows of one prompt's path points into one pass and folds their δ as they arrive. Packing changes only
    /// the GEMM shapes, not what is summed (tests: packed = one prompt per pass).
    public func scores(_ items: [TaskItem], method: GraphMethod, steps: Int = 5, maxRows: Int = 256,
                       passBudget: Int = 512 << 20, backwardRows: Int = 128, backwardBudget: Int = 256 << 20,
                       progress: ((Int) -> Void)? = nil) throws -> [Float] {
        try Self.check(items)
        guard steps >= 1 else { throw GraphAttributionError.badSteps(steps) }
        let g = graph, F = g.nForward, B = g.nBackward, d = split.model.config.dModel
        let rowLimit = max(1, min(maxRows, passBudget / max(2 * F * d * MemoryLayout<Float>.stride, 1)))
        let backLimit = max(1, min(backwardRows, backwardBudget / max(B * d * MemoryLayout<Float>.stride, 1)))
        var total = [Float](repeating: 0, count: B * F)
        for r in SplitForward.passes(items.map(\.tokens.count), maxRows: rowLimit) {
            let pass = Array(items[r]), start = r.lowerBound
            let rows = pass.reduce(0) { $0 + $1.tokens.count }
            let segs = split.segments(pass.map(\.tokens))
            let emb = split.model.embedRows(pass.flatMap(\.tokens), segments: segs)
            var clean = split.run(embeddings: emb, segments: segs, record: true, fullWidth: true)
            var diff = clean.outputs!                                             // [F, N, d] clean − corrupted
            clean.outputs = nil                                                   // diff owns the buffer: no copy
            do {
                let embC = split.model.embedRows(pass.flatMap { $0.corruptedTokens! }, segments: segs)
                let corrupt = split.run(embeddings: embC, segments: segs, record: true, fullWidth: true)
                corrupt.outputs!.withUnsafeBufferPointer { c in for k in 0..<diff.count { diff[k] -= c[k] } }
            }
            let last = split.lastLogits(clean.final, segments: segs)              // [b, vocab]
            let v = split.model.config.vocabSize
            let terms = pass.indices.map { lseTerms(pass[$0], logits: Array(last[($0 * v)..<(($0 + 1) * v)]), position: pass[$0].tokens.count - 1) }
            switch method {
            case .eap, .lrp:
                for pack in SplitForward.passes(pass.map(\.tokens.count), maxRows: backLimit) {
                    let sink = try nodeInputs(pass[pack].map(\.tokens), terms: Array(terms[pack]), method: method)
                    let packRows = sink.nd / d
                    var row = 0
                    for i in pack {
                        let n = pass[i].tokens.count
                        sink.g.withUnsafeBufferPointer { gp in
                            addScores(&total, g: gp.baseAddress! + row * d, ldg: sink.nd, n: n, diff: diff, row: segs[i].rowStart, rows: rows)
                        }
                        row += n
                        progress?(start + i + 1)
                    }
                    precondition(row == packRows)
                }
            case .eapIG:
                for (i, it) in pass.enumerated() {
                    let n = it.tokens.count, sink = NodeInputGradients(graph: g, rows: n, dModel: d)
                    let segsOne = split.segments([it.tokens])
                    let embOne = split.model.embedRows(it.tokens, segments: segsOne), embCOne = split.model.embedRows(it.corruptedTokens!, segments: segsOne)
                    // Right Riemann sum of the corrupted → clean path, α = k/steps, k = 1…steps; chunks of ≤ backLimit rows.
                    let perPass = max(1, min(steps, backLimit / n)), chunks = (steps + perPass - 1) / perPass
                    var k = 1
                    for c in 0..<chunks {
                        let count = (steps - k + 1) / (chunks - c)
                        var x = [Float](repeating: 0, count: count * n * d)
                        for j in 0..<count {
                            let a = Float(k + j) / Float(steps), o = j * n * d
                            for t in 0..<(n * d) { x[o + t] = embCOne[t] + a * (embOne[t] - embCOne[t]) }
                        }
                        sink.copies = count
                        let group = (0..<count).flatMap { j in terms[i].map { ExplainTerm(position: $0.position + j * n, token: $0.token, coefficient: $0.coefficient) } }
                        _ = try split.model.lrp(tokens: Array([[Int]](repeating: it.tokens, count: count).joined()), explain: .groups([group]),
                                                seed: .logit, rules: .gradient, sink: sink, embeddings: x,
                                                packed: [Int](repeating: n, count: count))
                        k += count
                    }
                    let inv = 1 / Float(steps)
                    for j in 0..<sink.g.count { sink.g[j] *= inv }
                    sink.g.withUnsafeBufferPointer { gp in
                        addScores(&total, g: gp.baseAddress!, ldg: sink.nd, n: n, diff: diff, row: segs[i].rowStart, rows: rows)
                    }
                    progress?(start + i + 1)
                }
            }
        }
        let inv = 1 / Float(max(items.count, 1))
        for b in 0..<B {
            let up = g.upstream(b)
            for u in 0..<F { total[b * F + u] = u < up ? total[b * F + u] * inv : 0 }
        }
        return total
    }

    /// δ at every node input [n_backward, rows, d] for `seqs` packed into one LRP pass (eap: gradient, lrp: AttnLRP).
    func nodeInputs(_ seqs: [[Int]], terms: [ExplainGroup], method: GraphMethod) throws -> NodeInputGradients {
        let rows = seqs.reduce(0) { $0 + $1.count }
        let sink = NodeInputGradients(graph: graph, rows: rows, dModel: split.model.config.dModel)
        var row = 0, group: ExplainGroup = []
        for (s, t) in zip(seqs, terms) {
            group += t.map { ExplainTerm(position: $0.position + row, token: $0.token, coefficient: $0.coefficient) }
            row += s.count
        }
        _ = try split.model.lrp(tokens: seqs.flatMap { $0 }, explain: .groups([group]), seed: .logit,
                                rules: method == .lrp ? .attnLRP : .gradient, sink: sink, packed: seqs.map(\.count))
        return sink
    }

    /// total[b, u] += Σ_t diff_u,t · δ_b,t for one prompt of n rows, every (input, upstream node) pair.
    /// `g` points at the prompt's δ: row b at g + b · ldg, n · d values; `diff` [F, rows, d] is clean − corrupted
    /// of the forward pass, the prompt's rows start at `row`.
    func addScores(_ total: inout [Float], g gp: UnsafePointer<Float>, ldg: Int, n: Int, diff: [Float], row: Int, rows: Int) {
        let d = split.model.config.dModel, nd = n * d, g = graph, F = g.nForward, B = g.nBackward
        // [B, F] += G [B, nd] · diffᵀ [nd, F], only where edges are: the upstream nodes of an input are a prefix
        // of the forward order, so layer l's 3H + 1 inputs need the first mlp(l) columns (its heads' inputs
        // only the first head(l, 0); the few extra entries are off-edge and unused), the logits all F. Half
        // the products of the full [B, F] GEMM. Node u's rows of this prompt: diff[u, row..<row+n] (stride rows·d).
        diff.withUnsafeBufferPointer { dp in total.withUnsafeMutableBufferPointer { sp in
            var b0 = 0
            while b0 < B {
                let count = b0 == g.logitsInput ? 1 : 3 * g.shape.nHeads + 1, cols = g.upstream(b0 + count - 1)
                BLAS.gemm(transA: false, transB: true, m: count, n: cols, k: nd, gp + b0 * ldg, lda: ldg,
                          dp.baseAddress! + row * d, ldb: rows * d, beta: 1, sp.baseAddress! + b0 * F, ldc: F)
                b0 += count
            }
        } }
    }

    /// The logit difference's gradient terms at `position`: +softmax weights over the answers, − over the
    /// distractors (±1 for single tokens), from `logits` [1, vocab].
    func lseTerms(_ it: TaskItem, logits z: [Float], position: Int) -> ExplainGroup {
        func weights(_ ids: [Int]) -> [Double] {
            let m = ids.map { Double(z[$0]) }.max() ?? 0
            let e = ids.map { exp(Double(z[$0]) - m) }, s = e.reduce(0, +)
            return e.map { $0 / s }
        }
        return zip(it.answerIds, weights(it.answerIds)).map { ExplainTerm(position: position, token: $0, coefficient: Float($1)) }
            + zip(it.distractorIds, weights(it.distractorIds)).map { ExplainTerm(position: position, token: $0, coefficient: -Float($1)) }
    }
}

/// Collects δ at every node input: [n_backward, N, d] (accumulated over passes). With `copies` > 1 the pass
/// holds that many packed copies of the N rows (points of one integrated-gradients path) and their δ are summed.
final class NodeInputGradients: RelevanceSink {
    let graph: ComponentGraph
    let nd: Int
    var g: [Float]
    var copies = 1

    init(graph: ComponentGraph, rows: Int, dModel: Int) {
        self.graph = graph; nd = rows * dModel
        g = [Float](repeating: 0, count: graph.nBackward * nd)
    }
    var wantsWeightRelevance: Bool { false }

    var wantsNodeInputs: Bool { true }
    var wantsSignedGradient: Bool { false }
    func weightGradient(_ linear: Linear, _ dW: UnsafePointer<Float>) {}
    func neurons(layer: Int, _ relevance: [Float]) {}
    func heads(layer: Int, _ relevance: [Float]) {}

    /// x [count, copies · N, d] into rows row..<row+count of g.
    private func add(_ row: Int, count: Int, _ x: UnsafePointer<Float>) {
        g.withUnsafeMutableBufferPointer { p in
            for i in 0..<count {
                let o = p.baseAddress! + (row + i) * nd
                for c in 0..<copies {
                    let src = x + (i * copies + c) * nd
                    for j in 0..<nd { o[j] += src[j] }
                }
            }
        }
    }
    // The tap's [3, H, N, d] order is the graph's backward order within a layer (q of every head, k, v).
    func headInputs(layer: Int, _ x: UnsafePointer<Float>, rows: Int) { add(graph.headInput(layer, 0, .q), count: 3 * graph.shape.nHeads, x) }
    func mlpInput(layer: Int, _ x: UnsafePointer<Float>, rows: Int) { add(graph.mlpInput(layer), count: 1, x) }
    func logitsInput(_ x: UnsafePointer<Float>, rows: Int) { add(graph.logitsInput, count: 1, x) }
}
