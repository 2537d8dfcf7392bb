import Foundation
import XCTest
import Circuits
import TestSupport

// MARK: - `circuit … --shard K/N` parts, finished by `circuit … PART…` = one unsharded run

extension CircuitCLITests {
    /// tiny-llama-bias, LRP neurons, held-out set: the curve measured in 3 shards and finished from the parts writes
    /// the files of one run (curve.json/csv/svg, mask, graph.json; circuit.json but for its wall times). A missing shard,
    /// parts of other settings and --shard with --seeds are refused, naming what is wrong.
    func testShardedCurveFinishesToTheUnshardedFiles() throws {
        let dir = try Scratch.dir(self)
        func path(_ n: String) -> String { dir.appendingPathComponent(n).path }
        try writeTask(path("task.jsonl")); try writeTask(path("held.jsonl"))
        let model = try tinyWithTokenizer("tiny-llama-bias", in: dir)
        let common = ["circuit", "--model", model, "--prompts", path("task.jsonl"), "--heldout", path("held.jsonl"), "--method", "lrp",
                      "--granularity", "neurons", "--threshold", "0.8", "--quiet"]
        let whole = try run(common + ["--out", path("whole")])
        XCTAssertEqual(whole.status, 0, whole.err)
        for k in 0..<3 {
            let r = try run(common + ["--shard", "\(k)/3", "--out", path("part-\(k).json")])
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertTrue(r.out.contains("part: "), r.out)
        }
        let p1 = try CircuitCurvePart.read(path("part-1.json"))
        XCTAssertFalse(p1.points.isEmpty)
        XCTAssertEqual(p1.points.map(\.nominal), Array(p1.grid[try Shard(index: 1, count: 3).range(of: p1.grid.count)]))

        let missing = try run(common + ["--out", path("m1"), path("part-0.json"), path("part-2.json")])
        XCTAssertEqual(missing.status, 1, missing.err)
        XCTAssertTrue(missing.err.contains("missing shard 1/3") && missing.err.contains("grid points"), missing.err)
        let other = try run(common.map { $0 == "0.8" ? "0.7" : $0 } + ["--out", path("m2"), path("part-0.json"), path("part-1.json"), path("part-2.json")])
        XCTAssertEqual(other.status, 1, other.err)
        XCTAssertTrue(other.err.contains("disagree on 'settings'") && other.err.contains("this run"), other.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("m1")) || FileManager.default.fileExists(atPath: path("m2")))
        let seeds = try run(common + ["--seeds", "2", "--shard", "0/3", "--out", path("x.json")])
        XCTAssertEqual(seeds.status, 64, seeds.err)

        // Parts in any order.
        let merged = try run(common + ["--out", path("merged"), path("part-2.json"), path("part-0.json"), path("part-1.json")])
        XCTAssertEqual(merged.status, 0, merged.err)
        XCTAssertEqual(merged.out.replacingOccurrences(of: path("merged"), with: path("whole")), whole.out, "the same report on stdout")
        for f in ["curve.json", "curve.csv", "curve.svg", "mask.safetensors", "graph.json"] {
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("merged/" + f))), try Data(contentsOf: URL(fileURLWithPath: path("whole/" + f))), f)
        }
        func circuit(_ d: String) throws -> NSDictionary {
            var o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path(d + "/circuit.json")))) as? [String: Any])
            o["seconds"] = nil
            return o as NSDictionary
        }
        XCTAssertEqual(try circuit("merged"), try circuit("whole"))
    }
}
