import Foundation
import XCTest
import Circuits
import Transformer
import TestSupport

// MARK: - `workbench faults` as a user runs it (stories260K: real weights and tokenizer, fast)

final class FaultsCLITests: XCTestCase {
    func run(_ args: [String]) throws -> WorkbenchRun {
        try WorkbenchCLI.runWithAssets(args)
    }

    func textFile(_ dir: URL) throws -> String {
        let p = dir.appendingPathComponent("text.raw")
        let lines = (0..<40).map { "Once upon a time there was a little girl named Lily number \($0). She liked to play in the park with her dog." }
        try Data(lines.joined(separator: "\n").utf8).write(to: p)
        return p.path
    }

    /// F32 storage: dense = `workbench perplexity` on the same windows; one row per (BER, criterion) with the
    /// trial values; the same command gives the same trials; every criterion protects the same bits; the page renders.
    func testReportIsDeterministicAndPageRenders() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self), text = try textFile(dir)
        let out = dir.appendingPathComponent("faults.json"), out2 = dir.appendingPathComponent("again.json")
        let common = ["faults", "--model", model, "--ber", "1e-5,1e-3", "--trials", "3", "--seed", "4", "--storage", "f32",
                      "--criteria", "none,magnitude,random", "--protect-fraction", "0.05", "--text", text, "--windows", "1", "--seqlen", "64"]
        let r = try run(common + ["--out", out.path])
        XCTAssertEqual(r.status, 0, r.summary)
        let rep = try JSONDecoder().decode(FaultReport.self, from: Data(contentsOf: out))
        XCTAssertEqual(rep.rows.count, 6)
        XCTAssertEqual(rep.rows.map(\.criterion), ["none", "magnitude", "random", "none", "magnitude", "random"])
        let p = try run(["perplexity", "--model", model, "--text", text, "--seqlen", "64", "--max-windows", "1", "--json"])
        let pj = try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(rep.dense, pj["perplexity"] as! Double, accuracy: 1e-9, "f32 storage is the model itself")
        XCTAssertEqual(rep.failThreshold, 2 * rep.dense)
        for row in rep.rows {
            XCTAssertEqual(row.values.count, 3)
            XCTAssertEqual(row.failedFraction, Double(row.values.filter { $0 == nil || $0! > 2 * rep.dense }.count) / 3, accuracy: 1e-12)
            if row.criterion == "none" { XCTAssertEqual(row.protectedBits, 0); XCTAssertEqual(row.reliabilityGain, 0) }
            else { XCTAssertEqual(row.protectedWeights, rep.storedWeights / 20); XCTAssertEqual(row.overhead, 0.1, accuracy: 1e-4) }
            // Expected flips per trial ≈ BER × bits (loose: 3 trials).
            XCTAssertEqual(row.meanPrimaryFlips, row.ber * Double(rep.storedBits), accuracy: 6 * (row.ber * Double(rep.storedBits)).squareRoot() + 1)
            XCTAssertLessThanOrEqual(row.meanReadFlips, row.meanPrimaryFlips + 1e-9)
        }
        // Paired trials: at BER 1e-3 the unprotected model sees about 100 flips a trial.
        XCTAssertGreaterThan(rep.rows[3].meanPrimaryFlips, 20)
        let again = try run(common + ["--out", out2.path])
        XCTAssertEqual(again.status, 0, again.summary)
        let rep2 = try JSONDecoder().decode(FaultReport.self, from: Data(contentsOf: out2))
        XCTAssertEqual(rep2.rows.map(\.values), rep.rows.map(\.values), "same seed, same trials")
        let page = dir.appendingPathComponent("faults.html")
        let html = try String(contentsOf: page, encoding: .utf8)
        XCTAssertTrue(html.contains("majority vote") && html.contains("magnitude") && html.contains("<svg"))
        try HeadlessBrowser.check(page)
        // --render re-draws the page from the JSON report alone: the same bytes as the run wrote.
        try FileManager.default.removeItem(at: page)
        let rendered = try run(["faults", "--render", out.path])
        XCTAssertEqual(rendered.status, 0, rendered.summary)
        XCTAssertEqual(try String(contentsOf: page, encoding: .utf8), html)
        for (args, mention) in [(["--render", out.path, "--model", model], "--model"), (["--render", text], ".json"),
                                (["--render", dir.appendingPathComponent("missing.json").path], "missing.json")] {
            let bad = try run(["faults"] + args)
            XCTAssertNotEqual(bad.status, 0, bad.summary)
            XCTAssertTrue(bad.stderr.contains(mention), bad.stderr)
        }
        let notReport = dir.appendingPathComponent("other.json")
        try Data("{\"rows\": 3}".utf8).write(to: notReport)
        let bad = try run(["faults", "--render", notReport.path])
        XCTAssertEqual(bad.status, 64, bad.summary)
        XCTAssertTrue(bad.stderr.contains("not a report written by `workbench faults`"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("other.html").path), "nothing written")
    }

    /// --metric task: accuracy (answer id above distractor id) on a small task file; dense = `task-eval`'s accuracy;
    /// failure = accuracy below --floor.
    func testTaskMetric() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self), task = dir.appendingPathComponent("task.jsonl")
        let lines = (0..<8).map { i in #"{"text": "Once upon a time, there was a little girl named Lily \#(i)", "answer_id": \#(400 + i), "distractor_id": \#(300 + i)}"# }
        try lines.joined(separator: "\n").write(to: task, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("t.json")
        let r = try run(["faults", "--model", model, "--metric", "task", "--prompts", task.path, "--floor", "0.4", "--ber", "1e-3",
                         "--trials", "2", "--criteria", "none,magnitude", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.summary)
        let rep = try JSONDecoder().decode(FaultReport.self, from: Data(contentsOf: out))
        XCTAssertEqual(rep.metric, "accuracy"); XCTAssertFalse(rep.lowerIsBetter); XCTAssertEqual(rep.failThreshold, 0.4)
        let te = try run(["task-eval", "--model", model, "--prompts", task.path, "--json"])
        let tj = try JSONSerialization.jsonObject(with: Data(te.stdout.utf8)) as! [String: Any]
        let acc = try XCTUnwrap(((tj["clean"] as? [String: Any])?["accuracy"] as? Double) ?? (tj["accuracy"] as? Double), te.stdout)
        XCTAssertEqual(rep.dense, acc, accuracy: 1e-12)
        for row in rep.rows {
            for v in row.values { XCTAssertTrue(v.map { $0 >= 0 && $0 <= 1 } ?? true) }
            XCTAssertEqual(row.failedFraction, Double(row.values.filter { $0 == nil || $0! < 0.4 }.count) / 2, accuracy: 1e-12)
        }
        try HeadlessBrowser.check(dir.appendingPathComponent("t.html"))
    }

    /// Bad BER, fraction, criteria and score file: clear errors, nothing written.
    func testBadInputWritesNothing() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self), text = try textFile(dir)
        let out = dir.appendingPathComponent("r.json"), html = dir.appendingPathComponent("r.html")
        let base = ["faults", "--model", model, "--text", text, "--windows", "1", "--seqlen", "32", "--trials", "1", "--out", out.path]
        for (args, mention) in [(["--ber", "0"], "(0, 1)"), (["--ber", "1"], "(0, 1)"), (["--ber", "1e-5,2"], "(0, 1)"), (["--ber", "x"], "--ber"),
                                (["--protect-fraction", "1.5"], "--protect-fraction"), (["--protect-fraction", "-0.1"], "--protect-fraction"),
                                (["--criteria", "scores"], "--protect"), (["--criteria", "lrp"], "--criteria"),
                                (["--metric", "task"], "--prompts"), (["--storage", "q2_k"], "--storage")] {
            let r = try run(base + args)
            WorkbenchCLI.assertUsageError(r, mentions: mention)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path)); XCTAssertFalse(FileManager.default.fileExists(atPath: html.path))
        }
        // A score file for another model: a runtime error naming the tensor.
        let scores = dir.appendingPathComponent("other.safetensors").path
        let name = "model.layers.0.self_attn.q_proj.weight"
        try Safetensors.write([SafetensorsRecord(name: name, tensor: Tensor(shape: [3, 5], data: [Float](repeating: 1, count: 15)))], to: scores)
        let r = try run(base + ["--ber", "1e-4", "--protect", scores])
        WorkbenchCLI.assertRuntimeError(r, mentions: [name])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path)); XCTAssertFalse(FileManager.default.fileExists(atPath: html.path))
        // Q8_0 needs rows of whole 32-weight blocks (stories260K's 172-wide down_proj is not).
        let q = try run(base + ["--ber", "1e-4", "--storage", "q8_0"])
        WorkbenchCLI.assertRuntimeError(q, mentions: ["down_proj", "172"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
    }
}
