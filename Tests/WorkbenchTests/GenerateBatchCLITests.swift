import Foundation
import XCTest
import TestSupport

/// `generate --prompts` (batch mode): one JSONL line per prompt and sample, greedy lines equal to
/// `generate --prompt`, output independent of --max-batch, flags checked, inputs never overwritten.
final class GenerateBatchCLITests: XCTestCase {
    private var storiesBin: String { get throws { try Assets.path("stories260K/stories260K.bin") } }

    private func lines(_ path: URL) throws -> [[String: Any]] {
        try String(contentsOf: path, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testBatchModeWritesOneLinePerStreamAndMatchesSingleMode() throws {
        let bin = try storiesBin
        let dir = try Scratch.dir(self)
        let prompts = dir.appendingPathComponent("p.txt")
        try "Once upon a time\nThe cat\nLily went to the park\n".write(to: prompts, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("g.jsonl")
        let r = try WorkbenchCLI.run(["generate", "--model", bin, "--prompts", prompts.path, "--samples", "2",
                                      "--max-new-tokens", "10", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.summary)
        let rows = try lines(out)
        XCTAssertEqual(rows.count, 6)
        XCTAssertEqual(rows.map { $0["prompt"] as? Int }, [0, 0, 1, 1, 2, 2])
        XCTAssertEqual(rows.map { $0["sample"] as? Int }, [0, 1, 0, 1, 0, 1])
        XCTAssertEqual(rows[2]["text"] as? String, "The cat")
        // Greedy: both samples of a prompt are the single-prompt continuation.
        for (i, text) in ["Once upon a time", "The cat", "Lily went to the park"].enumerated() {
            let single = try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", text, "--max-new-tokens", "10"])
            XCTAssertEqual(single.status, 0, single.summary)
            let cont = single.stdout.hasSuffix("\n") ? String(single.stdout.dropLast()) : single.stdout
            XCTAssertEqual(rows[2 * i]["continuation"] as? String, cont, text)
            XCTAssertEqual(rows[2 * i + 1]["continuation"] as? String, cont, text)
            let ids = try XCTUnwrap(rows[2 * i]["continuation_ids"] as? [Int])
            XCTAssertLessThanOrEqual(ids.count, 10)
            XCTAssertEqual(rows[2 * i]["stopped"] as? String, ids.count == 10 ? "length" : "eos")
        }
    }

    func testSampledOutputDoesNotDependOnBatchSize() throws {
        let bin = try storiesBin
        let dir = try Scratch.dir(self)
        let prompts = dir.appendingPathComponent("p.txt")
        try "Once upon a time\nThe dog\n".write(to: prompts, atomically: true, encoding: .utf8)
        var outputs: [String] = []
        for batch in ["1", "3", "256"] {
            let out = dir.appendingPathComponent("g\(batch).jsonl")
            let r = try WorkbenchCLI.run(["generate", "--model", bin, "--prompts", prompts.path, "--samples", "4", "--temperature", "1",
                                          "--top-p", "0.9", "--seed", "5", "--max-new-tokens", "12", "--max-batch", batch, "--out", out.path])
            XCTAssertEqual(r.status, 0, r.summary)
            outputs.append(try String(contentsOf: out, encoding: .utf8))
        }
        XCTAssertEqual(outputs[0], outputs[1]); XCTAssertEqual(outputs[0], outputs[2])
        let rows = try lines(dir.appendingPathComponent("g1.jsonl"))
        XCTAssertEqual(rows.count, 8)
        XCTAssertGreaterThan(Set(rows.map { $0["continuation"] as? String ?? "" }).count, 2, "samples differ")
    }

    func testFlagsAndInputSafety() throws {
        let bin = try storiesBin
        let dir = try Scratch.dir(self)
        let prompts = dir.appendingPathComponent("p.txt")
        let original = "Once upon a time\n"
        try original.write(to: prompts, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("g.jsonl").path
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "hi", "--prompts", prompts.path, "--out", out]),
                                      mentions: "--prompts")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompts", prompts.path]), mentions: "--out")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "hi", "--samples", "3"]), mentions: "--samples")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompts", prompts.path, "--out", out, "--samples", "0"]),
                                      mentions: "--samples")
        // The output may not be the prompt file (or the model).
        let r = try WorkbenchCLI.run(["generate", "--model", bin, "--prompts", prompts.path, "--out", prompts.path])
        XCTAssertNotEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stderr.contains("Error:"), r.summary)
        XCTAssertEqual(try String(contentsOf: prompts, encoding: .utf8), original)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
