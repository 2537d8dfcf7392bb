import Foundation
import XCTest
import TestSupport

// MARK: - `perplexity --progress FILE`: a killed evaluation resumes to the same bits

/// stories260K on WikiText-2 (6 windows of 32): the run with a progress file equals the plain run; the file cut back to
/// 2 windows plus a torn line (a kill mid-write) resumes to the same perplexity and mean NLL, bit for bit, computing
/// only the 4 missing windows; a file of another run (other seqlen) is refused naming the field.
final class PerplexityResumeCLITests: XCTestCase {
    func testKilledEvaluationResumesBitIdentically() throws {
        let model = try Assets.path("stories260K/hf"), text = try Assets.path("eval/wikitext-2-raw/wiki.test.raw")
        let dir = try Scratch.dir(self)
        let progress = dir.appendingPathComponent("ppl.progress").path
        let common = ["perplexity", "--model", model, "--text", text, "--seqlen", "32", "--max-windows", "6", "--json"]
        func values(_ r: WorkbenchRun) throws -> [Double] {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
            return [try XCTUnwrap(o["perplexity"] as? Double), try XCTUnwrap(o["mean_nll"] as? Double), Double(try XCTUnwrap(o["scored"] as? Int))]
        }
        let plain = try WorkbenchCLI.runWithAssets(common)
        XCTAssertEqual(plain.status, 0, plain.summary)
        let first = try WorkbenchCLI.runWithAssets(common + ["--progress", progress])
        XCTAssertEqual(first.status, 0, first.summary)
        XCTAssertEqual(try values(first), try values(plain))
        var lines = try String(contentsOfFile: progress, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 7, "a header and 6 windows")

        // Killed after window 1, mid-way through writing window 2.
        lines = Array(lines.prefix(3)) + ["{\"count\":31,\"sum\":3.5,\"sum_bi"]
        try lines.joined(separator: "\n").write(toFile: progress, atomically: true, encoding: .utf8)
        let resumed = try WorkbenchCLI.runWithAssets(common + ["--progress", progress])
        XCTAssertEqual(resumed.status, 0, resumed.summary)
        XCTAssertTrue(resumed.stderr.contains("resumed at window 2"), resumed.stderr)
        XCTAssertEqual(try values(resumed), try values(plain), "resumed = uninterrupted, bit for bit")
        XCTAssertEqual(try String(contentsOfFile: progress, encoding: .utf8).split(separator: "\n").count, 7)

        let other = try WorkbenchCLI.runWithAssets(common.map { $0 == "32" ? "16" : $0 } + ["--progress", progress])
        XCTAssertEqual(other.status, 1, other.summary)
        XCTAssertTrue(other.stderr.contains("'seqlen' is 32 there, 16 now"), other.stderr)
    }
}
