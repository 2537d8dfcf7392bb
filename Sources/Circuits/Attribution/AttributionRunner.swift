import Foundation
import Transformer

// MARK: - The attribution driver
//
// Streams samples through a scorer (memory does not grow with the number of
// samples), checkpoints the raw running sums to `<out>.partial` every N
// samples and when stopped, resumes from such a checkpoint after checking that
// it was made with the same settings, and finally writes the scores to `out`
// and removes the checkpoint. Because the sums are restored bit-exactly and
// samples are processed in the same order, a resumed run gives bit-identical
// tensors to an uninterrupted one.

/// How a run is driven (everything here leaves the results unchanged).
public struct AttributionRunOptions {
    /// Continue from `<out>.partial` if it exists.
    public var resume = false
    /// Write a checkpoint after every this many samples (0 = only when stopped).
    public var checkpointEvery = 8
    /// Show a progress line on stderr.
    public var progress = false
    /// Checked between samples (a signal flag); true → checkpoint and throw `.interrupted`.
    public var shouldStop: () -> Bool = { false }
    /// Test hook: behave as if stopped once this many samples (in total) are done.
    public var stopAfter: Int? = nil
    public init() {}
}

/// What a finished run did.
public struct AttributionSummary: Sendable {
    public var samples: Int
    public var tokens: Int
    /// Samples restored from a checkpoint (0 for a fresh run).
    public var resumedAt: Int
    /// Wall time and tokens of this session (not counting resumed work).
    public var seconds: Double
    public var sessionTokens: Int
    public var tokensPerSecond: Double { seconds > 0 ? Double(sessionTokens) / seconds : 0 }
    /// Mean over samples of Σ input relevance / Σ explained (lrp/gradient only).
    public var conservationMean: Double?
    public var out: String
    public var tensorCount: Int
}

public enum AttributionRunner {
    static let partialFormat = "sparc3-relevance-partial"

    /// The checkpoint path for an output path.
    public static func checkpointPath(for out: String) -> String { out + ".partial" }

    /// Cheap check to run before any heavy work: a leftover checkpoint without `--resume` is an error.
    public static func preflight(out: String, resume: Bool) throws {
        let cp = checkpointPath(for: out)
        if !resume, FileManager.default.fileExists(atPath: cp) { throw AttributionError.checkpointExists(path: cp) }
    }

    /// Runs `settings.method` over `samples` and writes `out` (see the file comment).
    public static func run(model: Model, samples: [AttributionSample], settings s: AttributionSettings, out: String,
                           options o: AttributionRunOptions = AttributionRunOptions()) throws -> AttributionSummary {
        precondition(s.samples == samples.count, "settings.samples must equal the number of samples")
        try preflight(out: out, resume: o.resume)
        let scorer = makeScorer(model, s)
        let cp = checkpointPath(for: out)
        var done = 0, tokens = 0, consSum = 0.0, consCount = 0
        // Resume.
        if o.resume, FileManager.default.fileExists(atPath: cp) {
            let f: SafetensorsFile
            do { f = try SafetensorsFile(path: cp) } catch { throw AttributionError.badCheckpoint(path: cp, reason: error.localizedDescription) }
            guard f.metadata["format"] == partialFormat else {
                throw AttributionError.badCheckpoint(path: cp, reason: "metadata 'format' is \(f.metadata["format"] ?? "missing")")
            }
            if let d = s.firstDifference(from: f.metadata) {
                throw AttributionError.resumeMismatch(path: cp, field: d.key, checkpoint: d.checkpoint, now: d.now)
            }
            guard let n = Int(f.metadata["samples_done"] ?? ""), n >= 0, n <= samples.count,
                  let t = Int(f.metadata["tokens"] ?? ""), let cs = Double(f.metadata["conservation_sum"] ?? ""),
                  let cc = Int(f.metadata["conservation_count"] ?? "") else {
                throw AttributionError.badCheckpoint(path: cp, reason: "progress fields are missing or invalid")
            }
            try scorer.restore(f)
            (done, tokens, consSum, consCount) = (n, t, cs, cc)
        }
        let resumedAt = done
        var saved = done
        func checkpoint() throws {
            try StreamingSafetensors.write(scorer.checkpointTensors(), metadata: s.metadata(
                samplesDone: done, tokens: tokens, conservationSum: consSum, conservationCount: consCount, partial: true), to: cp)
            saved = done
        }
        // Stream the samples.
        let start = Date()
        var sessionTokens = 0
        let line = ProgressLine(resumedAt > 0 ? "attribute (resumed at \(resumedAt))" : "attribute", total: samples.count - resumedAt,
                                unit: "samples", enabled: o.progress && samples.count > resumedAt)
        while done < samples.count {
            if o.shouldStop() || o.stopAfter.map({ done >= $0 }) == true {
                try checkpoint()
                throw AttributionError.interrupted(samplesDone: done, total: samples.count, checkpoint: cp)
            }
            let sample = samples[done]
            do {
                if let r = try scorer.process(sample), r.isFinite { consSum += r; consCount += 1 }
            } catch {
                if done > saved { try? checkpoint() }
                throw AttributionError.sampleFailed(label: sample.label, reason: error.localizedDescription)
            }
            done += 1
            tokens += sample.tokens.count
            sessionTokens += sample.tokens.count
            line.update(done - resumedAt, tokens: sessionTokens)
            if o.checkpointEvery > 0, done % o.checkpointEvery == 0, done < samples.count { try checkpoint() }
        }
        let seconds = Date().timeIntervalSince(start)
        // Final file, then drop the checkpoint.
        let tensors = scorer.finalTensors(samples: done, tokens: tokens)
        try StreamingSafetensors.write(tensors, metadata: s.metadata(
            samplesDone: done, tokens: tokens, conservationSum: consSum, conservationCount: consCount, partial: false), to: out)
        try? FileManager.default.removeItem(atPath: cp)
        return AttributionSummary(samples: done, tokens: tokens, resumedAt: resumedAt, seconds: seconds, sessionTokens: sessionTokens,
                                  conservationMean: consCount > 0 ? consSum / Double(consCount) : nil, out: out,
                                  tensorCount: tensors.count)
    }

    static func makeScorer(_ model: Model, _ s: AttributionSettings) -> AttributionScorer {
        switch s.method {
        case .lrp, .gradient:
            return LRPScorer(model: model, rules: s.effectiveRules, seed: s.seedValue, aggregation: s.aggregationMode,
                             memoryBudget: s.memoryBudget)
        case .wanda: return WandaScorer(model: model)
        case .magnitude: return MagnitudeScorer(model: model)
        case .activation: return ActivationScorer(model: model)
        }
    }
}
