import Foundation
import XCTest
import Circuits
import TestSupport

// MARK: - `workbench correct --normalize` as a user runs it (stories260K: real weights and tokenizer, fast)

final class CorrectCLITests: XCTestCase {
    func testNormalizeIsRecordedAndRefusedWhereItHasNoMeaning() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let g = dir.appendingPathComponent("general.txt").path, u = dir.appendingPathComponent("undesired.txt").path
        try "Once upon a time there was a girl\nThe dog ran to the park and\n".write(toFile: g, atomically: true, encoding: .utf8)
        try "The cat the cat the cat\nBob was sad. Bob was sad.\n".write(toFile: u, atomically: true, encoding: .utf8)
        let base = ["correct", "--model", model, "--general", g, "--undesired", u, "--max-new-tokens", "6", "--count", "3", "--quiet"]
        for (args, needle) in [(["--method", "random", "--normalize", "per-set"], "--normalize applies only"),
                               (["--method", "wanda", "--normalize", "per-token"], "'per-token' is invalid for '--normalize'")] {
            let r = try WorkbenchCLI.runWithAssets(base + args + ["--out", dir.appendingPathComponent("bad").path])
            XCTAssertEqual(r.status, 64, r.summary)
            XCTAssertTrue(r.stderr.contains("Error:") && r.stderr.contains(needle), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("bad").path), "a usage error writes nothing")
        let out = dir.appendingPathComponent("out").path
        let r = try WorkbenchCLI.runWithAssets(base + ["--method", "wanda", "--normalize", "per-set", "--out", out])
        XCTAssertEqual(r.status, 0, r.summary)
        let rec = try JSONDecoder().decode(CorrectionRecord.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/correction.json")))
        let n = try XCTUnwrap(rec.normalization)
        XCTAssertEqual(n.mode, "per-set")
        XCTAssertGreaterThan(n.generalTotal, 0)
        XCTAssertGreaterThan(n.undesiredTotal, 0)
        XCTAssertTrue(rec.ranking.contains("Σ|R̄_general|"), rec.ranking)
        // The removed neurons' parts are the normalised means: each below 1 in magnitude (a share of its set's mass).
        XCTAssertEqual(rec.sweep[0].removed.count, 3)
        XCTAssertTrue(rec.sweep[0].removed.allSatisfy { abs($0.general!) <= 1 && abs($0.undesired!) <= 1 })
        // Without the flag the record says null (Eq. 7 as published).
        let raw = dir.appendingPathComponent("raw").path
        XCTAssertEqual(try WorkbenchCLI.runWithAssets(base + ["--method", "wanda", "--out", raw]).status, 0)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: raw + "/correction.json"))) as? [String: Any]
        XCTAssertTrue(json?["normalization"] is NSNull, "\(String(describing: json?["normalization"]))")
    }
}
