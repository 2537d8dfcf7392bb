import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - `workbench circuit` as a user runs it
//
// The tiny fixtures have no tokenizer; a scratch copy gets a byte-level
// tokenizer.json with one token per byte (ids 0…255 = the fixture's
// vocabulary, no merges), so task files with text work end to end.

final class CircuitCLITests: XCTestCase {
    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let r = try WorkbenchCLI.runWithAssets(args)
        return (r.status, r.stdout, r.stderr)
    }

    /// A copy of a tiny fixture with a one-token-per-byte tokenizer (GPT-2's byte → unicode mapping).
    func tinyWithTokenizer(_ name: String, in dir: URL) throws -> String {
        let src = URL(fileURLWithPath: try Fixtures.path(name)), dst = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dst.appendingPathComponent(f))
        }
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var chars = [Int](repeating: 0, count: 256), n = 0
        for b in printable { chars[b] = b }
        for b in 0..<256 where !printable.contains(b) { chars[b] = 256 + n; n += 1; printable.append(b) }
        let tokens = chars.map { String(UnicodeScalar(UInt32($0))!) }
        try CheckpointWriter.tokenizerJSON(tokens: tokens, merges: [], tokenTypes: [Int32](repeating: 1, count: 256), pre: nil)
            .write(to: dst.appendingPathComponent("tokenizer.json"))
        return dst.path
    }

    func writeTask(_ path: String, corrupted: Bool = true) throws {
        let lines = (0..<6).map { i -> String in
            let t = ["Anna met Bob at the park. Bob gave a rose to", "Carl and Dina went home. Dina handed a cup to",
                     "Eve saw Finn in town. Finn sent a note to"][i % 3] + String(repeating: " x", count: i / 3)
            let c = t.replacingOccurrences(of: "a", with: "o")
            return "{\"text\": \"\(t)\", \"answer_id\": \(65 + i), \"distractor_id\": \(97 + i)" + (corrupted ? ", \"corrupted\": \"\(c)\"" : "") + "}"
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// The whole path on both tiny families: the crossing found, its f re-read from the files, the mask matching it.
    func testBisectionCrossingEndToEnd() throws {
        let dir = try Scratch.dir(self)
        let task = dir.appendingPathComponent("task.jsonl").path, held = dir.appendingPathComponent("held.jsonl").path
        try writeTask(task); try writeTask(held)
        for name in ["tiny-opt", "tiny-llama-bias"] {
            let model = try tinyWithTokenizer(name, in: dir)
            for (method, g, ablation) in [("lrp", "neurons", "zero"), ("random", "heads", "mean"), ("wanda", "weights", "zero"), ("gradient", "neurons", "patch"),
                                          ("activation", "neurons", "mean")] {
                let out = dir.appendingPathComponent("\(name)-\(method)-\(g)").path
                let r = try run(["circuit", "--model", model, "--prompts", task, "--heldout", held, "--method", method,
                                 "--granularity", g, "--ablation", ablation, "--threshold", "0.8", "--out", out, "--quiet"])
                let tag = "\(name) \(method) \(g) \(ablation)"
                XCTAssertEqual(r.status, 0, "\(tag): \(r.err)")
                XCTAssertTrue(r.out.contains("circuit: "), r.out)
                let cj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/circuit.json"))) as? [String: Any])
                let c = try XCTUnwrap(cj["circuit"] as? [String: Any])
                let kept = try XCTUnwrap(c["kept"] as? Int), fRef = try XCTUnwrap(c["f_reference"] as? Double)
                XCTAssertGreaterThanOrEqual(fRef, 0.8, tag)
                XCTAssertNotNil(c["f_heldout"] as? Double, tag)
                let curve = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/curve.json"))) as? [String: Any])
                let pts = try XCTUnwrap(curve["points"] as? [[String: Any]])
                XCTAssertEqual(pts.first?["f_reference"] as? Double, 0, tag)
                XCTAssertEqual(pts.last?["f_reference"] as? Double, 1, tag)
                XCTAssertEqual(pts.first?["f_heldout"] as? Double, 0, tag)
                // The crossing lies between the last grid point below the threshold and the first at or above it.
                let firstAbove = try XCTUnwrap(pts.first { ($0["f_reference"] as! Double) >= 0.8 })
                XCTAssertLessThanOrEqual(kept, firstAbove["kept"] as! Int, tag)
                let mask = try SafetensorsFile(path: out + "/mask.safetensors")
                var ones = 0
                for n in mask.names { ones += try mask.bytes(n).filter { $0 == 1 }.count }
                XCTAssertEqual(ones, kept, tag)   // every tensor is a candidate here
                let settings = try XCTUnwrap(cj["settings"] as? [String: Any])
                XCTAssertEqual(settings["method"] as? String, method)
                XCTAssertEqual(settings["ablation"] as? String, ablation)
                XCTAssertEqual(settings["granularity"] as? String, g)
                let model = try XCTUnwrap(cj["model"] as? [String: Any])
                XCTAssertEqual((model["sha256"] as? String)?.count, 64)
                XCTAssertEqual(((cj["task"] as? [String: Any])?["reference"] as? [String: Any])?["sha256"] as? String, try SHA256.hex(file: task))
                try checkGraphFile(out, cj, model: model["path"] as! String, granularity: g, tag: tag)
            }
        }
    }

    /// graph.json (head and neuron circuits): loaded with our EAP-IG graph reader, its in_graph heads and MLPs are exactly
    /// the circuit's — kept heads (every MLP stays) or MLPs with a kept neuron (every head stays) — with `input` and
    /// `logits`; the file's own node flags agree, an edge is in_graph iff both ends are, and node scores are the
    /// component scores circuit.json lists. Weight circuits write none.
    func checkGraphFile(_ out: String, _ cj: [String: Any], model path: String, granularity g: String, tag: String) throws {
        let file = out + "/graph.json"
        guard g != "weights" else { XCTAssertFalse(FileManager.default.fileExists(atPath: file), tag); return }
        let cfg = try ModelLoader.load(path, needTokenizer: false).model.config
        let sg = try GraphFile.read(file, shape: GraphShape(cfg))
        let units = try XCTUnwrap(cj[g == "heads" ? "kept_heads" : "kept_neurons"] as? [[String: Any]], tag)
        var want: Set<String> = ["input", "logits"]
        for l in 0..<cfg.nLayers {
            if g == "heads" { want.insert("m\(l)") } else { for h in 0..<cfg.nHeads { want.insert("a\(l).h\(h)") } }
        }
        var mlpScore: [String: Double] = [:]
        for u in units {
            let name = try XCTUnwrap(u["name"] as? String), l = try XCTUnwrap(u["layer"] as? Int)
            want.insert(g == "heads" ? name : "m\(l)")
            if g == "neurons" { mlpScore["m\(l)", default: 0] += try XCTUnwrap(u["score"] as? Double) }
        }
        XCTAssertEqual(sg.nodesInGraph, want, tag)
        let top = try json(file), nodes = try XCTUnwrap(top["nodes"] as? [String: [String: Any]], tag)
        XCTAssertEqual(nodes.count, sg.graph.nodeCount, tag)
        XCTAssertEqual(Set(nodes.filter { $0.value["in_graph"] as? Bool == true }.keys), want, tag)
        XCTAssertEqual((top["edges"] as? [String: Any])?.count, sg.graph.edgeCount, tag)
        let gr = sg.graph
        for e in gr.edgeIndices {
            let u = e % gr.nForward, b = e / gr.nForward
            XCTAssertEqual(sg.inGraph[e], want.contains(gr.forwardNames[u]) && want.contains(gr.nodeName(ofBackward: b)), tag)
            XCTAssertEqual(sg.scores[e], 0, tag)
        }
        let ns = try XCTUnwrap(sg.nodeScores, tag)
        if g == "heads" {
            for u in units { XCTAssertEqual(Double(ns[gr.forwardIndex(u["name"] as! String)!]), u["score"] as! Double, accuracy: 1e-6, tag) }
        } else {
            // Only an MLP with every neuron kept has its whole score in circuit.json.
            let all = try XCTUnwrap(cj["kept_per_layer"] as? [[String: Any]])
            for row in all where row["kept"] as? Int == row["total"] as? Int {
                let m = "m\(row["layer"] as! Int)"
                XCTAssertEqual(Double(ns[gr.forwardIndex(m)!]), mlpScore[m] ?? 0, accuracy: 1e-4 * max(1, abs(mlpScore[m] ?? 0)), tag)
            }
        }
        XCTAssertEqual(sg.metadata.first { $0.0 == "workbench_granularity" }?.1, g, tag)
    }

    func json(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// --seeds 3 on 6 prompts: three disjoint parts of 2, one directory each, and seeds.json equal to the mean ± SEM
    /// of what those directories' circuit.json files say (recomputed here from the files).
    func testSeedsGiveMeanAndSEMOfTheRunsOnDisjointParts() throws {
        let dir = try Scratch.dir(self)
        let task = dir.appendingPathComponent("task.jsonl").path, held = dir.appendingPathComponent("held.jsonl").path
        try writeTask(task); try writeTask(held)
        let model = try tinyWithTokenizer("tiny-llama-bias", in: dir)
        for method in ["lrp", "random"] {
            let out = dir.appendingPathComponent("seeds-\(method)").path
            let r = try run(["circuit", "--model", model, "--prompts", task, "--heldout", held, "--method", method, "--granularity", "heads",
                             "--threshold", "0.8", "--seeds", "3", "--out", out, "--quiet"])
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertTrue(r.out.contains("over 3 seeds (mean ± SEM): circuit "), r.out)
            var kept: [Double] = [], fHeld: [Double] = [], lines: Set<Int> = []
            for i in 0..<3 {
                let cj = try json(out + "/seed-\(i)/circuit.json")
                let c = try XCTUnwrap(cj["circuit"] as? [String: Any])
                kept.append(Double(try XCTUnwrap(c["kept"] as? Int)))
                fHeld.append(try XCTUnwrap(c["f_heldout"] as? Double))
                let ref = try XCTUnwrap((cj["task"] as? [String: Any])?["reference"] as? [String: Any])
                XCTAssertEqual(ref["prompts"] as? Int, 2); XCTAssertEqual(ref["part"] as? Int, i); XCTAssertEqual(ref["parts"] as? Int, 3)
                if method == "random" { XCTAssertEqual((cj["settings"] as? [String: Any])?["seed"] as? Int, i, "random: --seed + i") }
                for f in ["curve.json", "curve.csv", "curve.svg", "mask.safetensors"] {
                    XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/seed-\(i)/" + f), f)
                }
                // Which prompts the run used: the attribution's per-sample labels are not written, so recompute the parts.
                lines.formUnion(try ReferenceResamples.parts(Array(1...6), parts: 3)[i])
            }
            XCTAssertEqual(lines.count, 6, "the three parts cover the six prompts once each")
            let s = try json(out + "/seeds.json")
            XCTAssertEqual(s["seeds"] as? Int, 3)
            let k = try XCTUnwrap(s["kept"] as? [String: Any]), h = try XCTUnwrap(s["f_heldout"] as? [String: Any])
            let mean = kept.reduce(0, +) / 3
            let sem = (kept.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2 / 3).squareRoot()
            XCTAssertEqual(try XCTUnwrap(k["mean"] as? Double), mean, accuracy: 1e-12)
            XCTAssertEqual(try XCTUnwrap(k["sem"] as? Double), sem, accuracy: 1e-12)
            XCTAssertEqual(try XCTUnwrap(h["mean"] as? Double), fHeld.reduce(0, +) / 3, accuracy: 1e-12)
            XCTAssertEqual((s["runs"] as? [[String: Any]])?.count, 3)
            let csv = try String(contentsOfFile: out + "/seeds.csv", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(csv.count, 4)
            // seeds.csv rows carry their settings too (method, aggregation, granularity, ablation, score sign, …).
            for (i, row) in csv.dropFirst().enumerated() {
                let cells = row.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                XCTAssertEqual(Array(cells[9...]), [method, method == "lrp" ? "signed" : "", "heads", "zero", "signed", "global", "0.8",
                                                    method == "random" ? "\(i)" : ""], String(row))
            }
            XCTAssertEqual((s["settings"] as? [String: Any])?["method"] as? String, method)
        }
        // Too few prompts for the parts: refused, nothing written.
        let out = dir.appendingPathComponent("too-many").path
        let r = try run(["circuit", "--model", model, "--prompts", task, "--seeds", "4", "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("--seeds 4 cuts the reference file into 4 disjoint parts, but its 6 prompts"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// circuit.html renders in headless Chromium; --save-checkpoint writes a checkpoint that loads and scores, with no
    /// ablation at all, the metric circuit.json reports for the circuit (zero ablation = pruning, exactly).
    func testPageRendersAndSavedCheckpointReproducesTheCircuitMetric() throws {
        let dir = try Scratch.dir(self)
        let task = dir.appendingPathComponent("task.jsonl").path, held = dir.appendingPathComponent("held.jsonl").path
        try writeTask(task); try writeTask(held)
        let model = try tinyWithTokenizer("tiny-llama-bias", in: dir)
        for g in ["heads", "neurons"] {
            let out = dir.appendingPathComponent("c-\(g)").path, ck = dir.appendingPathComponent("ck-\(g)").path
            let r = try run(["circuit", "--model", model, "--prompts", task, "--heldout", held, "--method", "lrp", "--granularity", g,
                             "--threshold", "0.8", "--out", out, "--save-checkpoint", ck, "--quiet"])
            XCTAssertEqual(r.status, 0, r.err)
            let c = try XCTUnwrap(try json(out + "/circuit.json")["circuit"] as? [String: Any])
            let mRef = try XCTUnwrap(c["metric_reference"] as? Double), kept = try XCTUnwrap(c["kept"] as? Int)
            let loaded = try ModelLoader.load(ck)
            let items = try TaskSet.load(task).tokenize(tokenizer: loaded.tokenizer, model: loaded.model)
            let m = try Faithfulness.metric(loaded.model, items, HeadlineMetric.forItems(items))
            XCTAssertEqual(m, mRef, accuracy: 1e-4 * max(1, abs(mRef)), g)
            XCTAssertTrue(FileManager.default.fileExists(atPath: ck + "/mask.safetensors"))
            XCTAssertEqual((try json(ck + "/circuit.json")["circuit"] as? [String: Any])?["kept"] as? Int, kept)
            let page = try String(contentsOfFile: out + "/circuit.html", encoding: .utf8)
            XCTAssertTrue(page.contains("Faithfulness vs kept fraction"))
            XCTAssertTrue(page.contains(g == "heads" ? "kept by 1 of 1 seeds" : "most often kept neurons"), g)
            for bad in ["src=", "href=", "@import", "<link"] { XCTAssertFalse(page.lowercased().contains(bad), bad) }
            try HeadlessBrowser.check(URL(fileURLWithPath: out + "/circuit.html"))
        }
        // The seeds page has error bars and the seed count in its table.
        let seeds = dir.appendingPathComponent("seeds").path
        XCTAssertEqual(try run(["circuit", "--model", model, "--prompts", task, "--heldout", held, "--method", "random", "--granularity", "heads",
                                "--threshold", "0.8", "--seeds", "3", "--out", seeds, "--quiet"]).status, 0)
        try HeadlessBrowser.check(URL(fileURLWithPath: seeds + "/circuit.html"))
        for (args, needle) in [(["--ablation", "mean"], "needs --ablation zero"), (["--seeds", "2"], "cannot be combined with --seeds 2")] {
            let ck = dir.appendingPathComponent("ck-bad").path, out = dir.appendingPathComponent("c-bad").path
            let r = try run(["circuit", "--model", model, "--prompts", task, "--out", out, "--save-checkpoint", ck, "--quiet"] + args)
            XCTAssertEqual(r.status, 64, r.err); XCTAssertTrue(r.err.contains(needle), r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: ck)); XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }

    /// IOI-shaped prompts for the byte tokenizer: IO and S are one-byte names ('A' = id 65 …), IO once, S twice.
    func writeIOITask(_ path: String) throws {
        let lines = [("A", "B", "Then, A and B went home. B gave a cup to"), ("D", "C", "After C and D met, C handed a pen to"),
                     ("E", "F", "When E and F sat down, F sent a note to"), ("G", "H", "Then, G and H had fun. H gave a kiss to")]
            .map { io, s, t in
                "{\"task\": \"ioi\", \"text\": \"\(t)\", \"answer_id\": \(Int(UnicodeScalar(io)!.value)), \"distractor_id\": \(Int(UnicodeScalar(s)!.value))}"
            }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// circuit.html's heatmap and head attention: every kept head's attention to IO / S1 / S2 equals the mean over the
    /// reference prompts of the model's final-position pattern at the name positions (located here by hand); a
    /// non-IOI task says why there is no table; a weight circuit's heatmap shows each matrix's kept fraction as
    /// circuit.json counts it. Every page renders in headless Chromium.
    func testPageHeatmapAndHeadAttention() throws {
        let dir = try Scratch.dir(self)
        let ioi = dir.appendingPathComponent("ioi.jsonl").path, task = dir.appendingPathComponent("task.jsonl").path
        try writeIOITask(ioi); try writeTask(task)
        let model = try tinyWithTokenizer("tiny-llama-bias", in: dir)
        let out = dir.appendingPathComponent("ioi-heads").path
        let r = try run(["circuit", "--model", model, "--prompts", ioi, "--method", "lrp", "--granularity", "heads",
                         "--threshold", "0.8", "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        let page = try String(contentsOfFile: out + "/circuit.html", encoding: .utf8)
        let kept = try XCTUnwrap(try json(out + "/circuit.json")["kept_heads"] as? [[String: Any]])
        XCTAssertFalse(kept.isEmpty)
        let loaded = try ModelLoader.load(model)
        let items = try TaskSet.load(ioi).tokenize(tokenizer: loaded.tokenizer, model: loaded.model)
        let att = loaded.model.finalPositionAttention(items.map(\.tokens))
        for h in kept {
            let l = try XCTUnwrap(h["layer"] as? Int), i = try XCTUnwrap(h["index"] as? Int)
            // Name positions by hand: the first byte equal to the IO / S letter, and the second S.
            var io: [Double] = [], s1: [Double] = [], s2: [Double] = []
            for (p, item) in items.enumerated() {
                let ioPos = try XCTUnwrap(item.tokens.firstIndex(of: item.answerIds[0]))
                let sPos = item.tokens.indices.filter { item.tokens[$0] == item.distractorIds[0] }
                guard sPos.count == 2 else { return XCTFail("S twice in \(item.location)") }
                io.append(Double(att.weight(sequence: p, layer: l, head: i, key: ioPos)))
                s1.append(Double(att.weight(sequence: p, layer: l, head: i, key: sPos[0])))
                s2.append(Double(att.weight(sequence: p, layer: l, head: i, key: sPos[1])))
            }
            let row = "<tr><td>a\(l).h\(i)</td><td>1 of 1</td><td class=\"num\">\(MeanSEM(io).text())</td><td class=\"num\">\(MeanSEM(s1).text())</td>"
                + "<td class=\"num\">\(MeanSEM(s2).text())</td>"
            XCTAssertTrue(page.contains(row), "a\(l).h\(i): expected \(row)")
        }
        XCTAssertTrue(page.contains("over 4 reference prompts"), "every prompt located")
        XCTAssertTrue(page.contains("Kept fraction per layer and matrix"))
        try HeadlessBrowser.check(URL(fileURLWithPath: out + "/circuit.html"))

        // Not an IOI task: the reason, no table.
        let custom = dir.appendingPathComponent("custom-heads").path
        XCTAssertEqual(try run(["circuit", "--model", model, "--prompts", task, "--method", "random", "--granularity", "heads",
                                "--threshold", "0.8", "--out", custom, "--quiet"]).status, 0)
        let cpage = try String(contentsOfFile: custom + "/circuit.html", encoding: .utf8)
        XCTAssertTrue(cpage.contains("Not shown: the reference prompts are not an IOI task"), "reason on the page")
        XCTAssertFalse(cpage.contains("attention → IO"))

        // Weight circuit: one heatmap column per matrix role, each cell the kept fraction of circuit.json's counts.
        let w = dir.appendingPathComponent("weights").path
        XCTAssertEqual(try run(["circuit", "--model", model, "--prompts", task, "--method", "magnitude", "--granularity", "weights",
                                "--threshold", "0.8", "--out", w, "--quiet"]).status, 0)
        let wpage = try String(contentsOfFile: w + "/circuit.html", encoding: .utf8)
        let perTensor = try XCTUnwrap(try json(w + "/circuit.json")["kept_per_tensor"] as? [String: [String: Int]])
        XCTAssertEqual(perTensor.count, 14)
        for role in ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] {
            XCTAssertTrue(wpage.contains(">\(role)</text>"), "column \(role)")
        }
        var fractions = Set<String>()
        for (name, c) in perTensor {
            let layer = name.contains(".0.") ? 0 : 1, role = name.split(separator: ".").dropLast().suffix(2).joined(separator: ".")
            let f = Double(c["kept"]!) / Double(c["total"]!)
            fractions.insert(String(format: "%.2f", f))
            XCTAssertTrue(wpage.contains(String(format: "layer %d %@: kept fraction %.4f (mean %.1f of %d weights over 1 seed(s))",
                                                layer, role, f, Double(c["kept"]!), c["total"]!)), "\(name) cell")
        }
        XCTAssertGreaterThan(fractions.count, 1, "magnitude keeps different fractions of different matrices")
        XCTAssertTrue(wpage.contains("attention") == false || !wpage.contains("attention → IO"))
        try HeadlessBrowser.check(URL(fileURLWithPath: w + "/circuit.html"))
    }

    /// circuit-compare: Jaccard recomputed from the kept_heads lists, the transfer diagonal = each circuit's own f_ref
    /// (every head is a candidate, so both baselines are the ones its run measured), mixed granularities refused.
    func testCompareOverlapAndTransfer() throws {
        let dir = try Scratch.dir(self)
        let task = dir.appendingPathComponent("task.jsonl").path
        try writeTask(task)
        // Held-out: other prompts (four of the task's lines, reversed, one changed).
        let held = dir.appendingPathComponent("held.jsonl").path
        let lines = try String(contentsOfFile: task, encoding: .utf8).split(separator: "\n").prefix(4).reversed()
        try (lines.joined(separator: "\n").replacingOccurrences(of: "Anna", with: "Anne") + "\n").write(toFile: held, atomically: true, encoding: .utf8)
        let model = try tinyWithTokenizer("tiny-llama-bias", in: dir)
        var dirs: [String] = []
        for (method, g) in [("lrp", "heads"), ("random", "heads"), ("random", "neurons")] {
            let out = dir.appendingPathComponent("\(method)-\(g)").path
            XCTAssertEqual(try run(["circuit", "--model", model, "--prompts", task, "--heldout", held, "--method", method, "--granularity", g,
                                    "--threshold", "0.8", "--out", out, "--quiet"]).status, 0)
            dirs.append(out)
        }
        func heads(_ d: String) throws -> Set<String> {
            Set(try XCTUnwrap(try json(d + "/circuit.json")["kept_heads"] as? [[String: Any]]).map { $0["name"] as! String })
        }
        let a = try heads(dirs[0]), b = try heads(dirs[1])
        let j = dir.appendingPathComponent("cmp.json").path
        let r = try run(["circuit-compare", dirs[0], dirs[1] + "/circuit.json", "--json", j, "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        let cmp = try json(j)
        let o = try XCTUnwrap((cmp["overlap"] as? [[String: Any]])?.first)
        XCTAssertEqual(o["intersection"] as? Int, a.intersection(b).count)
        XCTAssertEqual(o["union"] as? Int, a.union(b).count)
        XCTAssertEqual(try XCTUnwrap(o["jaccard"] as? Double), Double(a.intersection(b).count) / Double(a.union(b).count), accuracy: 1e-12)
        XCTAssertEqual(Set(try XCTUnwrap(o["shared"] as? [String])), a.intersection(b))
        let f = try XCTUnwrap(cmp["transfer_f"] as? [[Double]])
        XCTAssertEqual(f.count, 2); XCTAssertEqual(f[0].count, 1, "both circuits share one reference set")
        for (i, d) in dirs.prefix(2).enumerated() {
            let own = try XCTUnwrap((try json(d + "/circuit.json")["circuit"] as? [String: Any])?["f_reference"] as? Double)
            XCTAssertEqual(f[i][0], own, accuracy: 1e-9, d)
        }
        // --prompts FILE: one column, every circuit on FILE; on the held-out file it repeats each circuit's f_heldout.
        let jh = dir.appendingPathComponent("cmp-held.json").path
        let rh = try run(["circuit-compare", dirs[0], dirs[1], "--prompts", held, "--json", jh, "--quiet"])
        XCTAssertEqual(rh.status, 0, rh.err)
        let fh = try XCTUnwrap(try json(jh)["transfer_f"] as? [[Double]])
        XCTAssertEqual(fh.map(\.count), [1, 1])
        for (i, d) in dirs.prefix(2).enumerated() {
            let own = try XCTUnwrap((try json(d + "/circuit.json")["circuit"] as? [String: Any])?["f_heldout"] as? Double)
            XCTAssertEqual(fh[i][0], own, accuracy: 1e-9, d)
        }
        // Not vacuous: the random circuit (2 of 8 heads) scores differently on the two sets.
        XCTAssertGreaterThan(abs(fh[1][0] - f[1][0]), 1e-3, "the held-out prompts differ from the reference ones")
        let same = try run(["circuit-compare", dirs[0], dirs[0], "--quiet"])
        XCTAssertTrue(same.out.contains("[0] vs [1]: 1.0000"), same.out)
        let mixed = try run(["circuit-compare", dirs[0], dirs[2], "--quiet"])
        XCTAssertEqual(mixed.status, 1); XCTAssertTrue(mixed.err.contains("different granularity"), mixed.err)
        let one = try run(["circuit-compare", dirs[0]])
        XCTAssertEqual(one.status, 64); XCTAssertTrue(one.err.contains("at least two circuits"), one.err)
    }

    func testBadInputIsRefusedAndNothingIsWritten() throws {
        let dir = try Scratch.dir(self)
        let model = try tinyWithTokenizer("tiny-opt", in: dir)
        let task = dir.appendingPathComponent("task.jsonl").path, plain = dir.appendingPathComponent("plain.jsonl").path
        let noAnswer = dir.appendingPathComponent("noanswer.jsonl").path
        try writeTask(task); try writeTask(plain, corrupted: false)
        try "{\"text\": \"Anna met Bob\", \"answer_id\": 5}\n{\"text\": \"Bob met\"}\n".write(toFile: noAnswer, atomically: true, encoding: .utf8)
        let out = dir.appendingPathComponent("out").path
        let base = ["circuit", "--model", model, "--out", out]
        for (args, status, needle) in [
            (base + ["--prompts", plain, "--granularity", "heads", "--ablation", "patch"], Int32(1), "plain.jsonl:1 has none"),
            (base + ["--prompts", task, "--threshold", "1.5"], 1, "below --threshold 1.5"),
            (base + ["--prompts", task, "--layers", ""], 64, "--layers is empty"),
            (base + ["--prompts", task, "--layers", "nomatch"], 1, "--layers 'nomatch' matches no"),
            (base + ["--prompts", noAnswer], 1, "noanswer.jsonl:2: missing field 'answer'"),
            (base + ["--prompts", task, "--granularity", "weights", "--ablation", "mean"], 64, "not defined at --granularity weights"),
            (base + ["--prompts", task, "--method", "lrp", "--seed", "3"], 64, "'--seed' applies to --method random only"),
            (base + ["--prompts", task, "--method", "wanda", "--aggregation", "abs-per-token"], 64, "'--aggregation' applies"),
            (base + ["--prompts", task, "--points", "5"], 64, "at least 12"),
            (base + ["--prompts", task, "--method", "activation", "--granularity", "weights"], 64, "neurons and heads only"),
            (["circuit", "--model", model, "--prompts", task, "--out", task], 1, "exists"),
        ] {
            let r = try run(args)
            XCTAssertEqual(r.status, status, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(needle), "\(args): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(args)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["noanswer.jsonl", "plain.jsonl", "task.jsonl", "tiny-opt"])
    }
}
