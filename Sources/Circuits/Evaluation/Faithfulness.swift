import Foundation
import Transformer

// MARK: - Normalised faithfulness
//
// f(C) = (m(C) − m(∅)) / (m(M) − m(∅)), m = the task's headline metric (mean
// over the prompts), M = the full model, ∅ = everything at the granularity
// ablated. Both ends are measured by running those models (never assumed), with
// the same ablation as the circuit, so f = 1 with everything kept and 0 with
// nothing kept hold by measurement.

public struct FaithfulnessBaseline: Sendable {
    public var granularity: Granularity
    public var ablation: AblationKind
    public var metric: HeadlineMetric
    /// m(M), m(∅)
    public var full: Double
    public var empty: Double
}

public enum FaithfulnessError: LocalizedError, Equatable {
    /// The full model and the fully ablated one score the same: f is undefined.
    case degenerate(full: Double, empty: Double)
    /// The metric does not apply to every prompt (e.g. logit diff without distractors).
    case metricUndefined(HeadlineMetric)

    public var errorDescription: String? {
        switch self {
        case .degenerate(let f, let e):
            return String(format: "faithfulness is undefined: the full model (m = %.6g) and the fully ablated one (m = %.6g) score the same", f, e)
        case .metricUndefined(let m): return "the metric \(m.rawValue) is not defined for every prompt"
        }
    }
}

public enum Faithfulness {
    /// The headline metric of `model` as it currently is (clean prompts only).
    public static func metric(_ model: Model, _ items: [TaskItem], _ h: HeadlineMetric) throws -> Double {
        let e = TaskEvaluator.evaluate(model, items, corrupted: false)
        let values = e.clean.compactMap { h.value($0) }
        guard values.count == items.count, !values.isEmpty else { throw FaithfulnessError.metricUndefined(h) }
        return values.reduce(0, +) / Double(values.count)
    }

    /// Patching substitutes row by row: the run must pack the prompts the capture packed.
    static func check(_ patch: PatchSource?, _ items: [TaskItem]) throws {
        guard let patch else { return }
        let now = items.map(\.tokens.count)
        guard now == patch.lengths else { throw AblationError.patchMismatch(captured: patch.lengths, now: now) }
    }

    /// Measures m(M) and m(∅) (restoring the model afterwards).
    public static func baseline(_ ablator: Ablator, _ items: [TaskItem], granularity: Granularity, ablation: AblationKind,
                                means: MeanActivations? = nil, patch: PatchSource? = nil) throws -> FaithfulnessBaseline {
        let h = HeadlineMetric.forItems(items)
        try check(patch, items)
        ablator.restore()
        let full = try metric(ablator.model, items, h)
        try ablator.apply(.uniform(granularity, kept: false, model: ablator.model), ablation: ablation, means: means, patch: patch)
        defer { ablator.restore() }
        let empty = try metric(ablator.model, items, h)
        guard full != empty else { throw FaithfulnessError.degenerate(full: full, empty: empty) }
        return FaithfulnessBaseline(granularity: granularity, ablation: ablation, metric: h, full: full, empty: empty)
    }

    /// f(C) and m(C) for `mask`, measured with the baseline's ablation (model restored afterwards).
    public static func evaluate(_ ablator: Ablator, _ items: [TaskItem], mask: CircuitMask, baseline b: FaithfulnessBaseline,
                                means: MeanActivations? = nil, patch: PatchSource? = nil) throws -> (f: Double, metric: Double) {
        precondition(mask.granularity == b.granularity, "mask granularity differs from the baseline's")
        try check(patch, items)
        try ablator.apply(mask, ablation: b.ablation, means: means, patch: patch)
        defer { ablator.restore() }
        let m = try metric(ablator.model, items, b.metric)
        return ((m - b.empty) / (b.full - b.empty), m)
    }
}
