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
