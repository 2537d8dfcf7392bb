import Foundation
import XCTest
import Transformer
import TestSupport

// MARK: - `workbench imatrix` on stories260K with the LXT AttnLRP golden as the score file

final class ImatrixCLITests: XCTestCase {
    func testWritesAnImatrixAndNeverOverwritesItsInput() throws {
        let model = try Assets.path("stories260K/hf"), scores = try Fixtures.path("goldens/lrp_stories260K_logit.safetensors")
        let dir = try Scratch.dir(self), out = dir.appendingPathComponent("imatrix.gguf").path
        let r = try WorkbenchCLI.run(["imatrix", "--model", model, "--scores", scores, "--out", out])
        XCTAssertEqual(r.status, 0, r.summary)
        let g = try GGUFFile(path: out)
        XCTAssertEqual(g.tensors.count, 2 * 5 * 7)
        XCTAssertEqual(g.metadata["imatrix.chunk_count"]?.intValue, 1)
        XCTAssertEqual(try XCTUnwrap(g.tensor(named: "blk.4.ffn_down.weight.in_sum2")).dims, [172, 1])
        // The score file's own path as --out: refused, input untouched.
        let before = try Data(contentsOf: URL(fileURLWithPath: scores))
        let bad = try WorkbenchCLI.run(["imatrix", "--model", model, "--scores", scores, "--out", scores])
        XCTAssertNotEqual(bad.status, 0, bad.summary)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: scores)), before)
        // A score file for another model: an error naming the tensor, nothing written.
        let other = dir.appendingPathComponent("other.imatrix.gguf").path
        let wrong = try WorkbenchCLI.run(["imatrix", "--model", model, "--scores", try Fixtures.path("goldens/lrp_tiny_llama_bias_logit.safetensors"), "--out", other])
        WorkbenchCLI.assertRuntimeError(wrong, mentions: ["model.layers.0"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: other))
    }
}
