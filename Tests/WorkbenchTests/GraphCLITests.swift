import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - `workbench graph-attribute` / `graph-eval` as a user runs them (tiny Llama with a byte tokenizer)

final class GraphCLITests: XCTestCase {
    /// The circuit CLI tests' tiny-model-with-tokenizer and task-file helpers.
    let kit = CircuitCLITests(name: "helpers", testClosure: { _ in })

    func testAttributeEvaluateAndRenderEndToEnd() throws {
        let dir = try Scratch.dir(self)
        let task = dir.appendingPathComponent("task.jsonl").path
        try kit.writeTask(task)
        let model = try kit.tinyWithTokenizer("tiny-llama-bias", in: dir)
        for method in ["eap", "eap-ig", "lrp"] {
            let out = dir.appendingPathComponent("g-\(method)").path
            let r = try kit.run(["graph-attribute", "--model", model, "--prompts", task, "--method", method, "--top", "10", "--out", out, "--quiet"])
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertTrue(r.out.contains("in_graph (top 10 by signed score, pruned)"), r.out)
            for f in ["graph.json", "graph.compact.json", "graph.html"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), "\(method): \(f)")
            }
            let sg = try GraphFile.read(out + "/graph.json", shape: GraphShape(nLayers: 2, nHeads: 4, dModel: 32))
            // in_graph = EAP-IG's apply_topn(10, absolute=False): the top 10 by signed score, pruned.
            let want = ScoredGraph.pruned(ScoredGraph.topN(sg.ranking(absolute: false), 10, count: sg.scores.count), sg.graph).edges
            XCTAssertEqual(sg.inGraph, want, method)                          // may be empty: top edges with no in-graph input
            XCTAssertLessThanOrEqual(sg.inGraphCount, 10, method)
            XCTAssertTrue(r.out.contains("; \(sg.inGraphCount) edges in_graph"), r.out)
            let compact = try GraphFile.read(out + "/graph.compact.json", shape: sg.graph.shape)
            XCTAssertEqual(compact.inGraph, sg.inGraph)
            let e = try kit.run(["graph-eval", "--model", model, "--prompts", task, "--graph", out + "/graph.json", "--json",
                                 "--html", out + "/eval.html", "--quiet"])
            XCTAssertEqual(e.status, 0, e.err)
            let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as? [String: Any])
            let curve = try XCTUnwrap(j["curve_signed"] as? [[String: Any]])
            let lastF = try XCTUnwrap(curve.last?["f"] as? Double)
            XCTAssertEqual(lastF, 1, accuracy: 1e-9, "f(100 %) = 1")
            let inGraph = try XCTUnwrap(j["in_graph"] as? [String: Any])
            XCTAssertEqual(inGraph["edges"] as? Int, sg.inGraphCount)
            XCTAssertEqual(inGraph["edges_after_prune"] as? Int, sg.inGraphCount, "already pruned")
            XCTAssertEqual(curve.map { $0["edges"] as? Int }, FaithfulnessCurve.fractions.map { Int($0 * Double(sg.graph.edgeCount)) })
            XCTAssertNotNil(j["cpr"] as? Double); XCTAssertNotNil(j["cmd"] as? Double)
            if method == "lrp" {
                try HeadlessBrowser.check(URL(fileURLWithPath: out + "/graph.html"))
                try HeadlessBrowser.check(URL(fileURLWithPath: out + "/eval.html"))
            }
        }
        // Text output and the other interventions.
        for iv in ["zero", "mean"] {
            let e = try kit.run(["graph-eval", "--model", model, "--prompts", task, "--graph", dir.appendingPathComponent("g-eap/graph.json").path,
                                 "--intervention", iv, "--quiet"])
            XCTAssertEqual(e.status, 0, e.err)
            XCTAssertTrue(e.out.contains("CPR (∫ f, signed)"), e.out)
        }
    }

    func testBadInputNamesTheItem() throws {
        let dir = try Scratch.dir(self)
        let task = dir.appendingPathComponent("task.jsonl").path, noCorr = dir.appendingPathComponent("nocorr.jsonl").path
        try kit.writeTask(task); try kit.writeTask(noCorr, corrupted: false)
        let model = try kit.tinyWithTokenizer("tiny-llama-bias", in: dir)
        let steps = try WorkbenchCLI.run(["graph-attribute", "--model", model, "--prompts", task, "--method", "eap", "--steps", "3",
                                          "--out", dir.appendingPathComponent("x").path])
        WorkbenchCLI.assertUsageError(steps, mentions: "--steps")
        let top = try WorkbenchCLI.run(["graph-attribute", "--model", model, "--prompts", task, "--top", "1.5x",
                                        "--out", dir.appendingPathComponent("x").path])
        WorkbenchCLI.assertUsageError(top, mentions: "--top")
        let nc = try WorkbenchCLI.run(["graph-attribute", "--model", model, "--prompts", noCorr, "--out", dir.appendingPathComponent("y").path])
        WorkbenchCLI.assertRuntimeError(nc, mentions: ["corrupted", "nocorr.jsonl:1"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("y").path), "nothing written")
        let other = dir.appendingPathComponent("other.json").path
        try "{\"cfg\": {\"n_layers\": 12, \"n_heads\": 12, \"parallel_attn_mlp\": false, \"d_model\": 768}, \"nodes\": {}, \"edges\": {}}"
            .write(toFile: other, atomically: true, encoding: .utf8)
        let shape = try WorkbenchCLI.run(["graph-eval", "--model", model, "--prompts", task, "--graph", other])
        WorkbenchCLI.assertRuntimeError(shape, mentions: ["cfg.n_layers", "12", "another model"])
        let bad = dir.appendingPathComponent("bad.json").path
        try "{\"cfg\": {\"n_layers\": 2, \"n_heads\": 4}, \"nodes\": {}, \"edges\": {\"a1.h0->a0.h0<q>\": {\"score\": 1}}}"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let edge = try WorkbenchCLI.run(["graph-eval", "--model", model, "--prompts", task, "--graph", bad])
        WorkbenchCLI.assertRuntimeError(edge, mentions: ["a1.h0->a0.h0<q>"])
    }
}
