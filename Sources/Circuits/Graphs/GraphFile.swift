import Foundation
import Transformer

// MARK: - EAP-IG's graph JSON (`Graph.to_json` / `Graph.from_json`)
//
//   {"cfg": {"n_layers", "n_heads", "parallel_attn_mlp", "d_model"},
//    "nodes": {"a0.h0": {"in_graph": bool, "score": s}, …},
//    "edges": {"input->a0.h0<q>": {"score": s, "in_graph": bool}, …}}
// The full file lists every edge (as EAP-IG writes it); the compact file lists only
// in-graph edges and nodes, which `from_json` also loads (unlisted edges keep score 0
// and stay out of the graph). Extra top-level keys (our provenance) are ignored by
// EAP-IG's reader; ours ignores theirs. Keys are written in EAP-IG's order.

public enum GraphFileError: LocalizedError, Equatable {
    case unreadable(path: String, reason: String)
    case missingKey(path: String, key: String)
    case badValue(path: String, key: String, reason: String)
    /// The file's cfg is for another model shape.
    case shapeMismatch(path: String, key: String, file: Int, model: Int)
    case unknownNode(path: String, name: String)
    case unknownEdge(path: String, name: String)
    case nonFiniteScore(edge: String)

    public var errorDescription: String? {
        switch self {
        case .unreadable(let p, let r): return "\(p): not a graph JSON file (\(r))"
        case .missingKey(let p, let k): return "\(p): missing key '\(k)' (EAP-IG graph files have cfg, nodes and edges)"
        case .badValue(let p, let k, let r): return "\(p): '\(k)' \(r)"
        case .shapeMismatch(let p, let k, let f, let m):
            return "\(p): cfg.\(k) is \(f) but the model has \(m) — the graph was made for another model"
        case .unknownNode(let p, let n): return "\(p): unknown node '\(n)' (names are input, a{layer}.h{head}, m{layer}, logits)"
        case .unknownEdge(let p, let n): return "\(p): '\(n)' is not an edge of this model's graph"
        case .nonFiniteScore(let e): return "edge \(e) has a non-finite score"
        }
    }
}

public enum GraphFile {
    /// The JSON text; `compact` lists only in-graph edges and nodes.
    public static func json(_ sg: ScoredGraph, compact: Bool = false) throws -> String {
        let g = sg.graph
        var s = "{\"cfg\": {\"n_layers\": \(g.shape.nLayers), \"n_heads\": \(g.shape.nHeads), "
            + "\"parallel_attn_mlp\": \(g.shape.parallelAttnMLP), \"d_model\": \(g.shape.dModel)},\n\"nodes\": {"
        let inNodes = sg.nodesInGraph
        var first = true
        for (i, name) in g.nodeNames.enumerated() {
            let inG = inNodes.contains(name)
            if compact && !inG { continue }
            s += (first ? "\n" : ",\n") + "\(jsonString(name)): {\"in_graph\": \(inG)"
            if let ns = sg.nodeScores, i < ns.count, name != "input" { s += ", \"score\": \(try number(ns[i], name))" }
            s += "}"
            first = false
        }
        s += "},\n\"edges\": {"
        first = true
        for e in g.edgeIndices {
            if compact && !sg.inGraph[e] { continue }
            let name = g.edgeName(e % g.nForward, e / g.nForward)
            s += (first ? "\n" : ",\n") + "\(jsonString(name)): {\"score\": \(try number(sg.scores[e], name)), \"in_graph\": \(sg.inGraph[e])}"
            first = false
        }
        s += "}"
        for (k, v) in sg.metadata { s += ",\n\(jsonString(k)): \(jsonString(v))" }
        return s + "}\n"
    }

    public static func write(_ sg: ScoredGraph, to path: String, compact: Bool = false) throws {
        try AtomicFile.write(try json(sg, compact: compact), to: path)
    }

    /// Reads a graph file (ours or EAP-IG's) for a model of `shape`: every listed edge's score and
    /// in_graph; unlisted edges score 0 and are out of the graph (as `from_json`).
    public static func read(_ path: String, shape: GraphShape) throws -> ScoredGraph {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw GraphFileError.unreadable(path: path, reason: error.localizedDescription)
        }
        return try parse(data, path: path, shape: shape)
    }

    public static func parse(_ data: Data, path: String, shape: GraphShape) throws -> ScoredGraph {
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: data) } catch {
            throw GraphFileError.unreadable(path: path, reason: "invalid JSON")
        }
        guard let top = any as? [String: Any] else { throw GraphFileError.unreadable(path: path, reason: "not a JSON object") }
        guard let cfg = top["cfg"] as? [String: Any] else { throw GraphFileError.missingKey(path: path, key: "cfg") }
        for (key, want) in [("n_layers", shape.nLayers), ("n_heads", shape.nHeads)] {
            guard let v = cfg[key] as? NSNumber else { throw GraphFileError.missingKey(path: path, key: "cfg.\(key)") }
            guard v.intValue == want else { throw GraphFileError.shapeMismatch(path: path, key: key, file: v.intValue, model: want) }
        }
        if let v = cfg["parallel_attn_mlp"] as? Bool, v {
            throw GraphFileError.badValue(path: path, key: "cfg.parallel_attn_mlp", reason: "is true; this model's attention and MLP are sequential")
        }
        guard let nodes = top["nodes"] as? [String: Any] else { throw GraphFileError.missingKey(path: path, key: "nodes") }
        guard let edges = top["edges"] as? [String: Any] else { throw GraphFileError.missingKey(path: path, key: "edges") }
        let g = ComponentGraph(shape)
        var sg = ScoredGraph(graph: g)
        var nodeScores = [Float](repeating: 0, count: g.nForward), anyNodeScore = false
        for (name, value) in nodes {
            guard name == "logits" || g.forwardIndex(name) != nil else { throw GraphFileError.unknownNode(path: path, name: name) }
            if let v = value as? [String: Any], let s = v["score"] as? NSNumber, let u = g.forwardIndex(name) {
                nodeScores[u] = s.floatValue; anyNodeScore = true
            }
        }
        for (name, value) in edges {
            guard let (u, b) = g.edge(named: name) else { throw GraphFileError.unknownEdge(path: path, name: name) }
            guard let v = value as? [String: Any] else {
                throw GraphFileError.badValue(path: path, key: "edges.\(name)", reason: "is not an object")
            }
            let e = b * g.nForward + u
            if let s = v["score"] as? NSNumber { sg.scores[e] = s.floatValue }
            else if let s = v["score"], !(s is NSNull) {
                throw GraphFileError.badValue(path: path, key: "edges.\(name).score", reason: "is not a number")
            }
            if let i = v["in_graph"] {
                guard let ib = i as? Bool else {
                    throw GraphFileError.badValue(path: path, key: "edges.\(name).in_graph", reason: "is not true/false")
                }
                sg.inGraph[e] = ib
            }
        }
        if anyNodeScore { sg.nodeScores = nodeScores }
        sg.metadata = top.keys.sorted().filter { !["cfg", "nodes", "edges"].contains($0) }.compactMap { k in
            (top[k] as? String).map { (k, $0) }
        }
        return sg
    }

    static func number(_ x: Float, _ what: String) throws -> String {
        guard x.isFinite else { throw GraphFileError.nonFiniteScore(edge: what) }
        return "\(x)"
    }

    static func jsonString(_ s: String) -> String { JSONText.quote(s) }
}
