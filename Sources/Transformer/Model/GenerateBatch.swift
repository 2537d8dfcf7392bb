import Foundation

// MARK: - Batched generation
//
// Sampling many continuations (RealToxicityPrompts: 25 per prompt) is the cost of
// evaluating a correction. One stream at a time, every decode step is ~240
// matrix–vector products that stream all weights from memory for one token; B
// streams decoded together make them matrix products that read the weights once
// for B tokens. Three rules keep the result independent of how streams are batched:
//   • each (prompt, sample) stream owns a random stream seeded from (seed, prompt, sample);
//   • a prompt's prefill is computed once and its KV cache copied to each of its samples;
//   • a stream stops on its own (stop token, token budget, context) and leaves the batch.

/// What to generate for every stream.
public struct GenerationSettings: Sendable, Equatable {
    /// New tokens per stream at most (stops earlier at a stop token or the context's end).
    public var maxNewTokens: Int
    /// 0 = greedy.
    public var temperature: Float
    /// Nucleus mass (1 = the whole vocabulary).
    public var topP: Float
    /// Seed of the whole run; stream (p, s) draws from `Model.streamSeed(seed, prompt: p, sample: s)`.
    public var seed: UInt64
    /// Token ids that end a stream (not included in its output).
    public var stop: Set<Int>

    public init(maxNewTokens: Int, temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0, stop: Set<Int> = []) {
        self.maxNewTokens = maxNewTokens; self.temperature = temperature; self.topP = topP
        self.seed = seed; self.stop = stop
    }
}

/// Why a batched run was refused (before any work).
public enum GenerationError: Error, Equatable, CustomStringConvertible {
    case noPrompts
    case badSetting(name: String, reason: String)
    case emptyPrompt(index: Int)

    public var description: String {
        switch self {
        case .noPrompts: return "no prompts to generate from"
        case let .badSetting(name, reason): return "generation setting '\(name)' \(reason)"
        case let .emptyPrompt(index): return "prompt \(index + 1) has no tokens"
        }
    }
}

/// Throughput of a batched run.
public struct BatchGenerationStats: Sendable {
    public var streams = 0
    public var promptTokens = 0
    public var newTokens = 0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    /// Generated tokens per second of the whole run (prefill included).
    public var tokensPerSecond: Double { newTokens > 0 ? Double(newTokens) / max(prefillSeconds + decodeSeconds, 1e-9) : 0 }
}

extension Model {
    /// The seed of stream (prompt, sample) in a run seeded with `seed`: SplitMix64 (`SeededRNG`)
    /// over the three numbers, order-sensitive, so neighbouring streams get unrelated sequences
    /// and a stream's draws do not depend on which other streams run, in which batch, or in what
    /// order. (The formula `evaluate` used when docs/results/correction.md was measured.)
    public static func streamSeed(_ seed: UInt64, prompt: Int, sample: Int) -> UInt64 {
        var r = SeededRNG(seed: seed ^ (UInt64(truncatingIfNeeded: prompt) &* 0x9E37_79B9_7F4A_7C15))
        var s = SeededRNG(seed: r.next() ^ (UInt64(truncatingIfNeeded: sample) &* 0xD1B5_4A32_D192_ED03))
        return s.next()
    }

