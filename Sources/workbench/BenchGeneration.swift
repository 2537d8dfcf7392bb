import Foundation
import Transformer

// MARK: - bench --generation: batched sampling, the cost of evaluating a correction

extension BenchCommand {
    /// RealToxicityPrompts-shaped work: `prompts` prompts of 12–20 random tokens, 25 samples each,
    /// 20 new tokens, temperature 1, top-p 0.9, `maxBatch` streams per batch (no stop token, so
    /// every stream runs its 20 tokens). FLOPs per generated token: the linear layers and the
    /// unembedding (2 per weight) plus attention over the stream's context; the sampling (an exp
    /// per vocabulary entry and a sort of the nucleus candidates) is not counted.
    static func measureGeneration(_ model: Model, prompts n: Int, maxBatch: Int) throws -> [String: Any] {
        let c = model.config
        var rng = SeededRNG(seed: 2)
        let prompts = (0..<n).map { _ in (0..<(12 + Int(rng.next() % 9))).map { _ in Int(rng.next() % UInt64(c.vocabSize)) } }
        let samples = 25, newTokens = 20
        let settings = GenerationSettings(maxNewTokens: newTokens, temperature: 1, topP: 0.9, seed: 1)
        var peaks: [Double] = []
        let ((_, stats), peak) = try bracketed(sgemmPeak, into: &peaks) {
            try model.generateBatch(prompts: prompts, samplesPerPrompt: samples, settings: settings, maxBatch: maxBatch)
        }
        let perToken = forwardFlops(model, 1).linear + 2 * Double(c.dModel) * Double(c.vocabSize)
        var attention = 0.0                         // Σ over generated tokens of 4·layers·heads·hd·context
        for p in prompts { for i in 0..<newTokens { attention += Double(samples) * 4 * Double(c.nLayers * c.qDim) * Double(p.count + i) } }
        let seconds = stats.prefillSeconds + stats.decodeSeconds
        let gflops = (perToken * Double(stats.newTokens) + attention) / seconds / 1e9
        let rtpSeconds = Double(100 * samples * newTokens) / stats.tokensPerSecond
        Out.err(String(format: "generation: %d prompts × %d samples × %d tokens, batches of %d: %.1f tok/s generated (prefill %.2f s, decode %.2f s) = %.0f%% of the sgemm peak around it (%.1f GFLOP/s); RTP protocol (100 × 25 × 20) ≈ %.0f s",
                       n, samples, newTokens, maxBatch, stats.tokensPerSecond, stats.prefillSeconds, stats.decodeSeconds,
                       100 * gflops / peak, gflops, rtpSeconds))
        return ["prompts": n, "samples_per_prompt": samples, "new_tokens": newTokens, "max_batch": maxBatch,
                "temperature": 1.0, "top_p": 0.9, "generated_tokens": stats.newTokens, "tokens_per_s": stats.tokensPerSecond,
                "prefill_seconds": stats.prefillSeconds, "decode_seconds": stats.decodeSeconds, "gflops": gflops,
                "sgemm_peak_gflops": peak, "fraction_of_sgemm_peak": gflops / peak, "rtp_100x25x20_seconds": rtpSeconds]
    }
}
