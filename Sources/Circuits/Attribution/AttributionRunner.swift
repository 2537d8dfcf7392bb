#if canImport(Glibc)
import Glibc
#endif
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
    /// Test hook: SIGKILL this process once this many of its samples are done (after the checkpoint due then,
    /// if any): a rank or shard dying without warning, for the kill-and-resume tests.
    public var killAfter: Int? = nil
    /// Notes for the user (stderr in the CLI), e.g. that a checkpoint carries no checksum.
    public var log: (String) -> Void = { _ in }
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
    static let finalFormat = "sparc3-relevance"
    /// A finished shard: raw F64 sums of its samples, for `workbench merge` (Distributed/ShardMerger).
    static let partFormat = "sparc3-relevance-part"

    /// The checkpoint path for an output path.
    public static func checkpointPath(for out: String) -> String { out + ".partial" }

    /// Cheap check to run before any heavy work: a leftover checkpoint without `--resume` is an error,
    /// the checkpoint path must be a regular file or nothing, and `--resume` needs an output that
    /// is a file (a device or FIFO output gets no checkpoints: `<out>.partial` would land beside it, e.g. in /dev).
    public static func preflight(out: String, resume: Bool) throws {
        let cp = checkpointPath(for: out)
        let destination = try OutputDestination.of(out)
        if destination.isStream {
            if resume { throw AttributionError.resumeNeedsFile(out: out) }
            return
        }
        _ = try OutputDestination.of(cp, allowStreams: false)
        var st = stat()
        if !resume, lstat(cp, &st) == 0 { throw AttributionError.checkpointExists(path: cp) }
    }

    /// Runs `settings.method` over `samples` and writes `out` (see the file comment). With `settings.shard`
    /// only that shard's samples are run and `out` is a part holding their raw sums (`workbench merge` adds them up).
    public static func run(model: Model, samples: [AttributionSample], settings s: AttributionSettings, out: String,
                           options o: AttributionRunOptions = AttributionRunOptions()) throws -> AttributionSummary {
        try preflight(out: out, resume: o.resume)
        // A device or FIFO output (`--out /dev/null`) is written through at the end, without checkpoints.
        let cp = try OutputDestination.of(out).isStream ? nil : checkpointPath(for: out)
        let r = try stream(model: model, samples: samples, settings: s, checkpoint: cp, stoppable: out, options: o)
        // Final file or part (with the sha256 of its data), then drop the checkpoint.
        let tensors = s.shard == nil ? r.scorer.finalTensors(samples: r.done, tokens: r.tokens) : r.scorer.checkpointTensors()
        try StreamingSafetensors.write(tensors, metadata: r.metadata(s, kind: s.shard == nil ? .final : .part), checksum: true, to: out)
        if let cp { try? FileManager.default.removeItem(atPath: cp) }
        return r.summary(out: out, tensorCount: tensors.count)
    }

    /// Runs `settings.method` over `samples` and returns the final score tensors in memory with the
    /// metadata a file would carry (no checkpoints, nothing written). The values are those `run`
    /// writes, bit for bit. lrp/gradient sums are turned into means in place, so the peak memory is
    /// one set of sums, as when streaming them to a file.
    public static func scores(model: Model, samples: [AttributionSample], settings s: AttributionSettings,
                              progress: Bool = false) throws -> (tensors: [String: Tensor], metadata: [String: String],
                                                                 summary: AttributionSummary) {
        var o = AttributionRunOptions()
        o.progress = progress
        let r = try stream(model: model, samples: samples, settings: s, checkpoint: nil, stoppable: nil, options: o)
        var tensors: [String: Tensor] = [:]
        for t in r.scorer.takeFinalTensors(samples: r.done, tokens: r.tokens) {
            tensors[t.name] = Tensor(shape: t.shape, data: t.values)
        }
        return (tensors, r.metadata(s), r.summary(out: "", tensorCount: tensors.count))
    }

    /// Where a stream of samples ended.
    struct Streamed {
        let scorer: AttributionScorer
        let done: Int, tokens: Int, consSum: Double, consCount: Int, resumedAt: Int, seconds: Double, sessionTokens: Int

        func metadata(_ s: AttributionSettings, kind: AttributionSettings.FileKind = .final) -> [String: String] {
            s.metadata(samplesDone: done, tokens: tokens, conservationSum: consSum, conservationCount: consCount, kind: kind)
        }

        func summary(out: String, tensorCount: Int) -> AttributionSummary {
            AttributionSummary(samples: done, tokens: tokens, resumedAt: resumedAt, seconds: seconds, sessionTokens: sessionTokens,
                               conservationMean: consCount > 0 ? consSum / Double(consCount) : nil, out: out,
                               tensorCount: tensorCount)
        }
    }

    /// Feeds every sample to a fresh scorer. With a `checkpoint` path: resumes from it (`o.resume`),
    /// writes it every `o.checkpointEvery` samples and when stopped. With `stoppable` (the output
    /// path) a stop request ends the run — after a checkpoint, or with nothing saved when there is
    /// no checkpoint (a device or FIFO output); without it, the run never stops early.
    static func stream(model: Model, samples: [AttributionSample], settings s: AttributionSettings, checkpoint cp: String?,
                       stoppable out: String?, options o: AttributionRunOptions) throws -> Streamed {
        precondition(s.samples == samples.count, "settings.samples must equal the number of samples")
        // A shard runs its own samples; `done` counts within them.
        let mine = s.shard?.range(of: samples.count) ?? samples.indices
        let total = mine.count
        let scorer = makeScorer(model, s)
        var done = 0, tokens = 0, consSum = 0.0, consCount = 0
        // Resume.
        if let cp, o.resume, FileManager.default.fileExists(atPath: cp) {
            let f: SafetensorsFile
            do { f = try SafetensorsFile(path: cp) } catch { throw AttributionError.badCheckpoint(path: cp, reason: error.localizedDescription) }
            guard f.metadata["format"] == partialFormat else {
                throw AttributionError.badCheckpoint(path: cp, reason: "metadata 'format' is \(f.metadata["format"] ?? "missing")")
            }
            do {
                if try f.verifyDataChecksum() == .absent {
                    o.log("note: \(cp) records no \(Safetensors.dataChecksumKey) (an older checkpoint): its data is not verified")
                }
            } catch let e as SafetensorsChecksumError {
                switch e {
                case .mismatch: throw AttributionError.badCheckpoint(path: cp, reason: "its tensor data does not match the checksum in its header "
                    + "(\(Safetensors.dataChecksumKey)); the file is corrupt — delete it to start over")
                case .malformed: throw AttributionError.badCheckpoint(path: cp, reason: "metadata '\(Safetensors.dataChecksumKey)' is not a sha256")
                }
            }
            if let d = s.firstDifference(from: f.metadata) {
                throw AttributionError.resumeMismatch(path: cp, field: d.key, checkpoint: d.checkpoint, now: d.now)
            }
            guard let n = Int(f.metadata["samples_done"] ?? ""), n >= 0, n <= total,
                  let t = Int(f.metadata["tokens"] ?? ""), let cs = Double(f.metadata["conservation_sum"] ?? ""),
                  let cc = Int(f.metadata["conservation_count"] ?? "") else {
                throw AttributionError.badCheckpoint(path: cp, reason: "progress fields are missing or invalid")
            }
            try scorer.restore(f, samplesDone: n)
            (done, tokens, consSum, consCount) = (n, t, cs, cc)
        }
        let resumedAt = done
        var saved = done
        func checkpoint() throws {
            guard let cp else { return }
            try StreamingSafetensors.write(scorer.checkpointTensors(), metadata: s.metadata(
                samplesDone: done, tokens: tokens, conservationSum: consSum, conservationCount: consCount, kind: .checkpoint),
                checksum: true, allowStreams: false, to: cp)
            saved = done
        }
        // Stream the samples.
        let start = Date()
        var sessionTokens = 0
        let label = "attribute" + (s.shard.map { " shard \($0)" } ?? "")
        let line = ProgressLine(resumedAt > 0 ? "\(label) (resumed at \(resumedAt))" : label, total: total - resumedAt,
                                unit: "samples", enabled: o.progress && total > resumedAt)
        while done < total {
            if let out, o.shouldStop() || o.stopAfter.map({ done >= $0 }) == true {
                guard let cp else { throw AttributionError.interruptedWithoutCheckpoint(samplesDone: done, total: total, out: out) }
                try checkpoint()
                throw AttributionError.interrupted(samplesDone: done, total: total, checkpoint: cp)
            }
            let sample = samples[mine.lowerBound + done]
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
            if o.checkpointEvery > 0, done % o.checkpointEvery == 0, done < total { try checkpoint() }
            if let k = o.killAfter, done >= k { kill(getpid(), SIGKILL) }
        }
        return Streamed(scorer: scorer, done: done, tokens: tokens, consSum: consSum, consCount: consCount, resumedAt: resumedAt,
                        seconds: Date().timeIntervalSince(start), sessionTokens: sessionTokens)
    }

    static func makeScorer(_ model: Model, _ s: AttributionSettings) -> AttributionScorer {
        switch s.method {
        case .lrp, .gradient:
            return LRPScorer(model: model, rules: s.effectiveRules, seed: s.seedValue, aggregation: s.aggregationMode,
                             memoryBudget: s.memoryBudget, unitsOnly: s.unitsOnly)
        case .wanda: return WandaScorer(model: model)
        case .magnitude: return MagnitudeScorer(model: model)
        case .activation: return ActivationScorer(model: model)
        }
    }
}
