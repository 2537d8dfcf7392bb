import Foundation
import Transformer

// MARK: - The files of a circuit directory
//
// curve.json / curve.csv / curve.svg, mask.safetensors (HF names, U8, kept = 1;
// every decoder linear for weight circuits, every layer's unit tensor for
// neuron and head circuits) and circuit.json. Every file carries the settings
// that produced its numbers (method, aggregation, granularity, ablation,
// score sign, scheme, seed): those choices change results more than methods do.

/// Inputs and hashes recorded with the circuit.
public struct CircuitProvenance: Sendable {
    public var modelPath: String
    public var modelSHA256: String
    public var modelFiles: [String]
    public var referencePath: String
    public var referenceSHA256: String
    public var heldoutPath: String?
    public var heldoutSHA256: String?
    /// With `circuit --seeds N`: this circuit's reference prompts are part `index` of `of` (see `ReferenceResamples`).
    public var referencePart: (index: Int, of: Int)? = nil
    public init(modelPath: String, modelSHA256: String, modelFiles: [String], referencePath: String, referenceSHA256: String,
                heldoutPath: String?, heldoutSHA256: String?) {
        self.modelPath = modelPath; self.modelSHA256 = modelSHA256; self.modelFiles = modelFiles
        self.referencePath = referencePath; self.referenceSHA256 = referenceSHA256
        self.heldoutPath = heldoutPath; self.heldoutSHA256 = heldoutSHA256
    }
    /// Every file the circuit was computed from (an output may be none of them).
    public var inputs: [String] { [modelPath, referencePath] + (heldoutPath.map { [$0] } ?? []) }
}

public enum CircuitReport {
    public static func settingsDict(_ s: CircuitSettings, _ r: CircuitResult) -> [String: Any] {
        settingsDict(s, metric: r.reference.baseline.metric)
    }

    public static func settingsDict(_ s: CircuitSettings, metric: HeadlineMetric) -> [String: Any] {
        var d: [String: Any] = [
            "method": s.method.rawValue, "granularity": s.granularity.rawValue, "scheme": s.scheme.rawValue,
            "ablation": s.ablation.rawValue, "score_sign": s.rank.rawValue, "threshold": s.threshold, "grid_points": s.gridPoints,
            "metric": metric.rawValue, "layers": s.layers ?? NSNull(), "bisection_tolerance": s.effectiveBisectionTolerance,
            "faithfulness": "f = (m(C) - m(empty)) / (m(full) - m(empty)); m(empty) = every candidate ablated, measured",
        ]
        if s.method == .lrp || s.method == .gradient {
            d["aggregation"] = s.aggregation.rawValue
            d["explained"] = CircuitDiscovery.explained
        } else { d["aggregation"] = NSNull() }
        if s.method == .lrp { d["rule"] = "attnlrp" }
        d["seed"] = s.method == .random ? Int(s.seed) : NSNull()
        if s.ablation == .mean { d["mean_over"] = "every token of the reference set" }
        return d
    }

    static func pointDict(_ p: CurvePoint) -> [String: Any] {
        var d: [String: Any] = ["fraction": p.fraction, "kept": p.kept, "nominal_k": p.nominal,
                                "f_reference": p.reference.f, "metric_reference": p.reference.metric]
        if let h = p.heldout { d["f_heldout"] = h.f; d["metric_heldout"] = h.metric }
        return d
    }

    static func baselineDict(_ e: CircuitEvalSet) -> [String: Any] {
        ["prompts": e.items.count, "metric_full": e.baseline.full, "metric_empty": e.baseline.empty]
    }

    public static func curveJSON(_ r: CircuitResult, _ s: CircuitSettings, _ p: CircuitProvenance) -> [String: Any] {
        var d: [String: Any] = [
            "settings": settingsDict(s, r), "candidates": r.candidates.total,
            "points": r.curve.map(pointDict), "circuit": pointDict(r.crossing),
            "auc_reference": r.aucReference, "auc_axis": "kept fraction, linear, trapezoids (MIB's CPR)",
            "reference": baselineDict(r.reference).merging(["path": p.referencePath]) { a, _ in a },
            "model": p.modelPath,
        ]
        if let h = r.heldout {
            d["heldout"] = baselineDict(h).merging(["path": p.heldoutPath ?? ""]) { a, _ in a }
            d["auc_heldout"] = r.aucHeldout ?? NSNull()
        }
        return d
    }

