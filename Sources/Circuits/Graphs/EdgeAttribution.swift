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
    /// large model falls back to one prompt per pass. The backward (δ at every node input) runs per prompt.
    public func scores(_ items: [TaskItem], method: GraphMethod, steps: Int = 5, maxRows: Int = 256,
                       passBudget: Int = 512 << 20, progress: ((Int) -> Void)? = nil) throws -> [Float] {
        try Self.check(items)
        guard steps >= 1 else { throw GraphAttributionError.badSteps(steps) }
        let g = graph, F = g.nForward, B = g.nBackward, d = split.model.config.dModel
        let rowLimit = max(1, min(maxRows, passBudget / max(2 * F * d * MemoryLayout<Float>.stride, 1)))
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
            for (i, it) in pass.enumerated() {
                let s = try promptScores(it, method: method, steps: steps, diff: diff, row: segs[i].rowStart, rows: rows,
                                         lastLogits: Array(last[(i * v)..<((i + 1) * v)]))
                for k in 0..<total.count { total[k] += s[k] }
                progress?(start + i + 1)
            }
        }
        let inv = 1 / Float(max(items.count, 1))
        for b in 0..<B {
            let up = g.upstream(b)
            for u in 0..<F { total[b * F + u] = u < up ? total[b * F + u] * inv : 0 }
        }
        return total
    }

    /// One prompt's Σ_t diff · δ for every (input, upstream node) pair [n_backward · n_forward] (off-edge entries
    /// unused). `diff` [F, rows, d] is clean − corrupted output of a packed pass; the prompt's rows start at `row`.
    func promptScores(_ it: TaskItem, method: GraphMethod, steps: Int, diff: [Float], row: Int, rows: Int,
                      lastLogits: [Float]) throws -> [Float] {
        let model = split.model, d = model.config.dModel, n = it.tokens.count, nd = n * d
        let g = graph, F = g.nForward, B = g.nBackward
        let explain = ExplainSpec.groups([lseTerms(it, logits: lastLogits, position: n - 1)])
        let sink = NodeInputGradients(graph: g, rows: n, dModel: d)
        let rules: LRPRules = method == .lrp ? .attnLRP : .gradient
        switch method {
        case .eap, .lrp:
            _ = try model.lrp(tokens: it.tokens, explain: explain, seed: .logit, rules: rules, sink: sink)
        case .eapIG:
            let segs = split.segments([it.tokens])
            let emb = model.embedRows(it.tokens, segments: segs), embC = model.embedRows(it.corruptedTokens!, segments: segs)
            for k in 1...steps {                                                   // right Riemann sum of the path
                let a = Float(k) / Float(steps)
                var x = embC
                for j in 0..<x.count { x[j] += a * (emb[j] - embC[j]) }
                _ = try model.lrp(tokens: it.tokens, explain: explain, seed: .logit, rules: rules, sink: sink, embeddings: x)
            }
            let inv = 1 / Float(steps)
            for j in 0..<sink.g.count { sink.g[j] *= inv }
        }
        // [B, F] = G [B, nd] · diffᵀ [nd, F], only where edges are: the upstream nodes of an input are a prefix
        // of the forward order, so layer l's 3H + 1 inputs need the first mlp(l) columns (its heads' inputs
        // only the first head(l, 0); the few extra entries are off-edge and unused), the logits all F. Half
        // the products of the full [B, F] GEMM. Node u's rows of this prompt: diff[u, row..<row+n] (stride rows·d).
        var s = [Float](repeating: 0, count: B * F)
        sink.g.withUnsafeBufferPointer { gp in diff.withUnsafeBufferPointer { dp in s.withUnsafeMutableBufferPointer { sp in
            var b0 = 0
            while b0 < B {
                let count = b0 == g.logitsInput ? 1 : 3 * g.shape.nHeads + 1, cols = g.upstream(b0 + count - 1)
                BLAS.gemm(transA: false, transB: true, m: count, n: cols, k: nd, gp.baseAddress! + b0 * nd, lda: nd,
                          dp.baseAddress! + row * d, ldb: rows * d, sp.baseAddress! + b0 * F, ldc: F)
                b0 += count
            }
        } } }
        return s
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

/// Collects δ at every node input of one sequence: [n_backward, N, d] (accumulated over passes).
final class NodeInputGradients: RelevanceSink {
    let graph: ComponentGraph
    let nd: Int
    var g: [Float]

    init(graph: ComponentGraph, rows: Int, dModel: Int) {
        self.graph = graph; nd = rows * dModel
        g = [Float](repeating: 0, count: graph.nBackward * nd)
    }

    var wantsNodeInputs: Bool { true }
    var wantsSignedGradient: Bool { false }
    func weightGradient(_ linear: Linear, _ dW: UnsafePointer<Float>) {}
    func neurons(layer: Int, _ relevance: [Float]) {}
    func heads(layer: Int, _ relevance: [Float]) {}

    private func add(_ row: Int, count rows: Int, _ x: UnsafePointer<Float>) {
        g.withUnsafeMutableBufferPointer { p in
            let o = p.baseAddress! + row * nd
            for i in 0..<(rows * nd) { o[i] += x[i] }
        }
    }
    // The tap's [3, H, N, d] order is the graph's backward order within a layer (q of every head, k, v).
    func headInputs(layer: Int, _ x: UnsafePointer<Float>, rows: Int) { add(graph.headInput(layer, 0, .q), count: 3 * graph.shape.nHeads, x) }
    func mlpInput(layer: Int, _ x: UnsafePointer<Float>, rows: Int) { add(graph.mlpInput(layer), count: 1, x) }
    func logitsInput(_ x: UnsafePointer<Float>, rows: Int) { add(graph.logitsInput, count: 1, x) }
}
