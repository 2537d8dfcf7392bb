import Foundation
import XCTest
import Transformer
import TestSupport

/// `workbench attribute --shard K/N` + `workbench merge` end to end on stories260K: the merged file
/// is the single run's, bit for bit; usage errors exit 64, refused parts exit 1 and write nothing.
final class MergeCLITests: XCTestCase {
    func testShardsMergeIntoTheSingleRunFile() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let prompts = dir.appendingPathComponent("p.txt").path
        try ["Once upon a time", "The cat sat on the mat", "Lily had a red ball", "Tom went to the park",
             "She was very happy", "The sun was hot"].joined(separator: "\n").write(toFile: prompts, atomically: true, encoding: .utf8)
        func path(_ n: String) -> String { dir.appendingPathComponent(n).path }
        let single = try WorkbenchCLI.run(["attribute", "--model", model, "--prompts", prompts, "--out", path("single.safetensors"), "--quiet"])
        XCTAssertEqual(single.status, 0, single.summary)
        for k in 0..<3 {
            let r = try WorkbenchCLI.run(["attribute", "--model", model, "--prompts", prompts, "--shard", "\(k)/3",
                                          "--out", path("p\(k).safetensors"), "--quiet"])
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains("raw sums of shard \(k)/3, samples \(2 * k)-\(2 * k + 1) of 6"), r.stdout)
        }
        // A missing shard is named with its samples; nothing is written, no part removed.
        let missing = try WorkbenchCLI.run(["merge", path("p0.safetensors"), path("p2.safetensors"), "--out", path("m.safetensors")])
        XCTAssertEqual(missing.status, 1, missing.summary)
        XCTAssertTrue(missing.stderr.contains("Error: missing shard 1/3 (samples 2-3 of 6)"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("m.safetensors")))
        // The output may not be one of the parts.
        let over = try WorkbenchCLI.run(["merge", path("p0.safetensors"), path("p1.safetensors"), path("p2.safetensors"),
                                         "--out", path("p1.safetensors")])
        XCTAssertEqual(over.status, 1, over.summary)
        // Any order, kept parts; then the default removes them.
        let keep = try WorkbenchCLI.run(["merge", path("p2.safetensors"), path("p0.safetensors"), path("p1.safetensors"),
                                         "--out", path("m.safetensors"), "--keep-parts"])
        XCTAssertEqual(keep.status, 0, keep.summary)
        XCTAssertEqual(try TensorBytes.read(path("m.safetensors")), try TensorBytes.read(path("single.safetensors")))
        let again = try WorkbenchCLI.run(["merge", path("p1.safetensors"), path("p0.safetensors"), path("p2.safetensors"),
                                          "--out", path("m2.safetensors")])
        XCTAssertEqual(again.status, 0, again.summary)
        XCTAssertTrue(again.stdout.contains("parts removed"), again.stdout)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("m2.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("m.safetensors"))), "same bytes, header included")
        for k in 0..<3 { XCTAssertFalse(FileManager.default.fileExists(atPath: path("p\(k).safetensors"))) }
    }

    func testUsageErrors() throws {
        let model = try Assets.path("stories260K/hf")
        let prompts = try Scratch.dir(self).appendingPathComponent("p.txt").path
        try "Once upon a time\n".write(toFile: prompts, atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["attribute", "--model", model, "--prompts", prompts, "--shard", "2/2"], "K must be in 0..<N"),
            (["attribute", "--model", model, "--prompts", prompts, "--shard", "1"], "expected K/N"),
            (["attribute", "--model", model, "--method", "magnitude", "--shard", "0/2"], "magnitude scores need no samples"),
            (["merge", "--out", "x.safetensors"], "Missing parts"),
        ]
        for (args, message) in cases {
            let r = try WorkbenchCLI.run(args)
            XCTAssertEqual(r.status, 64, r.summary)
            XCTAssertTrue(r.stderr.contains(message) && r.stderr.contains("Usage: workbench \(args[0])"), r.stderr)
        }
    }
}
