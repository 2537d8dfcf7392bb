import Foundation
import Transformer

// MARK: - Comparing circuits (`circuit-compare`)
//
// Overlap: the kept sets of two circuits of the same granularity — heads (`a{L}.h{H}`), neurons
// (`m{L}.n{I}`) or weights (per tensor, from mask.safetensors) — as Jaccard |A∩B| / |A∪B|, per tensor
// and in total, with the shared heads/neurons listed. Transfer: each circuit's mask, applied with its
// own ablation, evaluated on every circuit's reference prompts (the part of the file its run used), so
// f of A on B's prompts says whether A's circuit is specific to the prompts it was found on.

public enum CircuitCompareError: LocalizedError, Equatable {
    case unreadable(path: String, reason: String)
    case missingKey(path: String, key: String)
    case mixedGranularity(String, String)
    case differentModels(String, String)

    public var errorDescription: String? {
        switch self {
        case .unreadable(let p, let r): return "cannot read circuit \(p): \(r)"
        case .missingKey(let p, let k): return "\(p): missing key '\(k)' (not a circuit.json written by `workbench circuit`?)"
        case .mixedGranularity(let a, let b): return "circuits of different granularity cannot be compared: \(a) and \(b)"
        case .differentModels(let a, let b): return "circuits were found on different models (sha256 differs): \(a) and \(b)"
        }
    }
}

/// One circuit read back from its directory.
public struct StoredCircuit {
    public var path: String          // the circuit.json
    public var directory: String
    public var granularity: Granularity
    public var ablation: AblationKind
    public var label: String
    public var modelSHA256: String
    public var modelPath: String
    public var referencePath: String
    public var referencePart: (index: Int, of: Int)?
    /// U8 keep flags by tensor name (mask.safetensors).
    public var flags: [String: [UInt8]]

    /// `path`: a circuit directory or its circuit.json.
    public static func load(_ path: String) throws -> StoredCircuit {
        var isDir: ObjCBool = false
        let json = FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue ? path + "/circuit.json" : path
        let dir = URL(fileURLWithPath: json).deletingLastPathComponent().path
        let obj: [String: Any]
        do {
            guard let o = try JSONSerialization.jsonObject(with: readInputFile(json, limit: 256 << 20)) as? [String: Any] else {
                throw CircuitCompareError.unreadable(path: json, reason: "not a JSON object")
            }
            obj = o
        } catch let e as CircuitCompareError { throw e } catch { throw CircuitCompareError.unreadable(path: json, reason: error.localizedDescription) }
        func get<T>(_ d: [String: Any]?, _ key: String, _ full: String) throws -> T {
            guard let v = d?[key] as? T else { throw CircuitCompareError.missingKey(path: json, key: full) }
            return v
        }
        let settings: [String: Any] = try get(obj, "settings", "settings")
        let gText: String = try get(settings, "granularity", "settings.granularity")
        let aText: String = try get(settings, "ablation", "settings.ablation")
        guard let g = Granularity(rawValue: gText) else { throw CircuitCompareError.missingKey(path: json, key: "settings.granularity") }
        guard let a = AblationKind(rawValue: aText) else { throw CircuitCompareError.missingKey(path: json, key: "settings.ablation") }
        let model: [String: Any] = try get(obj, "model", "model")
        let task: [String: Any] = try get(obj, "task", "task")
        let ref: [String: Any] = try get(task, "reference", "task.reference")
        var label: String = try get(settings, "method", "settings.method")
        if let agg = settings["aggregation"] as? String { label += " (\(agg))" }
        if let seed = settings["seed"] as? Int { label += " seed \(seed)" }
        let part = (ref["part"] as? Int).flatMap { i in (ref["parts"] as? Int).map { (i, $0) } }
        if let part { label += " part \(part.0)/\(part.1)" }
        let maskPath = dir + "/mask.safetensors"
        var flags: [String: [UInt8]] = [:]
        do {
            let f = try SafetensorsFile(path: maskPath)
            for n in f.names { flags[n] = try f.bytes(n) }
        } catch { throw CircuitCompareError.unreadable(path: maskPath, reason: error.localizedDescription) }
        return StoredCircuit(path: json, directory: dir, granularity: g, ablation: a, label: "\(label) · \(g.rawValue) · \(a.rawValue)",
                             modelSHA256: try get(model, "sha256", "model.sha256"), modelPath: try get(model, "path", "model.path"), referencePath: try get(ref, "path", "task.reference.path"),
                             referencePart: part, flags: flags)
    }

