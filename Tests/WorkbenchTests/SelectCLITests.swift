import Circuits
import Foundation
import TestSupport
import Transformer
import XCTest

// MARK: - `workbench select` as a user runs it (stories260K: real weights and tokenizer, fast)

final class SelectCLITests: XCTestCase {
    func run(_ args: [String]) throws -> WorkbenchRun {
        try WorkbenchCLI.runWithAssets(args)
    }

    /// Lines with extra fields, a blank line, and prompts that loop to different degrees.
    func promptFile(_ dir: URL) throws -> String {
        let p = dir.appendingPathComponent("prompts.jsonl")
        try Data(("{\"prompt\": \"Once upon a time\", \"id\": 1}\n\n{\"text\": \"The dog was\", \"id\": 2}\n"
                  + "{\"prompt\": \"She said\", \"id\": 3}\n{\"prompt\": \"Tom and Tom and Tom and\", \"id\": 4}\n").utf8).write(to: p)
        return p.path
    }

    struct Value: Decodable { let line: Int; let rur: Double?; let kept: Bool; let continuation: String }

    /// RUR of each prompt's greedy continuation equals RepetitionMetrics.rur of `Model.generate`'s greedy
    /// tokens (stop at EOS/BOS, 30 tokens); the prompts kept are exactly those strictly below the cut,
    /// copied verbatim (extra fields kept) in file order.
    func testRURValuesAndVerbatimLines() throws {
        let modelPath = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let prompts = try promptFile(dir)
        let lines = try String(contentsOfFile: prompts, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let all = dir.appendingPathComponent("all.jsonl").path, values = dir.appendingPathComponent("values.jsonl").path
        let r = try run(["select", "--model", modelPath, "--prompts", prompts, "--metric", "rur", "--below", "1.01", "--tokens", "30",
                         "--out", all, "--values", values, "--quiet"])
        XCTAssertEqual(r.status, 0, r.summary)
        let got = try String(contentsOfFile: values, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(Value.self, from: Data($0.utf8))
        }
        XCTAssertEqual(got.map(\.line), [1, 3, 4, 5])
        // The independent reference: one greedy stream at a time.
        let m = try ModelLoader.load(modelPath, needTokenizer: true)
        let tok = try m.requireTokenizer()
        let stop = Set([tok.eosId ?? m.model.config.eosTokenId, tok.bosId ?? m.model.config.bosTokenId].compactMap { $0 })
        let texts = ["Once upon a time", "The dog was", "She said", "Tom and Tom and Tom and"]
        var want: [Double] = []
        for t in texts {
            var greedy = Sampler(temperature: 0, topP: 1, seed: 0)
            let c = try m.model.generate(prompt: try tok.encode(t), maxNewTokens: 30, sampler: &greedy, stop: stop).tokens
            want.append(try XCTUnwrap(RepetitionMetrics.rur(c)))
        }
        for (g, w) in zip(got, want) { XCTAssertEqual(try XCTUnwrap(g.rur), w, accuracy: 1e-12) }
        XCTAssertTrue(got.allSatisfy(\.kept))
        XCTAssertEqual(try String(contentsOfFile: all, encoding: .utf8), [lines[0], lines[2], lines[3], lines[4]].joined(separator: "\n") + "\n")
        // A cut between the values keeps exactly those below it.
        let sorted = want.sorted()
        guard let i = sorted.indices.dropFirst().first(where: { sorted[$0] > sorted[$0 - 1] }) else {
            throw XCTSkip("all four continuations have the same RUR \(sorted[0]): no cut separates them")
        }
        let cut = (sorted[i - 1] + sorted[i]) / 2
        let some = dir.appendingPathComponent("some.jsonl").path
        let r2 = try run(["select", "--model", modelPath, "--prompts", prompts, "--metric", "rur", "--below", "\(cut)", "--tokens", "30",
                          "--out", some, "--quiet"])
        XCTAssertEqual(r2.status, 0, r2.summary)
        let keptLines = [1, 3, 4, 5].enumerated().filter { want[$0.offset] < cut }.map { lines[$0.element - 1] }
        XCTAssertEqual(try String(contentsOfFile: some, encoding: .utf8), keptLines.joined(separator: "\n") + "\n")
        XCTAssertTrue(r2.stdout.contains("kept: \(keptLines.count) of 4 prompts"), r2.stdout)
    }

    /// Toxicity through an external scorer; nothing kept is an error (exit 1) that writes nothing.
    func testToxicityScorerAndNoneKept() throws {
        let modelPath = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let prompts = try promptFile(dir)
        let out = dir.appendingPathComponent("toxic.jsonl").path
        let scorer = "while read -r line; do echo '{\"toxicity\": 0.7}'; done"
        let r = try run(["select", "--model", modelPath, "--prompts", prompts, "--metric", "toxicity", "--above", "0.5", "--tokens", "4",
                         "--scorer", scorer, "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").count, 4)
        try FileManager.default.removeItem(atPath: out)
        let none = try run(["select", "--model", modelPath, "--prompts", prompts, "--metric", "toxicity", "--above", "0.8", "--tokens", "4",
                            "--scorer", scorer, "--out", out, "--quiet"])
        XCTAssertEqual(none.status, 1, none.summary)
        XCTAssertTrue(none.stderr.contains("Error: no prompt of 4 has toxicity > 0.8 (values range from 0.7 to 0.7); nothing written"), none.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    func testUsageErrors() throws {
        let modelPath = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let prompts = try promptFile(dir)
        let before = try Data(contentsOf: URL(fileURLWithPath: prompts))
        let out = dir.appendingPathComponent("o.jsonl").path
        let base = ["select", "--model", modelPath, "--prompts", prompts, "--metric", "rur", "--quiet"]
        for (extra, message) in [(["--out", out], "'--below <x>' or '--above <x>'"),
                                 (["--below", "0.3", "--above", "0.1", "--out", out], "--below and --above are mutually exclusive"),
                                 (["--below", "0.3", "--scorer", "cat", "--out", out], "apply to --metric toxicity only")] {
            let r = try run(base + extra)
            XCTAssertEqual(r.status, 64, r.summary)
            XCTAssertTrue(r.stderr.hasPrefix("Error:") && r.stderr.contains(message), r.stderr)
        }
        // The output may not be the prompt file (refused before the model is even loaded).
        let same = try run(base + ["--below", "0.3", "--out", prompts])
        XCTAssertEqual(same.status, 1, same.summary)
        XCTAssertTrue(same.stderr.contains("is also an input of this run"), same.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: prompts)), before, "the prompt file is never written")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
