import Foundation
import XCTest
import Circuits
import TestSupport

// MARK: - `workbench evaluate --sweep … --shard K/N` + `workbench merge` = one `evaluate --sweep` run

/// stories260K, a 2-count random correction sweep (3 points: baseline, count 4, count 40). The merged report
/// equals the unsharded one field for field, except its timestamp and the wall times (per model and of its perplexity).
final class EvaluateShardCLITests: XCTestCase {
    let small = ["--samples", "3", "--sample-tokens", "6", "--greedy-tokens", "6", "--repetition-tokens", "12",
                 "--max-windows", "1", "--seqlen", "64", "--quiet"]

    func run(_ args: [String]) throws -> WorkbenchRun { try WorkbenchCLI.runWithAssets(args) }

    /// A report with what legitimately differs between runs (time) blanked.
    func timeless(_ url: URL) throws -> EvaluationReport {
        var r = try JSONDecoder().decode(EvaluationReport.self, from: Data(contentsOf: url))
        r.timestamp = ""
        r.baseline?.seconds = 0
        r.baseline?.perplexity?.seconds = 0
        for i in r.models.indices { r.models[i].seconds = 0; r.models[i].perplexity?.seconds = 0 }
        return r
    }

    func testShardedSweepMergesToTheUnshardedReport() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        func path(_ n: String) -> String { dir.appendingPathComponent(n).path }
        try Data("{\"prompt\": \"Once upon a time\"}\n{\"text\": \"The dog was\"}\n{\"prompt\": \"She said\"}\n".utf8)
            .write(to: URL(fileURLWithPath: path("prompts.jsonl")))
        let c = try run(["correct", "--model", model, "--general", path("prompts.jsonl"), "--undesired", path("prompts.jsonl"),
                         "--method", "random", "--count", "4,40", "--max-new-tokens", "4", "--out", path("sweep"), "--quiet"])
        XCTAssertEqual(c.status, 0, c.summary)
        let common = ["evaluate", "--sweep", path("sweep/correction.json"), "--prompts", path("prompts.jsonl")] + small
        let whole = try run(common + ["--out", path("whole.json")])
        XCTAssertEqual(whole.status, 0, whole.summary)

        // 2 shards: points 0-0 (baseline) and 1-2 (count 4, count 40); given to merge in reverse order.
        for k in 0..<2 {
            let r = try run(common + ["--shard", "\(k)/2", "--out", path("part-\(k).json")])
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains("part: "), r.stdout)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("part-0.html")), "a part has no page")
        let part1 = try EvaluationPart.read(path("part-1.json"))
        XCTAssertEqual(part1.pointRange, "1-2")
        XCTAssertEqual(part1.results.map(\.count), [4, 40])

        // Bad sets, each named: a missing shard with its points, a shard given twice, parts of other settings.
        let missing = try run(["merge", path("part-1.json"), "--out", path("m.json"), "--keep-parts"])
        XCTAssertEqual(missing.status, 1, missing.summary)
        XCTAssertTrue(missing.stderr.contains("missing shard 0/2") && missing.stderr.contains("points 0-0 (baseline)"), missing.stderr)
        let twice = try run(["merge", path("part-1.json"), path("part-1.json"), "--out", path("m.json"), "--keep-parts"])
        XCTAssertEqual(twice.status, 1, twice.summary)
        XCTAssertTrue(twice.stderr.contains("shard 1/2 is given twice"), twice.stderr)
        let other = try run(common.filter { $0 != "--quiet" } + ["--seed", "7", "--quiet", "--shard", "0/2", "--out", path("seed7-0.json")])
        XCTAssertEqual(other.status, 0, other.summary)
        let mixed = try run(["merge", path("seed7-0.json"), path("part-1.json"), "--out", path("m.json"), "--keep-parts"])
        XCTAssertEqual(mixed.status, 1, mixed.summary)
        XCTAssertTrue(mixed.stderr.contains("parts disagree on 'report.settings'"), mixed.stderr)
        let report = try run(["merge", path("whole.json"), path("part-1.json"), "--out", path("m.json"), "--keep-parts"])
        XCTAssertEqual(report.status, 1, report.summary)
        XCTAssertTrue(report.stderr.contains("whole.json is not a workbench-evaluate-part"), report.stderr)
        let kinds = try run(["merge", path("part-0.json"), path("p.safetensors"), "--out", path("m.json")])
        XCTAssertEqual(kinds.status, 64, kinds.summary)
        XCTAssertTrue(kinds.stderr.contains("cannot be merged together"), kinds.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("m.json")), "a refused merge writes nothing")

        let merged = try run(["merge", path("part-1.json"), path("part-0.json"), "--out", path("merged.json")])
        XCTAssertEqual(merged.status, 0, merged.summary)
        XCTAssertEqual(try timeless(URL(fileURLWithPath: path("merged.json"))), try timeless(URL(fileURLWithPath: path("whole.json"))),
                       "2 shards merged = one run")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("part-0.json")), "parts removed after the merge (no --keep-parts)")
        try HeadlessBrowser.check(URL(fileURLWithPath: path("merged.html")))

        // 3 shards (one point each) give the same report too.
        for k in 0..<3 {
            let r = try run(common + ["--shard", "\(k)/3", "--out", path("p3-\(k).json")])
            XCTAssertEqual(r.status, 0, r.summary)
        }
        let m3 = try run(["merge", path("p3-0.json"), path("p3-1.json"), path("p3-2.json"), "--out", path("merged3.json")])
        XCTAssertEqual(m3.status, 0, m3.summary)
        XCTAssertEqual(try timeless(URL(fileURLWithPath: path("merged3.json"))), try timeless(URL(fileURLWithPath: path("whole.json"))))

        // More shards than points is a usage error.
        let tooMany = try run(common + ["--shard", "0/4", "--out", path("x.json")])
        XCTAssertEqual(tooMany.status, 64, tooMany.summary)
        XCTAssertTrue(tooMany.stderr.contains("3 points"), tooMany.stderr)
    }
}
