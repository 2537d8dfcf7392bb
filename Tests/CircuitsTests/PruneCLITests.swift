import Foundation
import XCTest
@testable import Circuits
import Transformer

// MARK: - `workbench prune` / `workbench sparsity` as a user runs them

final class PruneCLITests: XCTestCase {

    /// The `workbench` executable SwiftPM built for this test run.
    func executable() throws -> URL {
        var dirs = [Bundle(for: PruneCLITests.self).bundleURL, Bundle(for: PruneCLITests.self).bundleURL.deletingLastPathComponent()]
        if let arg0 = CommandLine.arguments.first { dirs.append(URL(fileURLWithPath: arg0).deletingLastPathComponent()) }
        if let root = PruneAssets.repoRoot { dirs.append(root.appendingPathComponent(".build/debug")) }
        for d in dirs where FileManager.default.isExecutableFile(atPath: d.appendingPathComponent("workbench").path) {
            return d.appendingPathComponent("workbench")
        }
        throw PruneAssets.skip("workbench executable not found next to the tests")
    }

    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let tmp = try PruneAssets.tempDir(self)
        let outURL = tmp.appendingPathComponent("o"), errURL = tmp.appendingPathComponent("e")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = try executable()
        p.arguments = args
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOf: outURL, encoding: .utf8), try String(contentsOf: errURL, encoding: .utf8))
    }

    func testUsageErrorsExit64AndWriteNothing() throws {
        let model = try PruneAssets.fixture("tiny-opt")
        let dir = try PruneAssets.tempDir(self)
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
            XCTAssertEqual(r.status, 64, "\(extra): \(r.err)")
            XCTAssertTrue(r.err.contains(needle), "\(extra): \(r.err)")
            XCTAssertTrue(r.err.contains("Usage: workbench prune"), r.err)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !["o", "e"].contains($0) }, [])
    }

    func testRuntimeErrorsExit1AndWriteNothing() throws {
        let model = try PruneAssets.fixture("tiny-opt")
        let dir = try PruneAssets.tempDir(self)
        let noMatch = try run(["prune", "--model", model, "--method", "magnitude", "--scheme", "row", "--sparsity", "0.5",
                               "--layers", "gate_proj", "--out", dir.appendingPathComponent("x").path])
        XCTAssertEqual(noMatch.status, 1)
        XCTAssertTrue(noMatch.err.contains("matches no decoder linear weight"), noMatch.err)
        let inside = try run(["prune", "--model", model, "--method", "magnitude", "--scheme", "row", "--sparsity", "0.5",
                              "--out", model + "/pruned"])
        XCTAssertEqual(inside.status, 1)
        XCTAssertTrue(inside.err.contains("inside the input directory"), inside.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: model + "/pruned"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("x").path))
    }

    func testPruneThenSparsityAndForward() throws {
        let model = try PruneAssets.fixture("tiny-llama-bias")
        let dir = try PruneAssets.tempDir(self)
        let out = dir.appendingPathComponent("p").path
        let r = try run(["prune", "--model", model, "--method", "magnitude", "--scheme", "nm:2:4", "--out", out, "--format", "sparse-bitmask"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("decoder linear weights: sparsity 0.500000"), r.out)
        XCTAssertTrue(r.out.contains("bytes on disk: input"), r.out)
        let again = try run(["prune", "--model", model, "--method", "magnitude", "--scheme", "row", "--sparsity", "0.25", "--out", out])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.err.contains("--force"), again.err)
        let s = try run(["sparsity", "--model", out])
        XCTAssertEqual(s.status, 0, s.err)
        XCTAssertTrue(s.out.contains("scheme nm:2:4"), s.out)
        XCTAssertTrue(s.out.contains("down_proj"), s.out)
        let j = try run(["sparsity", "--model", out, "--json"])
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(j.out.utf8)) as? [String: Any])
        XCTAssertEqual((obj["decoder_linear"] as? [String: Any])?["sparsity"] as? Double, 0.5)
        XCTAssertNotNil(try ModelLoader.load(out, needTokenizer: false).model.forward(PruneAssets.tokens))
    }
}
