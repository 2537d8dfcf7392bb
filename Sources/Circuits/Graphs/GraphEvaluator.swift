import Foundation
import Transformer

// MARK: - Evaluating edge circuits (EAP-IG `evaluate_graph`, MIB faithfulness)
//
// A circuit run keeps its edges and replaces every other edge u → v by u's
// source value: the corrupted prompt's output at the same position (patch), 0
// (zero), or u's mean output over every token of these clean prompts (mean). The
// metric is the task's headline metric at the last position, averaged over the
// prompts (logit difference for IOI). Prompts run packed, at most `maxRows` token
// rows per pass; each pass computes its source once and runs every circuit on it,
// so a whole curve costs one source run plus one run per point per pass. Patching: the
// source run also keeps its q/k/v projections, which circuit runs reuse, and circuit runs
// compute MLPs only on the rows after each prompt's first corrupted token (`SplitForward`).
//
// Every circuit is first pruned as EAP-IG's `evaluate_graph` prunes it (`ScoredGraph.pruned`).
//
// Faithfulness curve exactly as MIB's `evaluate_area_under_curve`:
//   f(k) = (m(C_k) − m(∅)) / (m(M) − m(∅)),  k ∈ {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100} % of edges,
// C_k = the top int(k · E) edges by score (signed for CPR, |score| for CMD; Python's int(): truncated), then
// pruned (`apply_topn(…, prune=True)`), ∅ = no edge kept, M = the full model;
// CPR = ∫ f, CMD = ∫ |1 − f| over the nominal edge fraction (linear axis, trapezoids).

public enum GraphIntervention: String, Sendable, CaseIterable {
    case patch, zero, mean
}

public final class GraphEvaluator {
    public let split: SplitForward
    public let items: [TaskItem]
    public let intervention: GraphIntervention
    public let metric: HeadlineMetric
    public let maxRows: Int
    /// [n_forward, d] mean output of every node (mean intervention only).
    private var means: [Float]?

    public init(_ split: SplitForward, _ items: [TaskItem], intervention: GraphIntervention, maxRows: Int = 256) throws {
        self.split = split; self.items = items; self.intervention = intervention; self.maxRows = maxRows
        metric = HeadlineMetric.forItems(items)
        if intervention == .patch {
            for it in items {
                guard let c = it.corruptedTokens else { throw GraphAttributionError.needsCorrupted(it.location) }
                guard c.count == it.tokens.count else {
                    throw GraphAttributionError.lengthMismatch(it.location, clean: it.tokens.count, corrupted: c.count)
                }
            }
        }
        if intervention == .mean { means = measureMeans() }
    }

    private func forEachPass(_ body: (_ start: Int, _ seqs: [[Int]], _ segs: [Segment], _ emb: [Float]) throws -> Void) rethrows {
        for r in SplitForward.passes(items.map(\.tokens.count), maxRows: maxRows) {
            let seqs = items[r].map(\.tokens)
            let segs = split.segments(seqs)
            try body(r.lowerBound, seqs, segs, split.model.embedRows(seqs.flatMap { $0 }, segments: segs))
        }
    }

    private func measureMeans() -> [Float] {
        let F = split.graph.nForward, d = split.model.config.dModel
        var sum = [Double](repeating: 0, count: F * d), tokens = 0
        forEachPass { _, seqs, segs, emb in
            let out = split.run(embeddings: emb, segments: segs, record: true).outputs!
            let n = emb.count / d
            for u in 0..<F { for r in 0..<n { for j in 0..<d { sum[u * d + j] += Double(out[(u * n + r) * d + j]) } } }
            tokens += n
        }
        return sum.map { Float($0 / Double(max(tokens, 1))) }
    }