    /// `samplesPerPrompt` continuations of every prompt, decoded together in batches of at most
    /// `maxBatch` streams. Returns tokens[prompt][sample]. Greedy streams give exactly what
    /// `generate(prompt:…)` gives one at a time (up to logit rounding of a batched product, which
    /// can only matter at an exact tie); a sampled stream (p, s) draws what
    /// `generate(prompt:…, sampler: Sampler(temperature:topP:seed: streamSeed(seed, p, s)))` draws.
    /// `progress(streamsDone, streams, newTokens)` is called after every decode step.
    public func generateBatch(prompts: [[Int]], samplesPerPrompt: Int, settings: GenerationSettings, maxBatch: Int = 256,
                              progress: ((_ streamsDone: Int, _ streams: Int, _ newTokens: Int) -> Void)? = nil) throws -> (tokens: [[[Int]]], stats: BatchGenerationStats) {
        guard !prompts.isEmpty else { throw GenerationError.noPrompts }
        guard samplesPerPrompt >= 1 else { throw GenerationError.badSetting(name: "samples", reason: "must be at least 1") }
        guard maxBatch >= 1 else { throw GenerationError.badSetting(name: "max-batch", reason: "must be at least 1") }
        guard settings.maxNewTokens >= 0 else { throw GenerationError.badSetting(name: "max-new-tokens", reason: "must not be negative") }
        guard settings.temperature >= 0, settings.temperature.isFinite else {
            throw GenerationError.badSetting(name: "temperature", reason: "must be a finite number ≥ 0")
        }
        guard settings.topP >= 0, settings.topP <= 1 else { throw GenerationError.badSetting(name: "top-p", reason: "must lie in [0, 1]") }
        let limit = config.maxSeqLen
        for (i, p) in prompts.enumerated() {
            guard !p.isEmpty else { throw GenerationError.emptyPrompt(index: i) }
            for t in p where t < 0 || t >= config.vocabSize { throw ModelError.invalidToken(id: t, vocabSize: config.vocabSize) }
            guard p.count < limit else { throw ModelError.promptTooLong(tokens: p.count, limit: limit, origin: contextOrigin) }
        }
        var stats = BatchGenerationStats(streams: prompts.count * samplesPerPrompt)
        var result = prompts.map { _ in [[Int]](repeating: [], count: samplesPerPrompt) }
        let streamCount = prompts.count * samplesPerPrompt
        var done = 0, produced = 0
        var first = 0
        while first < streamCount {
            let last = min(streamCount, first + maxBatch)
            let wave = (first..<last).map { (prompt: $0 / samplesPerPrompt, sample: $0 % samplesPerPrompt) }
            let out = runWave(wave, prompts: prompts, settings: settings, stats: &stats) { finished, tokens in
                done += finished; produced += tokens
                progress?(done, streamCount, produced)
            }
            for (k, w) in wave.enumerated() { result[w.prompt][w.sample] = out[k] }
            first = last
        }
        return (result, stats)
    }

