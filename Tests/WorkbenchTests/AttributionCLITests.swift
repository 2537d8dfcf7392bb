import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// `workbench attribute` / `workbench heatmap` end to end: exit codes, errors naming file:line,
/// no output (final or partial) after a validation error, SIGINT → checkpoint → exit 130 → --resume.
final class AttributionCLITests: XCTestCase {
    func file(_ name: String, _ contents: String) throws -> String {
        let p = try Scratch.dir(self).appendingPathComponent(name).path
        try contents.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func testValidationErrorsNameFileAndLineAndLeaveNoOutput() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("r.safetensors").path
        let cases: [(String, String, String)] = [
            ("oov.jsonl", #"{"text": "Once upon a time"}"# + "\n" + #"{"ids": [1, 2, 9999]}"#, "oov.jsonl:2: field 'ids[2]': token id 9999"),
            ("short.jsonl", #"{"text": "Once upon a time"}"# + "\n\n" + #"{"ids": [7]}"#, "short.jsonl:3: the prompt tokenizes to 1 token"),
            ("pos.jsonl", #"{"ids": [1, 2, 3], "target": {"position": 9, "id": 4}}"#, "pos.jsonl:1: field 'target': position 9"),
            ("json.jsonl", #"{"text": "a"}"# + "\n" + "{oops", "json.jsonl:2: not a valid JSON object"),
            ("empty.txt", "\n\n", "contains no prompts"),
        ]
        for (name, contents, message) in cases {
            let p = try file(name, contents)
            let r = try WorkbenchCLI.run(["attribute", "--model", model, "--prompts", p, "--out", out, "--quiet"])
            XCTAssertEqual(r.status, 1, "\(name): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Error: ") && r.stderr.contains(message), "\(name): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".partial"), name)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], "\(name): nothing left behind")
        }
    }

    func testUsageErrorsExit64() throws {
        let model = try Assets.path("stories260K/hf")
        let p = try file("p.txt", "Once upon a time\n")
        for args in [["attribute", "--model", model],
                     ["attribute", "--model", model, "--prompts", p, "--text", p],
                     ["attribute", "--model", model, "--text", p],
                     ["attribute", "--model", model, "--prompts", p, "--target", "1:2:3"],
                     ["attribute", "--model", model, "--prompts", p, "--method", "wanda", "--rule", "cp-lrp"],
                     ["attribute", "--model", model, "--prompts", p, "--method", "nope"],
                     ["attribute", "--model", model, "--prompts", p, "--seqlen", "5"],
                     ["attribute", "--model", model, "--prompts", p, "--samples", "3"]] {
            let r = try WorkbenchCLI.run(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Usage: workbench attribute"), r.stderr)
        }
    }

    func testOutputMustNotBeAnInput() throws {
        let model = try Assets.path("stories260K/hf")
        let p = try file("p.txt", "Once upon a time\n")
        let r = try WorkbenchCLI.run(["attribute", "--model", model, "--prompts", p, "--out", p])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("is also an input"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "Once upon a time\n", "input untouched")
    }

    func testAttributeWritesFileAndSummary() throws {
        let model = try Assets.path("stories260K/hf")
        let p = try file("p.jsonl", #"{"text": "Once upon a time"}"# + "\n" + #"{"text": "Once upon a time", "target": " there"}"#)
        let out = try Scratch.dir(self).appendingPathComponent("r.safetensors").path
        let r = try WorkbenchCLI.run(["attribute", "--model", model, "--prompts", p, "--out", out, "--abs-per-sample", "--seed-value", "one"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for s in ["samples: 2", "tokens:", "tok/s", "conservation", "output: \(out)"] { XCTAssertTrue(r.stdout.contains(s), r.stdout) }
        let f = try SafetensorsFile(path: out)
        XCTAssertEqual(f.metadata["seed_value"], "one")
        XCTAssertEqual(f.metadata["abs_per_sample"], "true")
        XCTAssertEqual(f.metadata["prompts_sha256"], SHA256.hex(Array(try Data(contentsOf: URL(fileURLWithPath: p)))))
        XCTAssertEqual(f.metadata["model_sha256"]?.count, 64)
    }

    func testSIGINTCheckpointsExits130AndResumeIsBitIdentical() throws {
        let model = try Assets.path("stories260K/hf")
        let c4 = try Assets.path("eval/c4/c4_pfdecoding_1480.jsonl")
        let dir = try Scratch.dir(self)
        let oneGo = dir.appendingPathComponent("one.safetensors").path, two = dir.appendingPathComponent("two.safetensors").path
        let common = ["attribute", "--model", model, "--text", c4, "--seqlen", "48", "--samples", "24", "--seed", "5",
                      "--checkpoint-every", "0", "--quiet"]
        // Time an uninterrupted run, then interrupt a second one a third of the way in.
        let t0 = Date()
        let a = try WorkbenchCLI.run(common + ["--out", oneGo])
        XCTAssertEqual(a.status, 0, a.stderr)
        let full = Date().timeIntervalSince(t0)
        let b = try WorkbenchCLI.run(common + ["--out", two], interruptAfter: max(0.3, full / 2))
        guard b.status == 130 else {
            throw XCTSkip("the run finished before SIGINT arrived (status \(b.status), \(full) s); cannot test the signal path here")
        }
        XCTAssertTrue(b.stderr.contains("interrupted after") && b.stderr.contains("--resume"), b.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: two))
        let done = Int(try SafetensorsFile(path: two + ".partial").metadata["samples_done"] ?? "") ?? -1
        XCTAssertTrue((0..<24).contains(done), "samples_done \(done)")
        // Different settings are refused, and nothing is written.
        let bad = try WorkbenchCLI.run(common.map { $0 == "5" ? "6" : $0 } + ["--out", two, "--resume"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("seed = 5") && bad.stderr.contains("seed = 6"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: two))
        let c = try WorkbenchCLI.run(common + ["--out", two, "--resume"])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(c.stdout.contains("resumed at \(done)"), c.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: two + ".partial"))
        XCTAssertEqual(try TensorBytes.read(two), try TensorBytes.read(oneGo), "bit-identical tensors after SIGINT + --resume")
    }

    func testHeatmapCommandWritesSelfContainedHTML() throws {
        let model = try Assets.path("stories260K/hf")
        let out = try Scratch.dir(self).appendingPathComponent("heat.html").path
        let r = try WorkbenchCLI.run(["heatmap", "--model", model, "--prompt", "Once upon a <time> & \"day\"", "--target", #"" there""#, "--out", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let html = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertTrue(html.contains("&lt;") && html.contains("&amp;") && html.contains("&quot;"))
        XCTAssertFalse(html.contains("src=") || html.contains("href="))
        XCTAssertTrue(html.contains("Conservation ratio"))
        let bad = try WorkbenchCLI.run(["heatmap", "--model", model, "--prompt", "Once", "--target", "5:3", "--out", out + "2"])
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--prompt: field '--target': position 5"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "2"))
    }
}
