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

    /// Marks the top `n` edges (EAP-IG `apply_topn(n, absolute)`); every other edge leaves the graph.
    public mutating func applyTopN(_ n: Int, absolute: Bool) {
        inGraph = Self.topN(ranking(absolute: absolute), n, count: scores.count)
    }

    /// An in-graph mask of `count` entries with the first `n` of `ranking` set.
    public static func topN(_ ranking: [Int], _ n: Int, count: Int) -> [Bool] {
        var m = [Bool](repeating: false, count: count)
        for i in ranking.prefix(max(0, n)) { m[i] = true }
        return m
    }

    /// Forward nodes with an in-graph outgoing edge and inputs with an in-graph incoming edge,
    /// by node name (input and logits included when they have one).
    public var nodesInGraph: Set<String> {
        var s = Set<String>()
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
