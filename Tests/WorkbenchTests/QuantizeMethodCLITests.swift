import Foundation
import XCTest
import Circuits
import Transformer
import TestSupport

// MARK: - `quantize --method` and `faults --protect a,b` as a user runs them (stories260K)

final class QuantizeMethodCLITests: XCTestCase {
    func run(_ args: [String]) throws -> WorkbenchRun { try WorkbenchCLI.runWithAssets(args) }

    func promptFile(_ dir: URL) throws -> String {
        let p = dir.appendingPathComponent("prompts.txt")
        try Data("Once upon a time there was a little girl\nLily liked to play in the park with her dog\nThe sun was warm and".utf8).write(to: p)
        return p.path
    }

    /// --method lrp|wanda|gradient computes what `attribute` writes (the default aggregation, abs-per-token, is
    /// attribute's --abs-per-token), so the GGUF equals `quantize --scores` of attribute's file byte for byte;
    /// --method magnitude equals --importance magnitude.
    func testMethodEqualsAttributeThenScores() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self), prompts = try promptFile(dir)
        let common = ["--model", model, "--bits-per-weight", "6", "--types", "q8_0,q4_1,q4_0"]
        for method in ["lrp", "wanda", "gradient"] {
            let rel = dir.appendingPathComponent("\(method).safetensors").path
            let a = try run(["attribute", "--model", model, "--prompts", prompts, "--method", method, "--out", rel]
                            + (method == "wanda" ? [] : ["--abs-per-token"]))
            XCTAssertEqual(a.status, 0, a.summary)
            let viaFile = dir.appendingPathComponent("\(method)-file.gguf").path, onTheFly = dir.appendingPathComponent("\(method)-fly.gguf").path
            let f = try run(["quantize"] + common + ["--scores", rel, "--out", viaFile])
            XCTAssertEqual(f.status, 0, f.summary)
            // The file has no scores for the token embedding: one warning names the file and it.
            XCTAssertEqual(f.stderr.components(separatedBy: "warning:").count - 1, 1, f.stderr)
            XCTAssertTrue(f.stderr.contains("warning: \(rel) has no scores for model.embed_tokens.weight"), f.stderr)
            let q = try run(["quantize"] + common + ["--method", method, "--prompts", prompts, "--out", onTheFly])
            XCTAssertEqual(q.status, 0, q.summary)
            XCTAssertTrue(q.stdout.contains("importance: scores (\(method))"), q.stdout)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: onTheFly)), try Data(contentsOf: URL(fileURLWithPath: viaFile)), method)
        }
        let m1 = dir.appendingPathComponent("m1.gguf").path, m2 = dir.appendingPathComponent("m2.gguf").path
        XCTAssertEqual(try run(["quantize"] + common + ["--method", "magnitude", "--out", m1]).status, 0)
        XCTAssertEqual(try run(["quantize"] + common + ["--importance", "magnitude", "--out", m2]).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: m1)), try Data(contentsOf: URL(fileURLWithPath: m2)))
        // Signed on-the-fly relevance allows --prune-nonpositive and reports a sparsity.
        let p = try run(["quantize"] + common + ["--method", "lrp", "--aggregation", "signed", "--prompts", prompts, "--prune-nonpositive",
                                                 "--out", dir.appendingPathComponent("pruned.gguf").path])
        XCTAssertEqual(p.status, 0, p.summary)
        XCTAssertTrue(p.stdout.contains("with signed relevance ≤ 0"), p.stdout)
    }

    func testMethodUsageErrorsWriteNothing() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self), prompts = try promptFile(dir), out = dir.appendingPathComponent("x.gguf").path
        let common = ["quantize", "--model", model, "--bits-per-weight", "6", "--out", out]
        let cases: [([String], String)] = [
            (["--method", "lrp", "--scores", prompts, "--prompts", prompts], "--scores, --method exclude each other"),
            (["--method", "lrp", "--importance", "magnitude", "--prompts", prompts], "--method, --importance exclude each other"),
            (["--seqlen", "8"], "--seqlen applies only with --method"),
            (["--method", "lrp"], "--prompts"),
            (["--method", "magnitude", "--prompts", prompts], "magnitude"),
            (["--method", "wanda", "--aggregation", "signed", "--prompts", prompts], "--aggregation applies only with --method gradient or lrp"),
            (["--method", "lrp", "--prompts", prompts, "--prune-nonpositive"], "--aggregation signed"),
        ]
        for (extra, message) in cases {
            let r = try run(common + extra)
            XCTAssertEqual(r.status, 64, "\(extra): \(r.summary)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// Several --protect files: one criterion each, named by the file's method, all at the same budget.
    func testFaultsComparesSeveralScoreFiles() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self), prompts = try promptFile(dir)
        var files: [String] = []
        for method in ["lrp", "gradient", "wanda"] {
            let rel = dir.appendingPathComponent("\(method).safetensors").path
            XCTAssertEqual(try run(["attribute", "--model", model, "--prompts", prompts, "--method", method, "--out", rel]).status, 0)
            files.append(rel)
        }
        let text = dir.appendingPathComponent("text.raw")
        try Data((0..<40).map { "Once upon a time there was a little girl named Lily number \($0)." }.joined(separator: "\n").utf8).write(to: text)
        let out = dir.appendingPathComponent("f.json")
        let r = try run(["faults", "--model", model, "--ber", "1e-4", "--trials", "2", "--storage", "f16", "--protect", files.joined(separator: ","),
                         "--protect-fraction", "0.02", "--text", text.path, "--windows", "1", "--seqlen", "64", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.summary)
        let rep = try JSONDecoder().decode(FaultReport.self, from: Data(contentsOf: out))
        XCTAssertEqual(rep.rows.map(\.criterion), ["none", "lrp", "gradient", "wanda", "magnitude", "random"])
        let budget = 0.02 * Double(rep.storedBits)
        for row in rep.rows where row.criterion != "none" {
            XCTAssertLessThanOrEqual(Double(row.protectedBits), budget)
            XCTAssertGreaterThan(Double(row.protectedBits), budget - 16 - 1, "\(row.criterion) fills the budget to within one weight")
        }
        let dup = try run(["faults", "--model", model, "--protect", files[0] + "," + files[0], "--text", text.path, "--out", dir.appendingPathComponent("d.json").path])
        XCTAssertEqual(dup.status, 64, dup.summary)
        XCTAssertTrue(dup.stderr.contains("same file twice"), dup.stderr)
    }
}
