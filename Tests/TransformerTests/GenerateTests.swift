import Foundation
import XCTest
@testable import Transformer
import Tokenize
import TestSupport

/// Sampling (seed, temperature 0, top-p nucleus) and KV-cache decoding.
final class GenerateTests: XCTestCase {
    // MARK: - Sampler on synthetic logits

    /// Logits whose softmax at temperature 1 is exactly `p` (up to float rounding).
    private func logits(_ p: [Double]) -> [Float] { p.map { Float(log($0)) } }

    private func draws(_ s: inout Sampler, _ l: [Float], _ n: Int) -> [Int] { (0..<n).map { _ in s.sample(l) } }

    func testSeedIsReproducibleAndSeedMatters() {
        let l = logits([0.3, 0.25, 0.2, 0.15, 0.1])
        var a = Sampler(temperature: 1, topP: 1, seed: 42), b = Sampler(temperature: 1, topP: 1, seed: 42)
        var c = Sampler(temperature: 1, topP: 1, seed: 43)
        let da = draws(&a, l, 200), db = draws(&b, l, 200), dc = draws(&c, l, 200)
        XCTAssertEqual(da, db)
        XCTAssertNotEqual(da, dc)
        XCTAssertEqual(Set(da), Set(0..<5), "all five ids are drawn at T = 1, p = 1")
    }

