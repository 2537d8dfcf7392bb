import Foundation
import Transformer

// MARK: - The head/MLP graph of a decoder (EAP-IG's `Graph.from_model`)
//
// Forward nodes (they write to the residual stream), in EAP-IG's order:
//   input, then per layer l: a{l}.h0 … a{l}.h{H-1}, m{l}            → n_forward = 1 + L(H+1)
// Backward nodes (inputs that read the residual stream):
//   per layer l: a{l}.h{h}<q> for every h, then <k>, then <v>, then m{l}; finally logits
//                                                                   → n_backward = L(3H+1) + 1
// An edge runs from every forward node to every later input: attention inputs of
// layer l read everything before layer l, the MLP of layer l also reads layer l's
// heads (sequential attention → MLP), logits read everything. The upstream nodes of
// any input are therefore a prefix of the forward order (`upstream(_:)`), which the
// split forward and the score matrices use: scores live in [n_backward, n_forward]
// with only the prefix of each row being edges.
// GPT-2 small / OPT-125M (12 × 12): 158 nodes, 32,491 edges.

public struct GraphShape: Equatable, Sendable {
    public var nLayers: Int
    public var nHeads: Int
    public var dModel: Int
    /// Always false here (sequential attention → MLP); kept for EAP-IG's `cfg`.
    public var parallelAttnMLP = false

    public init(nLayers: Int, nHeads: Int, dModel: Int) { self.nLayers = nLayers; self.nHeads = nHeads; self.dModel = dModel }
    public init(_ c: ModelConfig) { self.init(nLayers: c.nLayers, nHeads: c.nHeads, dModel: c.dModel) }
}

public struct ComponentGraph: Sendable {
    public enum Input: Int, Sendable { case q = 0, k, v }

    public let shape: GraphShape
    public let forwardNames: [String]
    public let backwardNames: [String]
    private let forwardIndexByName: [String: Int]
    private let backwardIndexByName: [String: Int]

    public init(_ shape: GraphShape) {
        self.shape = shape
        let L = shape.nLayers, H = shape.nHeads
        var f = ["input"]
        for l in 0..<L { for h in 0..<H { f.append("a\(l).h\(h)") }; f.append("m\(l)") }
        var b: [String] = []
        for l in 0..<L {
            for qkv in ["q", "k", "v"] { for h in 0..<H { b.append("a\(l).h\(h)<\(qkv)>") } }
            b.append("m\(l)")
        }
        b.append("logits")
        forwardNames = f; backwardNames = b
        forwardIndexByName = Dictionary(uniqueKeysWithValues: f.enumerated().map { ($1, $0) })
        backwardIndexByName = Dictionary(uniqueKeysWithValues: b.enumerated().map { ($1, $0) })
    }

    public var nForward: Int { 1 + shape.nLayers * (shape.nHeads + 1) }
    public var nBackward: Int { shape.nLayers * (3 * shape.nHeads + 1) + 1 }
    /// input, heads, MLPs, logits.
    public var nodeCount: Int { nForward + 1 }
    public var edgeCount: Int { (0..<nBackward).reduce(0) { $0 + upstream($1) } }
    public var nodeNames: [String] { forwardNames + ["logits"] }

    // Forward indices.
    public func head(_ l: Int, _ h: Int) -> Int { 1 + l * (shape.nHeads + 1) + h }
    public func mlp(_ l: Int) -> Int { 1 + l * (shape.nHeads + 1) + shape.nHeads }
    // Backward indices.
    public func headInput(_ l: Int, _ h: Int, _ i: Input) -> Int { l * (3 * shape.nHeads + 1) + i.rawValue * shape.nHeads + h }
    public func mlpInput(_ l: Int) -> Int { l * (3 * shape.nHeads + 1) + 3 * shape.nHeads }
    public var logitsInput: Int { nBackward - 1 }

    /// Number of forward nodes upstream of backward node `b` (they are forward indices 0..<upstream(b)).
    public func upstream(_ b: Int) -> Int {
        if b == logitsInput { return nForward }
        let per = 3 * shape.nHeads + 1, l = b / per
        return b % per == 3 * shape.nHeads ? mlp(l) : head(l, 0)
    }

    /// Layer of a forward node (-1 for input).
    public func layer(ofForward u: Int) -> Int { u == 0 ? -1 : (u - 1) / (shape.nHeads + 1) }

    /// The node a backward index feeds ("a3.h2" for "a3.h2<k>").
    public func nodeName(ofBackward b: Int) -> String {
        let n = backwardNames[b]
        return n.hasSuffix(">") ? String(n.dropLast(3)) : n
    }

    public func forwardIndex(_ name: String) -> Int? { forwardIndexByName[name] }
    public func backwardIndex(_ name: String) -> Int? { backwardIndexByName[name] }

    /// EAP-IG's edge name "a3.h2->m7" / "input->a0.h0<q>".
    public func edgeName(_ u: Int, _ b: Int) -> String { forwardNames[u] + "->" + backwardNames[b] }

    /// (forward, backward) of an edge name, or nil if it is not an edge of this graph.
    public func edge(named s: String) -> (u: Int, b: Int)? {
        guard let r = s.range(of: "->"),
              let u = forwardIndex(String(s[..<r.lowerBound])), let b = backwardIndex(String(s[r.upperBound...])),
              u < upstream(b) else { return nil }
        return (u, b)
    }

    /// Every edge as a flat index b·n_forward + u, in EAP-IG's order (by input, then by upstream node).
    public var edgeIndices: [Int] {
        var out: [Int] = []
        out.reserveCapacity(edgeCount)
        for b in 0..<nBackward { for u in 0..<upstream(b) { out.append(b * nForward + u) } }
        return out
    }
}
