import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - `workbench prune` / `workbench sparsity` as a user runs them

final class PruneCLITests: XCTestCase {

    func run(_ args: [String]) throws -> WorkbenchRun { try WorkbenchCLI.run(args) }

    func testUsageErrorsExit64AndWriteNothing() throws {
        let model = try Fixtures.path("tiny-opt")
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("pruned").path
        let base = ["prune", "--model", model, "--method", "magnitude", "--out", out]
        for (extra, needle) in [(["--scheme", "row", "--sparsity", "1"], "outside [0, 1)"),
                                (["--scheme", "row", "--sparsity", "-0.5"], "outside [0, 1)"),
                                (["--scheme", "nm:4:4"], "1 ≤ N < M"),
                                (["--scheme", "row", "--sparsity", "0.5", "--layers", "fc1("], "not a valid regular expression"),
                                (["--scheme", "row"], "--sparsity or --count"),
                                (["--scheme", "row", "--sparsity", "0.5", "--count", "3"], "mutually exclusive"),
                                (["--scheme", "row", "--sparsity", "0.5", "--text", "x.txt"], "magnitude reads no calibration data")] {
            let r = try run(base + extra)
            XCTAssertEqual(r.status, 64, "\(extra): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle), "\(extra): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Usage: workbench prune"), r.stderr)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    func testRuntimeErrorsExit1AndWriteNothing() throws {
        let model = try Fixtures.path("tiny-opt")
        let dir = try Scratch.dir(self)
        let noMatch = try run(["prune", "--model", model, "--method", "magnitude", "--scheme", "row", "--sparsity", "0.5",
                               "--layers", "gate_proj", "--out", dir.appendingPathComponent("x").path])
        XCTAssertEqual(noMatch.status, 1)
        XCTAssertTrue(noMatch.stderr.contains("matches no decoder linear weight"), noMatch.stderr)
        let inside = try run(["prune", "--model", model, "--method", "magnitude", "--scheme", "row", "--sparsity", "0.5",
                              "--out", model + "/pruned"])
        XCTAssertEqual(inside.status, 1)
        XCTAssertTrue(inside.stderr.contains("inside the input directory"), inside.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: model + "/pruned"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("x").path))
    }

    func testPruneThenSparsityAndForward() throws {
        let model = try Fixtures.path("tiny-llama-bias")
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("p").path
        let r = try run(["prune", "--model", model, "--method", "magnitude", "--scheme", "nm:2:4", "--out", out, "--format", "sparse-bitmask"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("decoder linear weights: sparsity 0.500000"), r.stdout)
        XCTAssertTrue(r.stdout.contains("bytes on disk: input"), r.stdout)
        let again = try run(["prune", "--model", model, "--method", "magnitude", "--scheme", "row", "--sparsity", "0.25", "--out", out])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)
        let s = try run(["sparsity", "--model", out])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertTrue(s.stdout.contains("scheme nm:2:4"), s.stdout)
        XCTAssertTrue(s.stdout.contains("down_proj"), s.stdout)
        let j = try run(["sparsity", "--model", out, "--json"])
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((obj["decoder_linear"] as? [String: Any])?["sparsity"] as? Double, 0.5)
        XCTAssertNotNil(try ModelLoader.load(out, needTokenizer: false).model.forward(Fixtures.tokens))
    }
}

// MARK: - `prune --method wanda --sequential`

final class SequentialWandaCLITests: XCTestCase {

    func record(_ dir: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/pruning.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testSequentialIsRecordedForWandaOnlyAndMisuseExits64() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let prompts = dir.appendingPathComponent("p.txt").path
        try "Once upon a time there was a girl.\nThe dog ran to the park and played with a ball.\n".write(toFile: prompts, atomically: true, encoding: .utf8)
        func prune(_ name: String, _ extra: [String]) throws -> WorkbenchRun {
            try WorkbenchCLI.run(["prune", "--model", model, "--prompts", prompts, "--scheme", "row", "--sparsity", "0.5",
                                  "--out", dir.appendingPathComponent(name).path] + extra)
        }
        let seq = try prune("seq", ["--method", "wanda", "--sequential", "--sequential-cache-mb", "0"])
        XCTAssertEqual(seq.status, 0, seq.summary)
        XCTAssertTrue(seq.stderr.contains("sequential wanda over 2 samples"), seq.stderr)
        let j = try record(dir.appendingPathComponent("seq").path)
        XCTAssertEqual(j["sequential"] as? Bool, true)
        XCTAssertEqual(j["method"] as? String, "wanda")
        XCTAssertTrue(((j["scores"] as? [String: Any])?["source"] as? String)?.contains("sequential") == true)
        let oneShot = try prune("dense", ["--method", "wanda"])
        XCTAssertEqual(oneShot.status, 0, oneShot.summary)
        XCTAssertEqual(try record(dir.appendingPathComponent("dense").path)["sequential"] as? Bool, false)
        // The two procedures give different checkpoints (layers ≥ 1 see pruned inputs).
        let a = try Data(contentsOf: dir.appendingPathComponent("seq/mask.safetensors"))
        let b = try Data(contentsOf: dir.appendingPathComponent("dense/mask.safetensors"))
        XCTAssertNotEqual(a, b)
        let lrp = try prune("lrp", ["--method", "lrp"])
        XCTAssertEqual(lrp.status, 0, lrp.summary)
        XCTAssertNil(try record(dir.appendingPathComponent("lrp").path)["sequential"], "no sequential key for other methods")
        for (extra, needle) in [(["--method", "lrp", "--sequential"], "only with --method wanda"),
                                (["--method", "wanda", "--sequential-cache-mb", "8"], "only with --sequential"),
                                (["--method", "wanda", "--sequential", "--sequential-cache-mb", "-1"], "sequential-cache-mb")] {
            let r = try prune("bad", extra)
            XCTAssertEqual(r.status, 64, "\(extra): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(needle), "\(extra): \(r.stderr)")
        }
        let global = try WorkbenchCLI.run(["prune", "--model", model, "--prompts", prompts, "--method", "wanda", "--sequential",
                                           "--scheme", "global", "--sparsity", "0.5", "--out", dir.appendingPathComponent("bad").path])
        XCTAssertEqual(global.status, 64, global.stderr)
        XCTAssertTrue(global.stderr.contains("ranks across layers"), global.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bad").path))
    }
}
