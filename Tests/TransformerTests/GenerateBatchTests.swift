import Foundation
import XCTest
@testable import Transformer
import TestSupport

/// Batched generation (issue 14): the same tokens as one stream at a time, the same samples
/// whatever the batch size, a stream's own stop, and the sampler's candidate shortcut equal to
/// the plain definition.
final class GenerateBatchTests: XCTestCase {
    // MARK: - Sampler: the nucleus shortcut against the plain definition

    /// The sampler as first written (sort every id, cut, draw): the reference the shortcut must equal.
    private struct PlainSampler {
        var temperature: Float, topP: Float, rng: SeededRNG
        mutating func sample(_ logits: [Float]) -> Int {
            if temperature <= 0 { return argmax(logits) }
            var m = -Float.infinity
            for x in logits where x > m { m = x }
            var probs = logits.map { Double(fastExp(($0 - m) / temperature)) }
            let total = probs.reduce(0, +)
            for i in probs.indices { probs[i] /= total }
            var order = Array(probs.indices)
            if topP < 1 {
                order.sort { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
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

    func testSamplerShortcutDrawsWhatThePlainDefinitionDraws() {
        var gen = SeededRNG(seed: 11)
        for (vocab, spread) in [(50, 3.0), (3000, 8.0), (49_152, 12.0), (1000, 0.0)] {
            // spread 0: every logit equal — all ties, ordered by id.
            let logits = (0..<vocab).map { _ in Float((gen.uniform() - 0.5) * spread) }
            for (t, p) in [(Float(1), Float(0.9)), (0.7, 0.5), (1.3, 1), (1, 0), (0.5, 0.999)] {
                var fast = Sampler(temperature: t, topP: p, seed: 99)
                var plain = PlainSampler(temperature: t, topP: p, rng: SeededRNG(seed: 99))
                let draws = vocab > 10_000 ? 4 : 40          // the plain sort is slow in debug builds
                let a = (0..<draws).map { _ in fast.sample(logits) }
                let b = (0..<draws).map { _ in plain.sample(logits) }
                XCTAssertEqual(a, b, "vocab \(vocab), spread \(spread), T \(t), p \(p)")
            }
        }
    }

    func testStreamSeedsDifferAndAreStable() {
        let a = Model.streamSeed(7, prompt: 0, sample: 1), b = Model.streamSeed(7, prompt: 1, sample: 0)
        XCTAssertNotEqual(a, b, "(0, 1) and (1, 0) are different streams")
        XCTAssertNotEqual(Model.streamSeed(7, prompt: 0, sample: 0), Model.streamSeed(8, prompt: 0, sample: 0))
        XCTAssertEqual(a, Model.streamSeed(7, prompt: 0, sample: 1))
    }

    // MARK: - Batched = one at a time

    private func model() throws -> Model {
        try ModelLoader.load(try Fixtures.path("tiny-llama-bias"), needTokenizer: false).model
    }

    private let prompts: [[Int]] = [[1, 5, 17, 42], [99, 3], [64, 128, 7, 200, 11], [250], [5, 5, 5]]

    private func oneAtATime(_ m: Model, _ s: GenerationSettings, samples: Int) throws -> [[[Int]]] {
        try prompts.enumerated().map { p, prompt in
            try (0..<samples).map { k in
                var sampler = Sampler(temperature: s.temperature, topP: s.topP, seed: Model.streamSeed(s.seed, prompt: p, sample: k))
                return try m.generate(prompt: prompt, maxNewTokens: s.maxNewTokens, sampler: &sampler, stop: s.stop).tokens
            }
        }
    }

    func testGreedyBatchGivesTheTokensOfOneAtATime() throws {
        let m = try model()
        let s = GenerationSettings(maxNewTokens: 12)
        let reference = try oneAtATime(m, s, samples: 2)
        XCTAssertEqual(reference[0][0].count, 12)
        for maxBatch in [1, 3, 7, 64] {
            let (tokens, stats) = try m.generateBatch(prompts: prompts, samplesPerPrompt: 2, settings: s, maxBatch: maxBatch)
            XCTAssertEqual(tokens, reference, "maxBatch \(maxBatch)")
            XCTAssertEqual(stats.newTokens, 5 * 2 * 12)
            XCTAssertEqual(stats.streams, 10)
        }
    }

    func testSampledBatchIsIndependentOfBatchSize() throws {
        let m = try model()
        let s = GenerationSettings(maxNewTokens: 10, temperature: 1, topP: 0.9, seed: 3)
        let reference = try oneAtATime(m, s, samples: 4)
        XCTAssertNotEqual(reference[0][0], reference[0][1], "samples of one prompt differ")
        for maxBatch in [1, 4, 6, 20] {
            var seen: [(Int, Int, Int)] = []
            let (tokens, stats) = try m.generateBatch(prompts: prompts, samplesPerPrompt: 4, settings: s, maxBatch: maxBatch) {
                seen.append(($0, $1, $2))
            }
            XCTAssertEqual(tokens, reference, "maxBatch \(maxBatch)")
            XCTAssertEqual(seen.last?.0, 20); XCTAssertEqual(seen.last?.1, 20)
            XCTAssertEqual(seen.last?.2, stats.newTokens)
            XCTAssertEqual(stats.newTokens, tokens.joined().reduce(0) { $0 + $1.count })
        }
    }

    func testAStreamStopsOnItsOwn() throws {
        let m = try model()
        let free = try m.generateBatch(prompts: prompts, samplesPerPrompt: 1, settings: GenerationSettings(maxNewTokens: 8)).tokens
        // Stop at the third token of the first prompt's continuation: that stream ends there,
        // the others run on until they meet it (or their budget).
        let stopId = free[0][0][2]
        let s = GenerationSettings(maxNewTokens: 8, stop: [stopId])
        let (tokens, _) = try m.generateBatch(prompts: prompts, samplesPerPrompt: 1, settings: s, maxBatch: 8)
        XCTAssertEqual(tokens, try oneAtATime(m, s, samples: 1))
        for (p, row) in free.enumerated() {
            let expected = Array(row[0].prefix { $0 != stopId })
            XCTAssertEqual(tokens[p][0], expected, "prompt \(p)")
        }
        XCTAssertLessThanOrEqual(tokens[0][0].count, 2)
    }

    func testContextLimitAndZeroBudget() throws {
        let m = try model()
        let limit = m.config.maxSeqLen
        let long = [Int](repeating: 7, count: limit - 3)
        let (tokens, _) = try m.generateBatch(prompts: [long, [1, 2]], samplesPerPrompt: 1,
                                              settings: GenerationSettings(maxNewTokens: 50))
        XCTAssertEqual(tokens[0][0].count, 3, "stops at the context's end")
        XCTAssertEqual(tokens[1][0].count, min(50, limit - 2))
        let none = try m.generateBatch(prompts: [[1, 2]], samplesPerPrompt: 3, settings: GenerationSettings(maxNewTokens: 0))
        XCTAssertEqual(none.tokens, [[[], [], []]])
    }

    func testBadRequestsAreRefused() throws {
        let m = try model()
        let s = GenerationSettings(maxNewTokens: 4)
        XCTAssertThrowsError(try m.generateBatch(prompts: [], samplesPerPrompt: 1, settings: s)) {
            XCTAssertEqual($0 as? GenerationError, .noPrompts)
        }
        XCTAssertThrowsError(try m.generateBatch(prompts: [[1], []], samplesPerPrompt: 1, settings: s)) {
            XCTAssertEqual($0 as? GenerationError, .emptyPrompt(index: 1))
        }
        XCTAssertThrowsError(try m.generateBatch(prompts: [[1]], samplesPerPrompt: 0, settings: s))
        XCTAssertThrowsError(try m.generateBatch(prompts: [[1]], samplesPerPrompt: 1,
                                                 settings: GenerationSettings(maxNewTokens: 4, topP: 1.5)))
        XCTAssertThrowsError(try m.generateBatch(prompts: [[m.config.vocabSize]], samplesPerPrompt: 1, settings: s))
    }

    /// On SmolLM2 (real weights, GQA, 49,152 ids): greedy batched decode equals one at a time.
    func testSmolLM2GreedyBatchEqualsOneAtATime() throws {
        let path = try Assets.smolLM2()
        let loaded = try ModelLoader.load(path)
        let tok = try XCTUnwrap(loaded.tokenizer)
        let texts = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "I think that"]
        let ids = try texts.map { try tok.encode($0) }
        let s = GenerationSettings(maxNewTokens: 8)
        let (batched, _) = try loaded.model.generateBatch(prompts: ids, samplesPerPrompt: 2, settings: s, maxBatch: 8)
        for (p, prompt) in ids.enumerated() {
            var sampler = Sampler()
            let single = try loaded.model.generate(prompt: prompt, maxNewTokens: 8, sampler: &sampler).tokens
            XCTAssertEqual(batched[p][0], single, texts[p])
            XCTAssertEqual(batched[p][1], single, texts[p])
        }
    }
}