    public static func curveCSV(_ r: CircuitResult, _ s: CircuitSettings) -> String {
        var o = "method,aggregation,granularity,ablation,score_sign,scheme,fraction,kept,f_reference,metric_reference,f_heldout,metric_heldout\n"
        let agg = (s.method == .lrp || s.method == .gradient) ? s.aggregation.rawValue : ""
        for p in r.curve {
            o += "\(s.method.rawValue),\(agg),\(s.granularity.rawValue),\(s.ablation.rawValue),\(s.rank.rawValue),\(s.scheme.rawValue),"
            o += "\(p.fraction),\(p.kept),\(p.reference.f),\(p.reference.metric),"
            o += p.heldout.map { "\($0.f),\($0.metric)" } ?? ","
            o += "\n"
        }
        return o
    }

    public static func circuitJSON(_ r: CircuitResult, _ s: CircuitSettings, _ p: CircuitProvenance, model: Model) -> [String: Any] {
        let c = r.candidates, k = r.crossing.nominal, keep = c.keep(k)
        var perTensor: [String: Any] = [:]
        var perLayer: [Int: (Int, Int)] = [:]
        for (e, f) in zip(c.entries, keep) {
            let kept = f.lazy.filter { $0 }.count
            perTensor[e.name] = ["kept": kept, "total": f.count]
            let l = perLayer[e.layer] ?? (0, 0)
            perLayer[e.layer] = (l.0 + kept, l.1 + f.count)
        }
        // Sorted while the score is still typed, then turned into JSON objects.
        let units: [[String: Any]] = c.keptUnits(k).map {
            ["layer": $0.unit.layer, "index": $0.unit.index, "name": $0.unit.name(s.granularity), "score": Double($0.score)]
        }
        var reference: [String: Any] = ["path": p.referencePath, "sha256": p.referenceSHA256, "prompts": r.reference.items.count]
        if let part = p.referencePart {
            reference["part"] = part.index; reference["parts"] = part.of; reference["part_rule"] = ReferenceResamples.rule
        }
        var task: [String: Any] = ["reference": reference]
        if let h = r.heldout { task["heldout"] = ["path": p.heldoutPath ?? "", "sha256": p.heldoutSHA256 ?? "", "prompts": h.items.count] }
        var circuit: [String: Any] = [
            "kept": r.crossing.kept, "candidates": c.total, "fraction": r.crossing.fraction,
            "f_reference": r.crossing.reference.f, "metric_reference": r.crossing.reference.metric,
            "bisection_evaluations": r.bisectionEvaluations,
        ]
        if let h = r.crossing.heldout { circuit["f_heldout"] = h.f; circuit["metric_heldout"] = h.metric }
        var d: [String: Any] = [
            "model": ["path": p.modelPath, "sha256": p.modelSHA256, "files": p.modelFiles, "family": model.config.family.rawValue],
            "task": task, "settings": settingsDict(s, r), "circuit": circuit,
            "baseline": ["reference": baselineDict(r.reference)].merging(r.heldout.map { ["heldout": baselineDict($0)] } ?? [:]) { a, _ in a },
            "kept_per_tensor": perTensor,
            "kept_per_layer": perLayer.keys.sorted().map { ["layer": $0, "kept": perLayer[$0]!.0, "total": perLayer[$0]!.1] },
            "seconds": ["attribution": r.attributionSeconds, "curve_and_bisection": r.curveSeconds],
            "mask_file": "mask.safetensors (U8, 1 = kept; HF names)",
        ]
        if s.granularity != .weights { d[s.granularity == .heads ? "kept_heads" : "kept_neurons"] = units }
        return d
    }

