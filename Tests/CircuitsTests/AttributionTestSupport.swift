import Foundation
import XCTest
@testable import Circuits
import Transformer

// MARK: - Locating models and scratch space for the attribution tests
//
// stories260K lives in shared/assets ($WORKBENCH_ASSETS, else the first ancestor
// of this file holding `shared/assets`); tests that need it skip with a printed
// reason when it is absent. The tiny fixtures (no tokenizer) are in the repo.

enum AttributionFixtures {
    // Locating the repo, shared/assets and skips: shared with the pruning tests (PruneAssets).
    static var repoRoot: URL? { PruneAssets.repoRoot }
    static func skip(_ reason: String) -> XCTSkip { PruneAssets.skip(reason) }
    /// A file under shared/assets, or XCTSkip.
    static func asset(_ relative: String) throws -> String { try PruneAssets.asset(relative) }

    /// stories260K (HF copy, with its SentencePiece tokenizer).
    static func stories() throws -> LoadedModel {
        let p = try asset("stories260K/hf")
        if let m = cache[p] { return m }
        let m = try ModelLoader.load(p)
        cache[p] = m
        return m
    }
    nonisolated(unsafe) static var cache: [String: LoadedModel] = [:]

    /// A tiny fixture model without tokenizer: "tiny-opt" or "tiny-llama-bias".
    static func tiny(_ name: String) throws -> Model {
        guard let root = repoRoot else { throw skip("package root not found") }
        let p = root.appendingPathComponent("Tests/Fixtures/\(name)").path
        guard FileManager.default.fileExists(atPath: p) else { throw skip("fixture \(name) not found") }
        return try ModelLoader.load(p, needTokenizer: false).model
    }

    static func tinyPath(_ name: String) throws -> String { try PruneAssets.fixture(name) }

    /// A fresh temporary directory removed after the test.
    static func tempDir(_ test: XCTestCase) throws -> URL { try PruneAssets.tempDir(test) }

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

    /// Every tensor of a safetensors file as raw bytes (for bit-identity checks).
    static func rawTensors(_ path: String) throws -> [String: [UInt8]] {
        let f = try SafetensorsFile(path: path)
        var out: [String: [UInt8]] = [:]
        for n in f.names { out[n] = [UInt8](try f.rawBytes(n)) }
        return out
    }
}
