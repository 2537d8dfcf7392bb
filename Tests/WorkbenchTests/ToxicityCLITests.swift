import Foundation
import XCTest
import Circuits
import TestSupport

// MARK: - `workbench toxicity` as a user (or another program, as its --scorer) runs it

final class ToxicityCLITests: XCTestCase {
    func run(_ args: [String], stdin: Data? = nil) throws -> WorkbenchRun {
        let r = try WorkbenchCLI.run(args, stdin: stdin, environment: Assets.root.map { ["WORKBENCH_ASSETS": $0.path] } ?? [:])
        XCTAssertFalse(r.crashed, r.summary)
        return r
    }

    /// stdin → stdout equals the model's own scores; the built-in command used as an external --scorer
    /// gives the same bytes (so it speaks the protocol it asks of others).
    func testBuiltinScoresAndIsItsOwnScorer() throws {
        let modelPath = try Assets.path(ProfanityModel.assetPath)
        let m = try ProfanityModel(path: modelPath)
        let texts = m.testVectors.map(\.text)
        let input = Data(ToxicityInput.jsonl(texts).utf8)
        let r = try run(["toxicity"], stdin: input)
        XCTAssertEqual(r.status, 0, r.summary)
        let got = r.stdoutLines.map { try! JSONDecoder().decode([String: Double].self, from: Data($0.utf8))["toxicity"]! }
        XCTAssertEqual(got.count, texts.count)
        for (g, t) in zip(got, m.testVectors) { XCTAssertEqual(g, t.pOffensive, accuracy: 1e-12) }
        let dir = try Scratch.dir(self)
        let inFile = dir.appendingPathComponent("in.jsonl"), outFile = dir.appendingPathComponent("out.jsonl")
        try input.write(to: inFile)
        let exe = try WorkbenchCLI.executable().path
        let viaScorer = try run(["toxicity", "--texts", inFile.path, "--out", outFile.path,
                                 "--scorer", "'\(exe)' toxicity --toxicity-model '\(modelPath)'"])
        XCTAssertEqual(viaScorer.status, 0, viaScorer.summary)
        XCTAssertEqual(try String(contentsOf: outFile, encoding: .utf8), r.stdout)
    }

    /// A scorer that dies midway: its scores are kept, the rest marked null with the reason, exit 1.
    func testFailingScorerKeepsPartialResults() throws {
        let input = Data(ToxicityInput.jsonl(["a", "b", "c"]).utf8)
        let r = try run(["toxicity", "--scorer", "printf '{\"toxicity\":0.75}\\n'; exit 2"], stdin: input)
        XCTAssertEqual(r.status, 1, r.summary)
        XCTAssertEqual(r.stdoutLines.count, 3)
        XCTAssertEqual(r.stdoutLines[0], "{\"toxicity\":0.75}")
        XCTAssertTrue(r.stdoutLines[1].contains("\"toxicity\":null") && r.stdoutLines[1].contains("after 1 of 3 texts"), r.stdout)
        XCTAssertTrue(r.stderr.contains("Error: scorer command") && r.stderr.contains("status 2"), r.stderr)
    }

    func testBadInputAndUsage() throws {
        let bad = try run(["toxicity"], stdin: Data("{\"text\": \"ok\"}\n[1]\n".utf8))
        XCTAssertEqual(bad.status, 1); XCTAssertTrue(bad.stderr.contains("<stdin>:2: not a JSON object"), bad.stderr)
        let both = try run(["toxicity", "--scorer", "cat", "--toxicity-model", "x.json"], stdin: Data())
        XCTAssertEqual(both.status, 64); XCTAssertTrue(both.stderr.contains("mutually exclusive"), both.stderr)
        let dir = try Scratch.dir(self)
        let f = dir.appendingPathComponent("t.jsonl").path
        try Data("{\"text\": \"ok\"}\n".utf8).write(to: URL(fileURLWithPath: f))
        let over = try run(["toxicity", "--texts", f, "--out", f])
        XCTAssertNotEqual(over.status, 0, over.summary)
        XCTAssertEqual(try String(contentsOfFile: f, encoding: .utf8), "{\"text\": \"ok\"}\n")
    }
}