    /// U8 keep flags under HF names (see the file comment).
    public static func maskRecords(_ r: CircuitResult, model: Model) -> [SafetensorsRecord] {
        let c = r.candidates
        switch c.mask(r.crossing.nominal) {
        case .weights(let d):
            return model.linears.map { lin in
                SafetensorsRecord(name: lin.name, u8: d[lin.name] ?? [UInt8](repeating: 1, count: lin.weight.count), shape: [lin.outDim, lin.inDim])
            }
        case .neurons(let rows):
            return rows.enumerated().map { SafetensorsRecord(name: ScoreNames.neurons(model, layer: $0), u8: $1.map { $0 ? 1 : 0 }, shape: [$1.count]) }
        case .heads(let rows):
            return rows.enumerated().map { SafetensorsRecord(name: ScoreNames.heads(model, layer: $0), u8: $1.map { $0 ? 1 : 0 }, shape: [$1.count]) }
        }
    }

    /// Pretty, key-sorted JSON (stable bytes for the same values).
    public static func json(_ d: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: d, options: [.prettyPrinted, .sortedKeys])
    }

    /// The circuit's files into an existing directory `dir`.
    public static func writeFiles(_ r: CircuitResult, _ s: CircuitSettings, _ p: CircuitProvenance, model: Model, into dir: String,
                                  title: String) throws {
        let md = ["format": "circuit-mask", "granularity": s.granularity.rawValue, "method": s.method.rawValue,
                  "ablation": s.ablation.rawValue, "kept": "\(r.crossing.kept)", "candidates": "\(r.candidates.total)"]
        try Safetensors.write(maskRecords(r, model: model), metadata: md, to: dir + "/mask.safetensors")
        try AtomicFile.write(try json(curveJSON(r, s, p)), to: dir + "/curve.json")
        try AtomicFile.write(curveCSV(r, s), to: dir + "/curve.csv")
        try AtomicFile.write(CurveSVG.render(r, settings: s, title: title), to: dir + "/curve.svg")
        try AtomicFile.write(try json(circuitJSON(r, s, p, model: model)), to: dir + "/circuit.json")
        if let g = graph(r, s, p, model: model) { try GraphFile.write(g, to: dir + "/graph.json") }
    }

    /// Head and neuron circuits as an EAP-IG graph (`NodeCircuitGraph`); nil for weight circuits.
    public static func graph(_ r: CircuitResult, _ s: CircuitSettings, _ p: CircuitProvenance, model: Model) -> ScoredGraph? {
        let c = r.candidates
        guard c.granularity != .weights else { return nil }
        var keep: [Int: [Bool]] = [:], scores: [Int: [Float]] = [:]
        for (e, f) in zip(c.entries, c.keep(r.crossing.nominal)) { keep[e.layer] = f; scores[e.layer] = e.scores }
        var g = NodeCircuitGraph.graph(shape: GraphShape(model.config), granularity: c.granularity, keep: keep, scores: scores)
        let agg = (s.method == .lrp || s.method == .gradient) ? s.aggregation.rawValue : "-"
        g.metadata = [("workbench_source", "workbench circuit: a \(c.granularity.rawValue) circuit as nodes (edge scores 0; in_graph = both ends kept)"),
                      ("workbench_model", p.modelPath), ("workbench_model_sha256", p.modelSHA256),
                      ("workbench_task", p.referencePath), ("workbench_task_sha256", p.referenceSHA256),
                      ("workbench_method", s.method.rawValue), ("workbench_aggregation", agg),
                      ("workbench_granularity", c.granularity.rawValue), ("workbench_ablation", s.ablation.rawValue),
                      ("workbench_score_sign", s.rank.rawValue),
                      ("workbench_node_score", c.granularity == .heads ? "the head's score" : "sum of the MLP's neuron scores"),
                      ("workbench_kept", "\(r.crossing.kept) of \(c.total) \(c.granularity.rawValue)")]
        return g
    }

    /// Writes one circuit's directory atomically (`OutputDirectory`).
    public static func write(_ r: CircuitResult, _ s: CircuitSettings, _ p: CircuitProvenance, model: Model, to out: String,
                             title: String) throws {
        try OutputDirectory.write(out, inputs: p.inputs) { try writeFiles(r, s, p, model: model, into: $0, title: title) }
    }
}
