import Foundation
import Transformer

// MARK: - A head or neuron circuit as an EAP-IG graph
//
// `workbench circuit` removes heads or MLP neurons, not edges. So that tools
// reading EAP-IG graphs can load such a circuit, it is written as the node set
// it leaves in the model:
// - a node is in_graph when it is not removed: a head when it is kept (or is
//   not a candidate: a layer outside --layers, or every head of a neuron
//   circuit); an MLP `m{L}` when any of its neurons is kept (or it is not a
//   candidate, as every MLP of a head circuit); `input` and `logits` always;
// - an edge is in_graph when both its ends are;
// - node scores are the component scores (a head's score; an MLP's = Σ of its
//   neurons' scores), 0 for nodes that were not candidates;
// - edge scores are 0: a node circuit has no edge scores (its in_graph flags,
//   not a top-n of scores, are the circuit).
// A neuron circuit keeps only some neurons of an in-graph MLP; the graph cannot
// say which (circuit.json and mask.safetensors do).

public enum NodeCircuitGraph {
    /// `keep[l][i]` for candidate layer l of `granularity` (nil = not a candidate, every unit kept);
    /// `scores[l][i]` likewise.
    public static func graph(shape: GraphShape, granularity: Granularity,
                             keep: [Int: [Bool]], scores: [Int: [Float]]) -> ScoredGraph {
        precondition(granularity != .weights, "a weight circuit has no node graph")
        let g = ComponentGraph(shape)
        var inNode = [Bool](repeating: true, count: g.nForward)   // by forward index
        var nodeScore = [Float](repeating: 0, count: g.nForward)
        for l in 0..<shape.nLayers {
            switch granularity {
            case .heads:
                for h in 0..<shape.nHeads {
                    inNode[g.head(l, h)] = keep[l]?[h] ?? true
                    nodeScore[g.head(l, h)] = scores[l]?[h] ?? 0
                }
            case .neurons:
                inNode[g.mlp(l)] = keep[l].map { $0.contains(true) } ?? true
                nodeScore[g.mlp(l)] = scores[l].map { $0.reduce(0, +) } ?? 0
            case .weights: break
            }
        }
        var sg = ScoredGraph(graph: g)
        for b in 0..<g.nBackward {
            let target = b == g.logitsInput ? true : inNode[g.forwardIndex(g.nodeName(ofBackward: b))!]
            guard target else { continue }
            for u in 0..<g.upstream(b) where inNode[u] { sg.inGraph[b * g.nForward + u] = true }
        }
        sg.nodeScores = nodeScore
        return sg
    }

    /// Names of the forward nodes a node circuit keeps, heads and MLPs only (input excluded).
    public static func keptNodes(_ sg: ScoredGraph) -> Set<String> {
        sg.nodesInGraph.subtracting(["input", "logits"])
    }
}