    /// One batch of streams: shared prefill per prompt, then decode steps until every stream stops.
    private func runWave(_ wave: [(prompt: Int, sample: Int)], prompts: [[Int]], settings: GenerationSettings,
                         stats: inout BatchGenerationStats, step: (_ finished: Int, _ newTokens: Int) -> Void) -> [[Int]] {
        let c = config, v = c.vocabSize, d = c.dModel
        let limit = c.maxSeqLen
        // Prefill: the wave's distinct prompts packed into one forward, each into its own cache.
        var promptOrder: [Int] = []
        for w in wave where promptOrder.last != w.prompt { promptOrder.append(w.prompt) }
        var tokens: [Int] = [], segments: [Segment] = []
        for p in promptOrder {
            let total = prompts[p].count + min(settings.maxNewTokens, limit - prompts[p].count)
            segments.append(Segment(rowStart: tokens.count, count: prompts[p].count, pos0: 0,
                                    cache: KVCache(config: c, capacity: total)))
            tokens += prompts[p]
        }
        let t0 = Date()
        let h = hidden(tokens: tokens, segments: segments)                 // [N, d]
        var lastRows = [Float](repeating: 0, count: segments.count * d)   // [P, d]
        for (i, s) in segments.enumerated() {
            let from = (s.rowStart + s.count - 1) * d
            for e in 0..<d { lastRows[i * d + e] = h[from + e] }
        }
        let promptLogits = lastRows.cptr { logits($0, rows: segments.count) }   // [P, vocab]
        stats.promptTokens += tokens.count
        stats.prefillSeconds += Date().timeIntervalSince(t0)

        // Streams: a copy of the prompt's cache each (the last sample of a prompt takes the original).
        let n = wave.count
        var caches: [KVCache] = []
        var samplers: [Sampler] = []
        var budget: [Int] = []                 // tokens the stream may still produce
        for (k, w) in wave.enumerated() {
            let slot = promptOrder.firstIndex(of: w.prompt)!
            let original = segments[slot].cache
            let lastOfPrompt = k + 1 == n || wave[k + 1].prompt != w.prompt
            caches.append(lastOfPrompt ? original : original.grown(to: original.capacity))
            samplers.append(Sampler(temperature: settings.temperature, topP: settings.topP,
                                    seed: Model.streamSeed(settings.seed, prompt: w.prompt, sample: w.sample)))
            budget.append(min(settings.maxNewTokens, limit - prompts[w.prompt].count))
        }
        var out = [[Int]](repeating: [], count: n)
        var next = [Int](repeating: 0, count: n)
        // First token of each stream from its prompt's logits.
        let promptSlot = wave.map { w in promptOrder.firstIndex(of: w.prompt)! }
        sampleRows(promptLogits, rowOf: promptSlot, streams: Array(0..<n), samplers: &samplers, into: &next, vocab: v)
        let t1 = Date()
        var active: [Int] = []
        var stopped = 0, appended = 0
        for k in 0..<n {
            if budget[k] == 0 || settings.stop.contains(next[k]) { stopped += 1; continue }
            out[k].append(next[k]); appended += 1
            if out[k].count >= budget[k] { stopped += 1; continue }
            active.append(k)
        }
        step(stopped, appended)
        while !active.isEmpty {
            // One decode step for every active stream: [B] tokens → [B, vocab] logits.
            let stepTokens = active.map { next[$0] }
            let stepSegments = active.enumerated().map { i, k in
                Segment(rowStart: i, count: 1, pos0: caches[k].length, cache: caches[k])
            }
            let hs = hidden(tokens: stepTokens, segments: stepSegments)         // [B, d]
            let logitRows = hs.cptr { logits($0, rows: active.count) }          // [B, vocab]
            sampleRows(logitRows, rowOf: Array(0..<active.count), streams: active, samplers: &samplers, into: &next, vocab: v)
            var still: [Int] = []
            stopped = 0; appended = 0
            for k in active {
                if settings.stop.contains(next[k]) { stopped += 1; continue }
                out[k].append(next[k]); appended += 1
                if out[k].count >= budget[k] { stopped += 1; continue }
                still.append(k)
            }
            step(stopped, appended)
            active = still
        }
        for k in 0..<n { stats.newTokens += out[k].count }
        stats.decodeSeconds += Date().timeIntervalSince(t1)
        return out
    }

    /// next[streams[i]] = samplers[streams[i]].sample(row rowOf[i] of `logits` [rows, vocab]),
    /// the streams spread over the cores (each draw is independent: its own sampler, its own row).
    private func sampleRows(_ logits: [Float], rowOf: [Int], streams: [Int], samplers: inout [Sampler],
                            into next: inout [Int], vocab v: Int) {
        let count = streams.count
        // A temperature-0 draw is an argmax; a sampled one an exp per logit and a small sort.
        let work = count * v * (samplers.first.map { $0.temperature > 0 ? 8 : 1 } ?? 1)
        logits.withUnsafeBufferPointer { lp in
            samplers.withUnsafeMutableBufferPointer { sp in
                next.withUnsafeMutableBufferPointer { np in
                    parallelRows(count, work: work) { range in
                        for i in range {
                            let row = UnsafeBufferPointer(rebasing: lp[(rowOf[i] * v)..<((rowOf[i] + 1) * v)])
                            np[streams[i]] = sp[streams[i]].sample(row)
                        }
                    }
                }
            }
        }
    }
}