    func testSeededRNGIsSplitMix64() {
        // SplitMix64 reference values for state seed + golden gamma (seed 0 → state 0x9E3779B97F4A7C15).
        var r = SeededRNG(seed: 0)
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<5 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            XCTAssertEqual(r.next(), z ^ (z >> 31))
        }
        var u = SeededRNG(seed: 9)
        for _ in 0..<1000 { let v = u.uniform(); XCTAssertTrue(v >= 0 && v < 1) }
    }

    func testTemperatureZeroIsArgmax() {
        var rng = SeededRNG(seed: 5)
        for trial in 0..<50 {
            let l = (0..<97).map { _ in Float(rng.uniform() * 20 - 10) }
            var s = Sampler(temperature: 0, topP: 0.5, seed: UInt64(trial))
            XCTAssertEqual(s.sample(l), argmax(l))
            XCTAssertEqual(s.sample(l), l.indices.max { l[$0] < l[$1] }!)
        }
        // Ties resolve to the first maximum.
        var s = Sampler(temperature: 0)
        XCTAssertEqual(s.sample([1, 3, 3, 2]), 1)
    }

    func testTopPRestrictsToNucleus() {
        let p = [0.5, 0.3, 0.15, 0.05]
        let l = logits(p)
        let n = 4000
        // p = 0.7: the nucleus is {0, 1} (0.5 < 0.7 ≤ 0.8); renormalised 0.625 / 0.375.
        var s = Sampler(temperature: 1, topP: 0.7, seed: 1)
        let d = draws(&s, l, n)
        XCTAssertEqual(Set(d), [0, 1])
        XCTAssertEqual(Double(d.filter { $0 == 0 }.count) / Double(n), 0.625, accuracy: 0.03)
        // p = 0.9: {0, 1, 2}.
        s = Sampler(temperature: 1, topP: 0.9, seed: 2)
        let d9 = draws(&s, l, n)
        XCTAssertEqual(Set(d9), [0, 1, 2])
        XCTAssertEqual(Double(d9.filter { $0 == 2 }.count) / Double(n), 0.15 / 0.95, accuracy: 0.03)
        // p = 0.4: only the top token.
        s = Sampler(temperature: 1, topP: 0.4, seed: 3)
        XCTAssertEqual(Set(draws(&s, l, 500)), [0])
        // p = 1: everything, with the original frequencies.
        s = Sampler(temperature: 1, topP: 1, seed: 4)
        let d1 = draws(&s, l, n)
        XCTAssertEqual(Set(d1), [0, 1, 2, 3])
        XCTAssertEqual(Double(d1.filter { $0 == 3 }.count) / Double(n), 0.05, accuracy: 0.02)
        // The nucleus is by probability, not by index: shuffle the ids.
        let perm = [3, 0, 2, 1]                      // id perm[i] gets probability p[i]
        var shuffled = [Float](repeating: 0, count: 4)
        for (i, id) in perm.enumerated() { shuffled[id] = l[i] }
        s = Sampler(temperature: 1, topP: 0.7, seed: 5)
        XCTAssertEqual(Set(draws(&s, shuffled, 1000)), [3, 0])
    }

    func testTemperatureSharpens() {
        let l = logits([0.4, 0.35, 0.25])
        var hot = Sampler(temperature: 1, seed: 11), cold = Sampler(temperature: 0.1, seed: 11)
        let n = 3000
        let fHot = Double(draws(&hot, l, n).filter { $0 == 0 }.count) / Double(n)
        let fCold = Double(draws(&cold, l, n).filter { $0 == 0 }.count) / Double(n)
        XCTAssertEqual(fHot, 0.4, accuracy: 0.03)
        // softmax(log p / 0.1) ∝ p^10: 0.4^10 / (0.4^10 + 0.35^10 + 0.25^10) ≈ 0.79.
        let p10 = [0.4, 0.35, 0.25].map { (x: Double) -> Double in Foundation.pow(x, 10) }
        XCTAssertEqual(fCold, p10[0] / p10.reduce(0, +), accuracy: 0.03)
    }

    // MARK: - Generation on stories260K

    private func stories() throws -> Model {
        try ModelLoader.load(try Assets.path("stories260K/stories260K.bin"), needTokenizer: false).model
    }

    func testGenerateSeededReproducible() throws {
        let m = try stories()
        func run(_ seed: UInt64) throws -> [Int] {
            var s = Sampler(temperature: 1, topP: 0.9, seed: seed)
            return try m.generate(prompt: [1, 403, 407, 261, 378], maxNewTokens: 40, sampler: &s).tokens
        }
        let a = try run(1), b = try run(1), c = try run(2)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertTrue(a.allSatisfy { $0 >= 0 && $0 < 512 })
    }

    /// Temperature 0 through the KV-cache generator equals a full-forward argmax loop.
    func testGreedyGenerateEqualsFullForwardArgmax() throws {
        let m = try stories()
        let prompt = [1, 317, 269, 274, 287, 263, 377, 267, 265]   // "Lily and Tom went to the"
        var s = Sampler(temperature: 0)
        let (got, _) = try m.generate(prompt: prompt, maxNewTokens: 24, sampler: &s)
        var ids = prompt, want: [Int] = []
        let v = m.config.vocabSize
        for _ in 0..<24 {
            let l = m.forward(ids)
            let next = argmax(Array(l[((ids.count - 1) * v)...]))
            want.append(next); ids.append(next)
        }
        XCTAssertEqual(got, want)
    }

    func testStopTokenAndContextLimit() throws {
        let m = try stories()
        var s = Sampler(temperature: 0)
        let greedy = try m.generate(prompt: [1], maxNewTokens: 10, sampler: &s).tokens
        // Stop at the 4th greedy token: generation ends before it and does not emit it.
        s = Sampler(temperature: 0)
        let stopped = try m.generate(prompt: [1], maxNewTokens: 10, sampler: &s, stop: [greedy[3]]).tokens
        XCTAssertEqual(stopped, Array(greedy.prefix(3)))
        // A prompt of 500 tokens with 100 new tokens stops at the 512-token context.
        s = Sampler(temperature: 0)
        let long = Array(repeating: 403, count: 500)
        let (out, stats) = try m.generate(prompt: long, maxNewTokens: 100, sampler: &s)
        XCTAssertEqual(out.count, 12)
        XCTAssertEqual(stats.promptTokens, 500)
        // onToken sees every token in order.
        s = Sampler(temperature: 0)
        var seen: [Int] = []
        let r = try m.generate(prompt: [1], maxNewTokens: 7, sampler: &s) { seen.append($0) }
        XCTAssertEqual(seen, r.tokens)
    }

    func testInvalidTokenRejected() throws {
        let m = try stories()
        var s = Sampler()
        XCTAssertThrowsError(try m.generate(prompt: [1, 512], maxNewTokens: 1, sampler: &s)) { e in
            XCTAssertEqual(e as? ModelError, .invalidToken(id: 512, vocabSize: 512))
        }
        XCTAssertThrowsError(try m.generate(prompt: [-1], maxNewTokens: 1, sampler: &s)) { e in
            XCTAssertEqual(e as? ModelError, .invalidToken(id: -1, vocabSize: 512))
        }
    }

    // MARK: - KV cache: incremental decoding == full forward

    /// Prefill `prefill` tokens, then step one token at a time; every step's logits equal the
    /// full forward's row at that position.
    private func checkIncremental(_ model: Model, tokens: [Int], prefill: Int, name: String) {
        let v = model.config.vocabSize
        let full = model.forward(tokens)
        XCTAssertEqual(full.count, tokens.count * v)
        let cache = KVCache(config: model.config, capacity: tokens.count)
        var maxErr: Float = 0
        var pos = 0
        var chunks: [[Int]] = [Array(tokens.prefix(prefill))]
        chunks += tokens.dropFirst(prefill).map { [$0] }
        for chunk in chunks {
            let l = model.step(chunk, cache: cache)
            pos += chunk.count
            XCTAssertEqual(cache.length, pos)
            XCTAssertEqual(l.count, v)
            let row = full[((pos - 1) * v)..<(pos * v)]
            for (a, b) in zip(l, row) { maxErr = max(maxErr, abs(a - b)) }
        }
        XCTAssertLessThan(maxErr, 1e-4, "\(name): max |Δlogit| step vs forward = \(maxErr)")
        // Not vacuous: logits differ between positions (the cache matters).
        var spread: Float = 0
        for p in 1..<tokens.count {
            for j in 0..<v { spread = max(spread, abs(full[j] - full[p * v + j])) }
        }
        XCTAssertGreaterThan(spread, 1e-2, name)
    }

    private func pseudoTokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int] {
        var r = SeededRNG(seed: seed)
        return (0..<n).map { _ in Int(r.next() % UInt64(vocab)) }
    }

    func testKVCacheTinyLlamaBias() throws {
        let m = try ModelLoader.load(try Fixtures.path("tiny-llama-bias"), needTokenizer: false).model
        XCTAssertTrue(m.config.attentionBias)
        let t = pseudoTokens(20, vocab: m.config.vocabSize, seed: 3)
        checkIncremental(m, tokens: t, prefill: 1, name: "tiny-llama-bias prefill 1")
        checkIncremental(m, tokens: t, prefill: 7, name: "tiny-llama-bias prefill 7")
    }

    func testKVCacheTinyOPT() throws {
        let m = try ModelLoader.load(try Fixtures.path("tiny-opt"), needTokenizer: false).model
        XCTAssertEqual(m.config.family, .opt)
        let t = pseudoTokens(20, vocab: m.config.vocabSize, seed: 4)
        checkIncremental(m, tokens: t, prefill: 1, name: "tiny-opt prefill 1")
        checkIncremental(m, tokens: t, prefill: 9, name: "tiny-opt prefill 9")
    }

    func testKVCacheStories260K() throws {
        let m = try stories()
        checkIncremental(m, tokens: [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315], prefill: 3, name: "stories260K")
    }

    func testKVCacheTinyLlamaBF16() throws {
        let m = try ModelLoader.load(try Fixtures.path("tiny-llama-bias-bf16"), needTokenizer: false).model
        checkIncremental(m, tokens: pseudoTokens(16, vocab: m.config.vocabSize, seed: 8), prefill: 5, name: "tiny-llama-bias-bf16")
    }
}
