import Foundation
import Transformer

// MARK: - Edge scores and the circuit they select
//
// Scores are [n_backward, n_forward] (row b = one node input, entries u < upstream(b)
// are its edges, the rest stay 0). Sign convention: a positive score means the edge
// carries the behaviour (patching it with the corrupted value lowers the metric), as
// MIB's attribution with `loss=True` orders them. `in_graph` is the circuit.

public struct ScoredGraph {
    public let graph: ComponentGraph
    /// [n_backward · n_forward]
    public var scores: [Float]
    /// [n_backward · n_forward]; false off the edge prefix.
    public var inGraph: [Bool]
    /// Per forward node (heads, MLPs; input included), or nil.
    public var nodeScores: [Float]?
    /// Extra top-level keys written beside cfg/nodes/edges (model hash, task, method…), in order.
    public var metadata: [(String, String)] = []

    public init(graph: ComponentGraph, scores: [Float]? = nil) {
        self.graph = graph
        let n = graph.nBackward * graph.nForward
        precondition(scores == nil || scores!.count == n)
        self.scores = scores ?? [Float](repeating: 0, count: n)
        inGraph = [Bool](repeating: false, count: n)
    }

    public var inGraphCount: Int { graph.edgeIndices.reduce(0) { $0 + (inGraph[$1] ? 1 : 0) } }

    /// Edge indices ordered by score, highest first (|score| with `absolute`); ties by EAP-IG order.
    public func ranking(absolute: Bool) -> [Int] {
        let e = graph.edgeIndices
        let key = e.map { absolute ? abs(scores[$0]) : scores[$0] }
        return e.indices.sorted { key[$0] != key[$1] ? key[$0] > key[$1] : $0 < $1 }.map { e[$0] }
    }

    /// Marks the top `n` edges (EAP-IG `apply_topn(n, absolute)`); every other edge leaves the graph. With
    /// `prune` (EAP-IG's default) the selection is then pruned as `Graph.prune()` does (`pruned(_:_:)`), so
    /// fewer than `n` edges may stay.
    public mutating func applyTopN(_ n: Int, absolute: Bool, prune: Bool = true) {
        inGraph = Self.topN(ranking(absolute: absolute), n, count: scores.count)
        if prune { inGraph = Self.pruned(inGraph, graph).edges }
    }

    /// An in-graph mask of `count` entries with the first `n` of `ranking` set.
    public static func topN(_ ranking: [Int], _ n: Int, count: Int) -> [Bool] {
        var m = [Bool](repeating: false, count: count)
        for i in ranking.prefix(max(0, n)) { m[i] = true }
        return m
    }

    /// EAP-IG's `Graph.prune()`, which `evaluate_graph` runs before every evaluation and MIB's curve runs after
    /// every `apply_topn`: a forward node stays only with an in-graph outgoing edge and an in-graph incoming edge
    /// (into any of its q/k/v inputs; `input` needs none); edges whose source or destination node left go too
    /// (`logits` always stays); repeated until the node set stops changing. Returns the edge mask
    /// [n_backward · n_forward] and the nodes left [n_forward]. Under patching this changes no metric (a node whose
    /// inputs are all patched already outputs its corrupted value; a node without in-graph outgoing edges reaches
    /// nothing); under zero and mean ablation it does (such a node's output is f(0) or f(mean), not 0 or the mean).
    public static func pruned(_ mask: [Bool], _ g: ComponentGraph) -> (edges: [Bool], nodes: [Bool]) {
        let F = g.nForward, B = g.nBackward, per = 3 * g.shape.nHeads + 1
        // Forward node that owns input b (-1: logits).
        let owner = (0..<B).map { b -> Int in
            if b == g.logitsInput { return -1 }
            let l = b / per, r = b % per
            return r == 3 * g.shape.nHeads ? g.mlp(l) : g.head(l, r % g.shape.nHeads)
        }
        var e = mask, previous: [Bool]? = nil
        while true {
            var out = [Bool](repeating: false, count: F), inc = [Bool](repeating: false, count: F)
            inc[0] = true                                                       // input: treated as fed
            for b in 0..<B {
                for u in 0..<g.upstream(b) where e[b * F + u] {
                    out[u] = true
                    if owner[b] >= 0 { inc[owner[b]] = true }
                }
            }
            let nodes = zip(out, inc).map { $0 && $1 }
            if nodes == previous { return (e, nodes) }
            for b in 0..<B {
                let dst = owner[b] < 0 || nodes[owner[b]]
                for u in 0..<g.upstream(b) where e[b * F + u] && !(dst && nodes[u]) { e[b * F + u] = false }
            }
            previous = nodes
        }
    }

    /// Forward nodes with an in-graph outgoing edge and inputs with an in-graph incoming edge,
    /// by node name (input included when it has one; logits always, as EAP-IG's `LogitNode.in_graph`).
    public var nodesInGraph: Set<String> {
        var s: Set<String> = ["logits"]
        for b in 0..<graph.nBackward {
            for u in 0..<graph.upstream(b) where inGraph[b * graph.nForward + u] {
                s.insert(graph.forwardNames[u]); s.insert(graph.nodeName(ofBackward: b))
            }
        }
        return s
    }

    /// Node scores from edge scores: Σ of a node's outgoing edge scores (forward nodes).
    public static func outgoingSums(_ scores: [Float], _ g: ComponentGraph) -> [Float] {
        var out = [Float](repeating: 0, count: g.nForward)
        for b in 0..<g.nBackward { for u in 0..<g.upstream(b) { out[u] += scores[b * g.nForward + u] } }
        return out
    }
}
