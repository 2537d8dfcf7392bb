import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - `workbench tasks …` / `workbench task-eval` as a user runs them

final class TaskCLITests: XCTestCase {
    /// Runs workbench with the shared assets' location passed on (the IOI templates are found through it).
    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let r = try WorkbenchCLI.runWithAssets(args)
        return (r.status, r.stdout, r.stderr)
    }

    func testUsageErrorsExit64() throws {
        let model = try Fixtures.path("tiny-opt")
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("t.jsonl").path
        for (args, needle) in [(["tasks"], "Missing tasks kind"),
                               (["tasks", "sums", "--model", model], "Unknown tasks 'sums'"),
                               (["tasks", "ioi", "--model", model], "--out"),
                               (["tasks", "ioi", "--model", model, "--out", out, "--seed", "40"], "must be in 0..<32"),
                               (["tasks", "ioi", "--model", model, "--out", out, "--templates", "CABA"], "unknown family 'CABA'"),
                               (["tasks", "ioi", "--model", model, "--out", dir.path], "not a regular file"),
                               (["tasks", "greater-than", "--model", model, "--out", out, "--n", "0"], "at least 1"),
                               (["task-eval", "--model", model], "--prompts"),
                               (["task-eval", "--model", model, "--prompts", out, "--ablation", "mean"], "--ablation needs --ablate"),
                               (["task-eval", "--model", model, "--prompts", out, "--ablate", "weights", "--ablation", "mean"], "not defined at --granularity weights"),
                               (["task-eval", "--model", model, "--prompts", out, "--ablate", "layers"], "invalid for '--ablate'")] {
            let r = try run(args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(needle), "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains("Usage:"), r.err)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testRuntimeErrorsExit1NameTheLine() throws {
        let stories = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("ioi.jsonl").path
        // stories260K's 512-piece vocabulary has almost no names as single tokens.
        let r = try run(["tasks", "ioi", "--model", stories, "--out", out])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("are single tokens in this tokenizer"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let noAnswer = dir.appendingPathComponent("a.jsonl").path
        try "{\"text\": \"Once upon a time\", \"answer_id\": 5}\n{\"text\": \"Once upon\"}\n".write(toFile: noAnswer, atomically: true, encoding: .utf8)
        let a = try run(["task-eval", "--model", stories, "--prompts", noAnswer])
        XCTAssertEqual(a.status, 1)
        XCTAssertTrue(a.err.contains("a.jsonl:2: missing field 'answer'"), a.err)
        let mismatch = dir.appendingPathComponent("m.csv").path
        try "clean,corrupted,correct_idx,incorrect_idx\nOnce upon a time,Once upon a time there was,5,6\n".write(toFile: mismatch, atomically: true, encoding: .utf8)
        let m = try run(["task-eval", "--model", stories, "--prompts", mismatch])
        XCTAssertEqual(m.status, 1)
        XCTAssertTrue(m.err.contains("m.csv:2: the clean prompt has"), m.err)
    }

    /// Every ablation end on a real tokenizer model: the ablated line is printed and differs from the clean one.
    func testAblatedEndOnStories() throws {
        let stories = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let tasks = dir.appendingPathComponent("t.jsonl").path
        try ([#"{"text": "Once upon a time, there was a little girl named", "answer_id": 400, "distractor_id": 401, "corrupted": "Once upon a time, there was a little boy named"}"#,
              #"{"text": "Lily and Ben went to the park. Lily gave the ball to", "answer_id": 402, "distractor_id": 403, "corrupted": "Lily and Ben went to the park. Lily gave the cat to"}"#]
            .joined(separator: "\n") + "\n").write(toFile: tasks, atomically: true, encoding: .utf8)
        for (g, a) in [("heads", "zero"), ("neurons", "mean"), ("heads", "patch"), ("weights", "zero")] {
            let r = try run(["task-eval", "--model", stories, "--prompts", tasks, "--ablate", g, "--ablation", a, "--json"])
            XCTAssertEqual(r.status, 0, "\(g) \(a): \(r.err)")
            let j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
            let clean = try XCTUnwrap(j["clean"] as? [String: Any]), ablated = try XCTUnwrap(j["ablated"] as? [String: Any])
            XCTAssertNotEqual(clean["logit_diff"] as? Double, ablated["logit_diff"] as? Double, "\(g) \(a)")
            XCTAssertGreaterThan(try XCTUnwrap(ablated["kl_sum_over_vocab"] as? Double), 0, "\(g) \(a)")
            XCTAssertEqual(ablated["what"] as? String, "every \(g.dropLast()) \(a)-ablated")
        }
    }

    /// The whole path on SmolLM2: generate, evaluate, JSON (determinism per seed is covered with GPT-2's tokenizer).
    func testIOIOnSmolLM2() throws {
        let model = try Assets.smolLM2()
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("ioi.jsonl").path
        let g = try run(["tasks", "ioi", "--model", model, "--n", "16", "--seed", "1", "--out", out])
        XCTAssertEqual(g.status, 0, g.err)
        XCTAssertTrue(g.err.contains("names: 81 of 99 are single tokens with a leading space; dropped 18"), g.err)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").count, 16)
        let e = try run(["task-eval", "--model", model, "--prompts", out, "--json"])
        XCTAssertEqual(e.status, 0, e.err)
        let j = try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as! [String: Any]
        XCTAssertEqual(j["headline_metric"] as? String, "logit-diff")
        let clean = j["clean"] as! [String: Any], corrupted = j["corrupted"] as! [String: Any]
        XCTAssertEqual(clean["n"] as? Int, 16)
        // The issue's reference: ≈ 4.9 nats, ≈ 96 % accuracy; the ABC counterfactual near 0.
        XCTAssertGreaterThan(clean["logit_diff"] as! Double, 3)
        XCTAssertGreaterThan(clean["accuracy"] as! Double, 0.8)
        XCTAssertLessThan(abs(corrupted["logit_diff"] as! Double), 1.5)
    }
}
