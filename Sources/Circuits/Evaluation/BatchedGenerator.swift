import Foundation
import Transformer

// MARK: - Many continuations decoded together
//
// Sampling k continuations of n prompts one stream at a time spends each decode step in ~240 small
// matrix–vector products that are bandwidth-bound. Here every live stream advances in the same step:
// their tokens are packed as rows of one `Model.hidden` call (one matrix product per weight; attention
// per stream against its own KV cache), then one unembedding product gives every stream's logits.
// A prompt is prefilled once; its samples start from copies of that cache. Each (prompt, sample) owns
// a sampler seeded from (seed, prompt index, sample index), so a continuation does not depend on which
// other streams share its batch; EOS ends a stream on its own.

public struct BatchedGenerator {
    public var temperature: Float
    public var topP: Float
    public var seed: UInt64
    /// Streams decoded together (rows per step).
    public var maxRows: Int
    public init(temperature: Float, topP: Float = 1, seed: UInt64 = 0, maxRows: Int = 64) {
        self.temperature = temperature; self.topP = topP; self.seed = seed; self.maxRows = max(1, maxRows)
    }

    /// The sampler seed of one stream (SplitMix64 of the three numbers: order-sensitive, distinct per stream).
    public static func streamSeed(_ seed: UInt64, prompt: Int, sample: Int) -> UInt64 {
        var r = SeededRNG(seed: seed ^ (UInt64(prompt) &* 0x9E37_79B9_7F4A_7C15))
        var s = SeededRNG(seed: r.next() ^ (UInt64(sample) &* 0xD1B5_4A32_D192_ED03))
        return s.next()
    }

    /// `samples` continuations of up to `maxNewTokens` tokens for every prompt: result[p][s] (ids, stop id excluded).
    /// `progress(streamsDone, tokensSoFar)` after each step.
    public func generate(_ model: Model, prompts: [[Int]], samples: Int, maxNewTokens: Int, stop: Set<Int>,
                         progress: (Int, Int) -> Void = { _, _ in }) throws -> [[[Int]]] {
        let c = model.config
        for p in prompts {
            guard !p.isEmpty else { throw ModelError.emptyPrompt }
            for t in p where t < 0 || t >= c.vocabSize { throw ModelError.invalidToken(id: t, vocabSize: c.vocabSize) }
            guard p.count < c.maxSeqLen else { throw ModelError.promptTooLong(tokens: p.count, limit: c.maxSeqLen, origin: model.contextOrigin) }
        }
        guard samples >= 1, maxNewTokens >= 0 else {
            throw ModelError.badConfig(file: "generate", key: samples < 1 ? "samples" : "max-new-tokens", reason: "out of range")
        }
        var out = prompts.map { _ in Array(repeating: [Int](), count: samples) }
        if maxNewTokens == 0 { return out }
        // Groups of whole prompts whose streams fit in maxRows (a prompt with more samples than maxRows is its own group).
        let perGroup = max(1, maxRows / samples)
        var done = 0, tokens = 0
        for g0 in stride(from: 0, to: prompts.count, by: perGroup) {
            let group = Array(g0..<min(g0 + perGroup, prompts.count))
            // Prefill every prompt of the group in one packed forward.
            var packed: [Int] = [], segs: [Segment] = [], caches: [KVCache] = []
            for p in group {
                let room = min(prompts[p].count + maxNewTokens, c.maxSeqLen)
                let cache = KVCache(config: c, capacity: room)
                segs.append(Segment(rowStart: packed.count, count: prompts[p].count, pos0: 0, cache: cache))
                packed += prompts[p]; caches.append(cache)
            }
            let h = model.hidden(tokens: packed, segments: segs)        // [Σ len, d]
            struct Stream { var prompt: Int; var sample: Int; var cache: KVCache; var sampler: Sampler; var logits: [Float] }
            var live: [Stream] = []
            for (i, p) in group.enumerated() {
                let last = h.withUnsafeBufferPointer { model.logits($0.baseAddress! + (segs[i].rowStart + segs[i].count - 1) * c.dModel, rows: 1) }
                for s in 0..<samples {
                    live.append(Stream(prompt: p, sample: s, cache: s == samples - 1 ? caches[i] : caches[i].copy(capacity: caches[i].capacity),
                                       sampler: Sampler(temperature: temperature, topP: topP, seed: Self.streamSeed(seed, prompt: p, sample: s)),
                                       logits: last))
                }
            }
            while !live.isEmpty {
                var next: [Stream] = [], ids: [Int] = []
                for var st in live {
                    let t = st.sampler.sample(st.logits)
                    if stop.contains(t) { done += 1; continue }
                    out[st.prompt][st.sample].append(t); tokens += 1
                    // Up to maxNewTokens, and never past the context (as Model.generate).
                    if out[st.prompt][st.sample].count >= min(maxNewTokens, c.maxSeqLen - prompts[st.prompt].count) {
                        done += 1; continue
                    }
                    st.logits = []
                    next.append(st); ids.append(t)
                }
                if !next.isEmpty {
                    let segments = next.enumerated().map { Segment(rowStart: $0.offset, count: 1, pos0: $0.element.cache.length, cache: $0.element.cache) }
                    let hs = model.hidden(tokens: ids, segments: segments)   // [A, d]
                    let logits = hs.withUnsafeBufferPointer { model.logits($0.baseAddress!, rows: next.count) }   // [A, vocab]
                    let v = c.vocabSize
                    for i in next.indices { next[i].logits = Array(logits[(i * v)..<((i + 1) * v)]) }
                }
                live = next
                progress(done, tokens)
            }
        }
        return out
    }
}
