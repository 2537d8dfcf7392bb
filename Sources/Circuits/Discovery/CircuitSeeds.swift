import Foundation
import Transformer

// MARK: - Several reference sets: mean ± SEM over seeds (`circuit --seeds N`)
//
// One circuit found on one prompt set is one sample: its size and faithfulness
// move with the prompts (and, for `random`, with the draw). With --seeds N the
// reference file is cut into N disjoint parts of equal size (a seeded shuffle,
// each part in file order), the whole discovery — attribution, ranking, curve,
// bisection — runs on each part, and every number is reported as mean ± SEM
// over the N runs. The held-out set is the same for every run, so the spread of
// its f is the spread of the circuits, not of the prompts they are judged on.

public enum ReferenceResamples {
    /// Fixed shuffle seed: the parts of a file are the same on every machine and every run.
    public static let shuffleSeed: UInt64 = 0
    public static let rule = "SplitMix64(0) Fisher–Yates shuffle of the file's prompts; part i = shuffled[i·m ..< (i+1)·m], m = ⌊n / parts⌋, in file order"

    /// `parts` disjoint parts of ⌊count / parts⌋ elements each (the remainder is unused), each in the input's order.
    public static func parts<T>(_ items: [T], parts n: Int) throws -> [[T]] {
        precondition(n >= 1)
        if n == 1 { return [items] }
        let m = items.count / n
        guard m >= 2 else { throw CircuitError.tooFewPromptsForSeeds(prompts: items.count, seeds: n) }
        var order = Array(items.indices)
        var rng = SeededRNG(seed: shuffleSeed)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return (0..<n).map { p in order[(p * m)..<((p + 1) * m)].sorted().map { items[$0] } }
    }
}

/// What one seed's run contributes to the summary (small: no scores, no masks).
public struct CircuitSeedRun: Sendable {
    public var seed: Int
    public var referencePrompts: Int
    public var total: Int
    public var kept: Int
    public var fraction: Double
    public var fReference: Double
    public var fHeldout: Double?
    public var aucReference: Double
    public var aucHeldout: Double?
    /// Per grid point (the grid depends only on the candidate count, so it is the same for every seed).
    public var curve: [(fraction: Double, fReference: Double, fHeldout: Double?)]
    /// Kept heads or neurons as (layer, index); empty for weight circuits.
    public var units: [CircuitUnit]
    /// Kept count of every candidate tensor (a weight matrix, or one layer's heads / neurons), in candidate order.
    public var tensors: [TensorKept]

    public init(seed: Int, referencePrompts: Int, total: Int, kept: Int, fraction: Double, fReference: Double, fHeldout: Double?,
                aucReference: Double, aucHeldout: Double?, curve: [(fraction: Double, fReference: Double, fHeldout: Double?)],
                units: [CircuitUnit], tensors: [TensorKept] = []) {
        self.seed = seed; self.referencePrompts = referencePrompts; self.total = total; self.kept = kept; self.fraction = fraction
        self.fReference = fReference; self.fHeldout = fHeldout; self.aucReference = aucReference; self.aucHeldout = aucHeldout
        self.curve = curve; self.units = units; self.tensors = tensors
    }

    public init(seed: Int, _ r: CircuitResult) {
        self.seed = seed
        referencePrompts = r.reference.items.count
        total = r.candidates.total
        kept = r.crossing.kept
        fraction = r.crossing.fraction
        fReference = r.crossing.reference.f
        fHeldout = r.crossing.heldout?.f
        aucReference = r.aucReference
        aucHeldout = r.aucHeldout
        curve = r.curve.map { ($0.fraction, $0.reference.f, $0.heldout?.f) }
        units = r.candidates.granularity == .weights ? [] : r.candidates.keptUnits(r.crossing.nominal).map(\.unit)
        tensors = zip(r.candidates.entries, r.candidates.keep(r.crossing.nominal)).map { e, f in
            TensorKept(name: e.name, layer: e.layer, kept: f.lazy.filter { $0 }.count, total: f.count)
        }
    }
}

/// How much of one candidate tensor a circuit keeps.
public struct TensorKept: Equatable, Sendable {
    public var name: String
    public var layer: Int
    public var kept: Int
    public var total: Int
    public init(name: String, layer: Int, kept: Int, total: Int) { self.name = name; self.layer = layer; self.kept = kept; self.total = total }

    /// The tensor's role inside its layer, from its name: what follows the layer index, without a trailing
    /// `weight` ("self_attn.q_proj", "mlp.neurons"); the whole name when it has no layer index.
    public var matrix: String {
        var parts = name.split(separator: ".").map(String.init)
        guard let i = parts.firstIndex(of: String(layer)), layer >= 0 else { return name }
        parts = Array(parts[(i + 1)...])
        if parts.count > 1, parts.last == "weight" { parts.removeLast() }
        return parts.joined(separator: ".")
    }
}

/// A head (`a{L}.h{H}`) or an MLP neuron (`m{L}.n{I}`) by layer and index.
public struct CircuitUnit: Hashable, Comparable, Sendable {
    public var layer: Int
    public var index: Int
    public init(layer: Int, index: Int) { self.layer = layer; self.index = index }
    public static func < (a: Self, b: Self) -> Bool { (a.layer, a.index) < (b.layer, b.index) }
    /// EAP-IG's node name for a head; neurons as the MLP node plus the hidden index.
    public func name(_ g: Granularity) -> String { g == .heads ? "a\(layer).h\(index)" : "m\(layer).n\(index)" }
}

