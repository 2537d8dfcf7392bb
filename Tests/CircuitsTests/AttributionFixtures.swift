import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Models and settings for the attribution tests
//
// stories260K comes from the shared assets (TestSupport's `Assets`: tests that
// need it skip with a printed reason when it is absent); the tiny fixtures
// (no tokenizer) are committed under Tests/Fixtures.

enum AttributionFixtures {
    /// stories260K (HF copy, with its SentencePiece tokenizer).
    static func stories() throws -> LoadedModel {
        let p = try Assets.path("stories260K/hf")
        if let m = cache[p] { return m }
        let m = try ModelLoader.load(p)
        cache[p] = m
        return m
    }
    nonisolated(unsafe) static var cache: [String: LoadedModel] = [:]

    /// A tiny fixture model without tokenizer: "tiny-opt" or "tiny-llama-bias".
    static func tiny(_ name: String) throws -> Model {
        try ModelLoader.load(try Fixtures.path(name), needTokenizer: false).model
    }

    /// Deterministic pseudo-random token ids in 0..<vocab.
    static func tokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int] {
        var rng = SeededRNG(seed: seed)
        return (0..<n).map { _ in Int(rng.next() % UInt64(vocab)) }
    }

    /// Settings for a run over in-memory samples (fake provenance).
    static func settings(_ method: AttributionMethod, samples: Int, abs: Bool = false) -> AttributionSettings {
        var s = AttributionSettings()
        s.method = method
        s.absPerSample = abs
        s.modelSHA256 = "model-sha"
        s.dataKind = .prompts
        s.dataPath = "prompts.jsonl"
        s.dataSHA256 = "prompts-sha"
        s.samples = samples
        return s
    }
}