    /// Mean metric of each circuit (`nil` = the full model), in one sweep over the prompts. Each circuit is pruned
    /// first (EAP-IG's `evaluate_graph`); `prune: false` runs the masks as given.
    public func metrics(_ circuits: [[Bool]?], prune: Bool = true) throws -> [Double] {
        let F = split.graph.nForward, c = split.model.config, d = c.dModel, v = c.vocabSize
        let circuits = prune ? circuits.map { $0.map { ScoredGraph.pruned($0, split.graph).edges } } : circuits
        var sums = [Double](repeating: 0, count: circuits.count)
        // One source [n_forward, R, d] (and, patching, the source run's q/k/v [L, 3, R, qDim]) for the largest pass,
        // reused by every pass: fresh buffers this large are fresh pages, faulted and zeroed each time.
        let patched = circuits.contains { $0 != nil }
        let rows = patched ? SplitForward.passes(items.map(\.tokens.count), maxRows: maxRows)
            .map { r in items[r].reduce(0) { $0 + $1.tokens.count } }.max() ?? 0 : 0
        let source = Buffer(uninitialized: F * rows * d)
        let projections = Buffer(uninitialized: intervention == .patch ? c.nLayers * 3 * rows * c.qDim : 0)
        try forEachPass { start, seqs, segs, emb in
            let n = emb.count / d
            let selection = SplitForward.RowSelection(clean: seqs, corrupted: seqs.indices.map { items[start + $0].corruptedTokens ?? [] },
                                                      segments: segs)
            if patched {
                switch intervention {
                case .patch:
                    let corr = seqs.indices.flatMap { items[start + $0].corruptedTokens! }
                    _ = split.run(embeddings: split.model.embedRows(corr, segments: segs), segments: segs, keep: nil, source: nil,
                                  record: source.p, fullWidth: true, projections: projections.p)
                case .zero:
                    source.p.update(repeating: 0, count: F * n * d)
                case .mean:
                    means!.withUnsafeBufferPointer { mp in
                        for u in 0..<F { for r in 0..<n { (source.p + (u * n + r) * d).update(from: mp.baseAddress! + u * d, count: d) } }
                    }
                }
            }
            for (ci, keep) in circuits.enumerated() {
                let final = split.run(embeddings: emb, segments: segs, keep: keep, source: keep == nil ? nil : UnsafePointer(source.p),
                                      record: nil, fullWidth: false,
                                      sourceProjections: keep != nil && intervention == .patch ? UnsafePointer(projections.p) : nil,
                                      rows: keep != nil && intervention == .patch ? selection : nil)
                let logits = split.lastLogits(final, segments: segs)
                let pm = TaskEvaluator.metrics(logits, items, from: start, v, nil)
                for m in pm {
                    guard let x = metric.value(m) else { throw FaithfulnessError.metricUndefined(metric) }
                    sums[ci] += x
                }
            }
        }
        return sums.map { $0 / Double(max(items.count, 1)) }
    }
}

public struct FaithfulnessCurve: Sendable {
    /// MIB's grid (fractions of all edges).
    public static let fractions: [Double] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]

    public var absolute: Bool
    public var fractions: [Double]
    public var edgeCounts: [Int]
    /// Edges left after pruning (MIB's `weighted_edge_count`), per point.
    public var keptCounts: [Int]
    /// m(C_k) per point; m(M) and m(∅).
    public var metrics: [Double]
    public var full: Double
    public var empty: Double

    public var faithfulness: [Double] { metrics.map { ($0 - empty) / (full - empty) } }
    /// ∫ f over the edge fraction (trapezoids): MIB's CPR (signed ranking).
    public var area: Double { Self.trapezoid(fractions, faithfulness) }
    /// ∫ |1 − f|: MIB's CMD (absolute ranking).
    public var areaFromOne: Double { Self.trapezoid(fractions, faithfulness.map { abs(1 - $0) }) }

    public static func trapezoid(_ x: [Double], _ y: [Double]) -> Double {
        var a = 0.0
        for i in 1..<min(x.count, y.count) { a += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2 }
        return a
    }

    /// Edges kept at a fraction of `total`: MIB's `int(pct * n_scored_items)` (the product in Double, truncated).
    public static func edgeCount(_ fraction: Double, total: Int) -> Int { min(total, max(0, Int((fraction * Double(total)).rounded(.towardZero)))) }

    /// Measures the signed (CPR) and the |score| (CMD) curves of `scores` with `evaluator` in one sweep over the
    /// prompts; `extra` circuits are measured in the same sweep and their metrics returned beside the curves.
    public static func measure(_ scores: ScoredGraph, evaluator: GraphEvaluator,
                               extra: [[Bool]] = []) throws -> (signed: FaithfulnessCurve, absolute: FaithfulnessCurve, extra: [Double]) {
        let total = scores.graph.edgeCount, size = scores.scores.count
        let counts = fractions.map { edgeCount($0, total: total) }
        var circuits: [[Bool]?] = [nil, [Bool](repeating: false, count: size)]
        for absolute in [false, true] {
            let ranking = scores.ranking(absolute: absolute)
            circuits += counts.map { ScoredGraph.pruned(ScoredGraph.topN(ranking, $0, count: size), scores.graph).edges }
        }
        circuits += extra.map { ScoredGraph.pruned($0, scores.graph).edges }
        let kept = circuits.map { c in c.map { m in m.reduce(0) { $0 + ($1 ? 1 : 0) } } ?? total }
        let m = try evaluator.metrics(circuits, prune: false)
        guard m[0] != m[1] else { throw FaithfulnessError.degenerate(full: m[0], empty: m[1]) }
        let k = counts.count
        func curve(_ absolute: Bool, _ from: Int) -> FaithfulnessCurve {
            FaithfulnessCurve(absolute: absolute, fractions: fractions, edgeCounts: counts, keptCounts: Array(kept[from..<(from + k)]),
                              metrics: Array(m[from..<(from + k)]), full: m[0], empty: m[1])
        }
        return (curve(false, 2), curve(true, 2 + k), Array(m[(2 + 2 * k)...]))
    }
}
