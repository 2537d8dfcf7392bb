import Foundation

// MARK: - Sampling

/// SplitMix64: tiny, seedable, identical on every platform (reproducible runs).
public struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

public struct Sampler {
    public var temperature: Float
    public var topP: Float
    var rng: SeededRNG

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topP = topP; self.rng = SeededRNG(seed: seed)
    }

    /// Greedy when temperature is 0, else softmax(logits / T) restricted to the
    /// smallest top-p nucleus (llama2.c `sample_topp` semantics).
    public mutating func sample(_ logits: [Float]) -> Int {
        if temperature <= 0 { return argmax(logits) }
        var m = -Float.infinity
        for x in logits where x > m { m = x }
        var probs = logits.map { Double(fastExp(($0 - m) / temperature)) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        var order = Array(probs.indices)
        if topP < 1 {
            order.sort { probs[$0] > probs[$1] }
            var cum = 0.0, cut = order.count
            for (k, i) in order.enumerated() {
                cum += probs[i]
                if cum >= Double(topP) { cut = k + 1; break }
            }
            order = Array(order.prefix(cut))
        }
        let mass = order.reduce(0.0) { $0 + probs[$1] }
        let r = rng.uniform() * mass
        var acc = 0.0
        for i in order {
            acc += probs[i]
            if r < acc { return i }
        }
        return order.last ?? 0
    }
}

@inline(__always)
public func argmax(_ x: [Float]) -> Int {
    var best = 0
    for i in x.indices where x[i] > x[best] { best = i }
    return best
}

// MARK: - Generation

public struct GenerationStats {
    public var promptTokens = 0
    public var newTokens = 0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(newTokens - 1, 0)) / decodeSeconds : 0 }
}

extension Model {
    /// Generates up to `maxNewTokens` after `prompt` with a KV cache. Stops at
    /// `stop` ids (EOS). `onToken` receives each new id as it is produced.
    public func generate(prompt: [Int], maxNewTokens: Int, sampler: inout Sampler, stop: Set<Int> = [],
                         onToken: (Int) -> Void = { _ in }) throws -> (tokens: [Int], stats: GenerationStats) {
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        for t in prompt where t < 0 || t >= config.vocabSize { throw ModelError.invalidToken(id: t, vocabSize: config.vocabSize) }
        let limit = config.maxSeqLen
        guard prompt.count < limit else { throw ModelError.promptTooLong(tokens: prompt.count, limit: limit) }
        guard maxNewTokens >= 0 else {
            throw ModelError.badConfig(file: "generate", key: "max-new-tokens", reason: "must not be negative")
        }
        // Clamp before adding: a huge request must not overflow (it stops at the context).
        let total = prompt.count + min(maxNewTokens, limit - prompt.count)
        let cache = KVCache(config: config, capacity: total)
        var stats = GenerationStats(promptTokens: prompt.count)
        var out: [Int] = []
        let t0 = Date()
        var logits = step(prompt, cache: cache)
        stats.prefillSeconds = Date().timeIntervalSince(t0)
        let t1 = Date()
        // Decode: ~240 small gemv calls per token, each split over both cores by
        // the spinning WorkerTeam (measured as fast as OpenBLAS's own pool).
        while prompt.count + out.count < total {
            let next = sampler.sample(logits)
            if stop.contains(next) { break }
            out.append(next)
            onToken(next)
            if prompt.count + out.count >= total { break }
            logits = step([next], cache: cache)
        }
        stats.newTokens = out.count
        stats.decodeSeconds = Date().timeIntervalSince(t1)
        return (out, stats)
    }
}