public struct CircuitSeedSummary {
    public var runs: [CircuitSeedRun]
    public var granularity: Granularity

    public init(runs: [CircuitSeedRun], granularity: Granularity) { self.runs = runs; self.granularity = granularity }

    public var kept: MeanSEM { MeanSEM(runs.map { Double($0.kept) }) }
    public var fraction: MeanSEM { MeanSEM(runs.map(\.fraction)) }
    public var fReference: MeanSEM { MeanSEM(runs.map(\.fReference)) }
    public var fHeldout: MeanSEM? { runs.allSatisfy { $0.fHeldout != nil } && !runs.isEmpty ? MeanSEM(runs.map { $0.fHeldout! }) : nil }
    public var aucReference: MeanSEM { MeanSEM(runs.map(\.aucReference)) }
    public var aucHeldout: MeanSEM? { runs.allSatisfy { $0.aucHeldout != nil } && !runs.isEmpty ? MeanSEM(runs.map { $0.aucHeldout! }) : nil }

    /// f at each grid point, mean ± SEM over seeds (x = the mean kept fraction at that point).
    public var meanCurve: [(fraction: Double, fReference: MeanSEM, fHeldout: MeanSEM?)] {
        guard let n = runs.map(\.curve.count).min() else { return [] }
        return (0..<n).map { i in
            let pts = runs.map { $0.curve[i] }
            let held = pts.allSatisfy { $0.fHeldout != nil } ? MeanSEM(pts.map { $0.fHeldout! }) : nil
            return (MeanSEM(pts.map(\.fraction)).mean, MeanSEM(pts.map(\.fReference)), held)
        }
    }

    /// Every unit kept by at least one seed with the number of seeds that kept it (most often first, then by layer, index).
    public var recurrence: [(unit: CircuitUnit, seeds: Int)] {
        var c: [CircuitUnit: Int] = [:]
        for r in runs { for u in r.units { c[u, default: 0] += 1 } }
        return c.map { ($0.key, $0.value) }.sorted { $0.seeds != $1.seeds ? $0.seeds > $1.seeds : $0.unit < $1.unit }
    }

    static func dict(_ m: MeanSEM) -> [String: Any] { ["mean": m.mean, "sem": m.sem ?? NSNull(), "n": m.n] }

    public func json(settings: [String: Any]) -> [String: Any] {
        var d: [String: Any] = [
            "settings": settings, "seeds": runs.count, "resample_rule": ReferenceResamples.rule,
            "sem": "sample standard deviation (n - 1) / sqrt(n) over seeds",
            "kept": Self.dict(kept), "fraction": Self.dict(fraction), "f_reference": Self.dict(fReference),
            "auc_reference": Self.dict(aucReference),
            "runs": runs.map { r -> [String: Any] in
                ["seed": r.seed, "directory": "seed-\(r.seed)", "reference_prompts": r.referencePrompts, "kept": r.kept, "candidates": r.total,
                 "fraction": r.fraction, "f_reference": r.fReference, "f_heldout": r.fHeldout ?? NSNull(),
                 "auc_reference": r.aucReference, "auc_heldout": r.aucHeldout ?? NSNull()]
            },
            "mean_curve": meanCurve.map { p -> [String: Any] in
                ["fraction": p.fraction, "f_reference": Self.dict(p.fReference), "f_heldout": p.fHeldout.map(Self.dict) ?? NSNull()]
            },
        ]
        if let h = fHeldout { d["f_heldout"] = Self.dict(h) }
        if let h = aucHeldout { d["auc_heldout"] = Self.dict(h) }
        if granularity != .weights {
            d[granularity == .heads ? "recurring_heads" : "recurring_neurons"] = recurrence.map {
                ["name": $0.unit.name(granularity), "layer": $0.unit.layer, "index": $0.unit.index, "seeds": $0.seeds] as [String: Any]
            }
        }
        return d
    }

    /// One row per seed. Every row also carries the settings that produced it (as curve.csv does: the ablation,
    /// granularity, method and score sign change results more than the method does); they are appended after the
    /// numbers so the numeric columns keep their positions. The random method's score seed is the row's own.
    public func csv(_ s: CircuitSettings) -> String {
        var o = "seed,reference_prompts,candidates,kept,fraction,f_reference,f_heldout,auc_reference,auc_heldout,"
        o += "method,aggregation,granularity,ablation,score_sign,scheme,threshold,score_seed\n"
        let agg = (s.method == .lrp || s.method == .gradient) ? s.aggregation.rawValue : ""
        for r in runs {
            o += "\(r.seed),\(r.referencePrompts),\(r.total),\(r.kept),\(r.fraction),\(r.fReference),"
            o += "\(r.fHeldout.map { "\($0)" } ?? ""),\(r.aucReference),\(r.aucHeldout.map { "\($0)" } ?? ""),"
            o += "\(s.method.rawValue),\(agg),\(s.granularity.rawValue),\(s.ablation.rawValue),\(s.rank.rawValue),\(s.scheme.rawValue),"
            o += "\(s.threshold),\(s.method == .random ? "\(s.seed + UInt64(r.seed))" : "")\n"
        }
        return o
    }
}
