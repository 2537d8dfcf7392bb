import Foundation
import XCTest
@testable import Transformer
import TestSupport

/// Logits equal HF transformers' (fp32, eager attention) to 1e-4 on every
/// supported family. Goldens: Tests/Fixtures/goldens/hf_logits.json, made by
/// `tools/hf_goldens.py` (recipe in the file and in tools/README.md).
final class HFLogitsTests: XCTestCase {
    func modelDir(_ name: String, _ rel: String) throws -> String {
        if name == "stories260K" { return try Assets.path("stories260K/hf") }
        return try Fixtures.path(rel.replacingOccurrences(of: "Tests/Fixtures/", with: ""))
    }

    func check(_ name: String) throws {
        let goldens = try Fixtures.json("goldens/hf_logits.json")
        let m = try XCTUnwrap((goldens["models"] as? [String: Any])?[name] as? [String: Any])
        let dir = try modelDir(name, try XCTUnwrap(m["path"] as? String))
        let model = try Model.build(from: try ModelLoader.loadHFDirectory(dir))
        let v = model.config.vocabSize
        // Single sequence: every position's logits.
        let single = try XCTUnwrap(m["single"] as? [String: Any])
        let ids = try XCTUnwrap(single["ids"] as? [Int])
        let want = try XCTUnwrap(single["logits"] as? [[Double]])
        let got = model.forward(ids)
        var maxErr = 0.0
        for t in 0..<ids.count { for j in 0..<v { maxErr = max(maxErr, abs(Double(got[t * v + j]) - want[t][j])) } }
        XCTAssertLessThan(maxErr, 1e-4, "\(name) single: max |Δlogit| = \(maxErr)")
        // Right-padded batch: only real positions are compared.
        let batch = try XCTUnwrap(m["batch"] as? [String: Any])
        let bids = try XCTUnwrap(batch["ids"] as? [[Int]])
        let lengths = try XCTUnwrap(batch["lengths"] as? [Int])
        let bwant = try XCTUnwrap(batch["logits"] as? [[[Double]]])
        let seqs = zip(bids, lengths).map { Array($0.prefix($1)) }
        let bgot = model.forward(batch: seqs)
        maxErr = 0
        for b in 0..<seqs.count {
            for t in 0..<lengths[b] { for j in 0..<v { maxErr = max(maxErr, abs(Double(bgot[b][t * v + j]) - bwant[b][t][j])) } }
        }
        XCTAssertLessThan(maxErr, 1e-4, "\(name) batch: max |Δlogit| = \(maxErr)")
    }

    func testStories260KHF() throws { try check("stories260K") }
    func testTinyOPT() throws { try check("tiny-opt") }
    func testTinyLlamaWithBiasesUntiedHead() throws { try check("tiny-llama-bias") }
    func testTinyLlamaBF16() throws { try check("tiny-llama-bias-bf16") }
}
