import Foundation
import Transformer

// A bit-flip campaign (`workbench faults`): for every BER, trial and protection criterion, inject
// the trial's flips (FaultInjector: the same primary flips for every criterion of a trial, so the
// criteria are compared on paired trials), evaluate, restore. The model must hold the storage's
// clean decode (FaultStorage.init sets it) — the "dense" reference is that model without faults.

/// The metric a campaign evaluates, and when a trial fails.
public struct FaultMetric {
    public let name: String
    public let lowerIsBetter: Bool
    /// A short description for reports (protocol, windows, prompts).
    public let detail: String
    public let evaluate: (Model) throws -> Double
    /// Failure threshold from the dense value: perplexity > 2 × dense; accuracy < floor.
    let threshold: (Double) -> Double

    /// WikiText-2 perplexity (the `perplexity` command's wanda protocol) on the first `windows` windows of `seqlen`.
    /// One logit block serves every evaluation of the campaign (a fresh one per trial was 50 MB mapped, faulted in
    /// and zeroed each time for SmolLM2); the values are those of `Model.perplexity` without it.
    public static func perplexity(tokens: [Int], seqlen: Int, windows: Int, text: String) -> FaultMetric {
        let kept = KeptLogitBlock()
        return FaultMetric(name: "perplexity", lowerIsBetter: true,
                           detail: "perplexity of \(text), wanda protocol, \(windows) windows × \(seqlen) tokens; failed: > 2 × dense or not finite",
                           evaluate: { m in
                               try m.perplexity(tokens: tokens, seqlen: seqlen, protocol: .wanda, maxWindows: windows,
                                                logitBlock: kept.block(for: m)).perplexity
                           },
                           threshold: { 2 * $0 })
    }

    /// The logit block a perplexity metric keeps across evaluations (made on first use, for the model evaluated).
    final class KeptLogitBlock {
        private var buffer: Buffer?
        func block(for m: Model) -> Buffer {
            if let buffer, buffer.count >= Model.nllBlockRows * m.config.vocabSize { return buffer }
            let b = m.nllLogitBlock()
            buffer = b
            return b
        }
    }

    /// Task accuracy (answer above distractor at the last position; top-1 when a prompt has no distractor).
    public static func task(items: [TaskItem], floor: Double, prompts: String) -> FaultMetric {
        FaultMetric(name: "accuracy", lowerIsBetter: false,
                    detail: "task accuracy on \(items.count) prompts of \(prompts); failed: < \(floor) or not finite",
                    evaluate: { m in
                        let e = TaskEvaluator.evaluate(m, items, corrupted: false)
                        let ok = e.clean.map { ($0.correct ?? $0.top1) ? 1.0 : 0.0 }
                        return ok.reduce(0, +) / Double(max(ok.count, 1))
                    },
                    threshold: { _ in floor })
    }

    public func failed(_ v: Double, dense: Double) -> Bool {
        guard v.isFinite else { return true }
        return lowerIsBetter ? v > threshold(dense) : v < threshold(dense)
    }
}

public struct FaultCriterionSetup {
    public var criterion: ProtectionCriterion
    public var protected: ProtectedBits
    public init(_ criterion: ProtectionCriterion, _ protected: ProtectedBits) { self.criterion = criterion; self.protected = protected }
}

public enum FaultCampaign {
    /// Runs every (BER, trial, criterion) and returns the report. `progress(done, total)` after each evaluation.
    public static func run(model: Model, storage: FaultStorage, criteria: [FaultCriterionSetup], bers: [Double], trials: Int,
                           seed: UInt64, fraction: Double, metric: FaultMetric, modelPath: String,
                           progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> FaultReport {
        for b in bers { try QuantizationError.checkBER(b) }
        try QuantizationError.checkFraction(fraction)
        let t0 = Date()
        let dense = try metric.evaluate(model)
        let total = bers.count * trials * criteria.count
        var done = 0
        var rows: [FaultReport.Row] = []
        for ber in bers {
            var values = [[Double]](repeating: [], count: criteria.count)
            var flips = [[Int]](repeating: [], count: criteria.count)
            var read = [[Int]](repeating: [], count: criteria.count)
            for trial in 0..<trials {
                for (c, setup) in criteria.enumerated() {
                    let t = BitFlips.trial(totalBits: storage.totalBits, ber: ber, seed: seed, trial: trial, protected: setup.protected)
                    let touched = storage.inject(t.masks)
                    defer { storage.restore(touched) }
                    values[c].append(try metric.evaluate(model))
                    flips[c].append(t.primaryFlips)
                    read[c].append(t.masks.reduce(0) { $0 + $1.mask.nonzeroBitCount })
                    done += 1
                    progress(done, total)
                }
            }
            let none = criteria.firstIndex { $0.criterion == .none }
            let noneFail = none.map { FaultReport.failedFraction(values[$0], dense: dense, metric) }
            for (c, setup) in criteria.enumerated() {
                rows.append(FaultReport.Row(ber: ber, criterion: setup.criterion.name, values: values[c], dense: dense, metric: metric,
                                            noneFailed: noneFail, protectedBits: setup.protected.count,
                                            protectedWeights: setup.protected.weights, protectedScaleBlocks: setup.protected.scaleBlocks,
                                            totalBits: storage.totalBits, primaryFlips: flips[c], readFlips: read[c]))
            }
        }
        return FaultReport(model: modelPath, storage: storage.geometry.type.name, metric: metric.name, metricDetail: metric.detail,
                           lowerIsBetter: metric.lowerIsBetter, dense: dense, failThreshold: metric.threshold(dense), trials: trials,
                           seed: seed, protectFraction: fraction, storedBits: storage.totalBits, storedWeights: storage.totalWeights,
                           seconds: Date().timeIntervalSince(t0), rows: rows)
    }
}