    /// Kept heads or neurons (unit tensors named `….self_attn.heads` / `….mlp.neurons`, layer from the name's order).
    public func units(model: Model) -> Set<CircuitUnit> {
        var out = Set<CircuitUnit>()
        for l in 0..<model.config.nLayers {
            let name = granularity == .heads ? ScoreNames.heads(model, layer: l) : ScoreNames.neurons(model, layer: l)
            for (i, k) in (flags[name] ?? []).enumerated() where k == 1 { out.insert(CircuitUnit(layer: l, index: i)) }
        }
        return out
    }

    /// The ablation mask this circuit applies.
    public func mask(model: Model) throws -> CircuitMask {
        let c = model.config
        switch granularity {
        case .weights: return .weights(flags)
        case .neurons, .heads:
            let n = granularity == .heads ? c.nHeads : c.dFF
            var rows = [[Bool]](repeating: [Bool](repeating: true, count: n), count: c.nLayers)
            for l in 0..<c.nLayers {
                let name = granularity == .heads ? ScoreNames.heads(model, layer: l) : ScoreNames.neurons(model, layer: l)
                guard let f = flags[name] else { continue }
                guard f.count == n else { throw AblationError.shape("\(name): \(f.count) flags for \(n) units") }
                rows[l] = f.map { $0 == 1 }
            }
            return granularity == .heads ? .heads(rows) : .neurons(rows)
        }
    }
}

public struct CircuitOverlap {
    public var a: Int, b: Int
    public var intersection: Int, union: Int
    public var jaccard: Double { union == 0 ? 1 : Double(intersection) / Double(union) }
    /// Weights: per tensor (name → (∩, ∪)); empty for units.
    public var perTensor: [(name: String, intersection: Int, union: Int)]
    /// Heads/neurons kept by both, in (layer, index) order.
    public var shared: [CircuitUnit]

    public static func of(_ x: StoredCircuit, _ y: StoredCircuit, model: Model) -> CircuitOverlap {
        if x.granularity == .weights {
            var per: [(String, Int, Int)] = [], i = 0, u = 0, na = 0, nb = 0
            for name in Set(x.flags.keys).union(y.flags.keys).sorted() {
                let fa = x.flags[name], fb = y.flags[name]
                let n = max(fa?.count ?? 0, fb?.count ?? 0)
                var ii = 0, uu = 0
                for j in 0..<n {
                    let ka = fa.map { j < $0.count && $0[j] == 1 } ?? true, kb = fb.map { j < $0.count && $0[j] == 1 } ?? true
                    if ka && kb { ii += 1 }
                    if ka || kb { uu += 1 }
                    if ka { na += 1 }
                    if kb { nb += 1 }
                }
                per.append((name, ii, uu)); i += ii; u += uu
            }
            return CircuitOverlap(a: na, b: nb, intersection: i, union: u, perTensor: per.map { ($0.0, $0.1, $0.2) }, shared: [])
        }
        let ua = x.units(model: model), ub = y.units(model: model)
        return CircuitOverlap(a: ua.count, b: ub.count, intersection: ua.intersection(ub).count, union: ua.union(ub).count,
                              perTensor: [], shared: ua.intersection(ub).sorted())
    }
}

public enum CircuitTransfer {
    /// f of each circuit (rows) on each prompt set (columns), each circuit with its own ablation; baselines m(M) and
    /// m(∅) measured on each set with that ablation (means over that set's tokens for mean ablation).
    public static func matrix(model: Model, circuits: [StoredCircuit], sets: [[TaskItem]],
                              progress: (String) -> Void = { _ in }) throws -> [[Double]] {
        let ablator = Ablator(model: model)
        defer { ablator.restore() }
        var out = [[Double]](repeating: [Double](repeating: .nan, count: sets.count), count: circuits.count)
        for (j, items) in sets.enumerated() {
            var baselines: [String: (FaithfulnessBaseline, MeanActivations?, PatchSource?)] = [:]
            for (i, c) in circuits.enumerated() {
                let key = "\(c.granularity.rawValue)/\(c.ablation.rawValue)"
                if baselines[key] == nil {
                    let means = c.ablation == .mean ? MeanActivations.measure(model, items.map(\.tokens)) : nil
                    let patch = c.ablation == .patch ? try PatchSource.capture(model, items) : nil
                    let b = try Faithfulness.baseline(ablator, items, granularity: c.granularity, ablation: c.ablation, means: means, patch: patch)
                    baselines[key] = (b, means, patch)
                }
                let (b, means, patch) = baselines[key]!
                out[i][j] = try Faithfulness.evaluate(ablator, items, mask: try c.mask(model: model), baseline: b, means: means, patch: patch).f
                progress(String(format: "f of circuit %d on prompt set %d: %.4f", i, j, out[i][j]))
            }
        }
        return out
    }
}
