import Foundation
import XCTest
import Circuits
import TestSupport

// MARK: - `workbench evaluate` as a user runs it (stories260K: real weights and tokenizer, fast)

final class EvaluateCLITests: XCTestCase {
    func run(_ args: [String]) throws -> WorkbenchRun {
        try WorkbenchCLI.runWithAssets(args)
    }

    func promptFile(_ dir: URL) throws -> String {
        let p = dir.appendingPathComponent("prompts.jsonl")
        try Data("{\"prompt\": \"Once upon a time\"}\n{\"text\": \"The dog was\"}\n{\"prompt\": \"She said\"}\n".utf8).write(to: p)
        return p.path
    }

    let small = ["--samples", "3", "--sample-tokens", "6", "--greedy-tokens", "6", "--repetition-tokens", "12",
                 "--max-windows", "1", "--seqlen", "64", "--quiet"]

    /// Model = baseline: every delta is exactly 0 (same seeds, batching-independent streams); the aggregates
    /// follow from the per-prompt values; the greedy text is stories260K's known greedy story; the page renders.
    func testReportDeltasAndPage() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("eval.json")
        let r = try run(["evaluate", "--model", model, "--baseline", model, "--prompts", try promptFile(dir), "--split", "held-out",
                         "--out", out.path] + small)
        XCTAssertEqual(r.status, 0, r.summary)
        let rep = try JSONDecoder().decode(EvaluationReport.self, from: Data(contentsOf: out))
        XCTAssertEqual(rep.promptCount, 3); XCTAssertEqual(rep.split, "held-out")
        let m = rep.models[0], b = try XCTUnwrap(rep.baseline)
        XCTAssertEqual(m.prompts, b.prompts)
        for d in rep.deltas {
            for v in [d.expectedMaxToxicity, d.toxicityProbability, d.greedyToxicity, d.rur, d.perplexity] { XCTAssertEqual(v, 0) }
        }
        XCTAssertTrue(m.prompts[0].greedy.hasPrefix(", there was a little girl named Lily."), m.prompts[0].greedy)
        let maxes = m.prompts.compactMap(\.maxSampleToxicity)
        XCTAssertEqual(maxes.count, 3)
        XCTAssertEqual(m.expectedMaxToxicity.mean!, maxes.reduce(0, +) / 3, accuracy: 1e-15)
        XCTAssertEqual(m.greedyToxicity.mean!, m.prompts.compactMap(\.greedyToxicity).reduce(0, +) / 3, accuracy: 1e-15)
        XCTAssertEqual(m.rur.mean!, m.prompts.compactMap(\.rur).reduce(0, +) / 3, accuracy: 1e-15)
        XCTAssertEqual(m.generatedTokens, m.prompts.map(\.greedyTokens).reduce(0, +) + 3 * 3 * 6, "stories260K never emits EOS this early")
        XCTAssertEqual(m.perplexity?.windows, 1)
        // The guardrail equals `workbench perplexity` with the same settings.
        let p = try run(["perplexity", "--model", model, "--text", try Assets.path("eval/wikitext-2-raw/wiki.test.raw"), "--seqlen", "64",
                         "--max-windows", "1", "--json"])
        let pj = try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(m.perplexity!.perplexity, pj["perplexity"] as! Double, accuracy: 1e-9)
        let page = dir.appendingPathComponent("eval.html")
        let html = try String(contentsOf: page, encoding: .utf8)
        XCTAssertTrue(html.contains("not Perspective") && html.contains("held-out"))
        try HeadlessBrowser.check(page)
    }

    /// A scorer that dies after two texts: the report is still written, marked partial, exit 1.
    func testPartialScorerIsMarked() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("eval.json")
        let r = try run(["evaluate", "--model", model, "--prompts", try promptFile(dir), "--out", out.path, "--samples", "1",
                         "--max-windows", "0", "--scorer", "printf '{\"toxicity\":0.1}\\n{\"toxicity\":0.2}\\n'; exit 1", "--quiet"])
        XCTAssertEqual(r.status, 1, r.summary)
        XCTAssertTrue(r.stderr.contains("partial"), r.stderr)
        let rep = try JSONDecoder().decode(EvaluationReport.self, from: Data(contentsOf: out))
        let m = rep.models[0]
        XCTAssertTrue(m.partial)
        XCTAssertEqual(m.greedyToxicity.n, 1); XCTAssertEqual(m.greedyToxicity.mean, 0.1)
        XCTAssertEqual(m.expectedMaxToxicity.n, 1); XCTAssertEqual(m.expectedMaxToxicity.mean, 0.2)
        XCTAssertNil(m.prompts[1].greedyToxicity)
        XCTAssertNil(m.perplexity)
        XCTAssertEqual(m.rur.n, 3, "repetition does not depend on the scorer")
        XCTAssertEqual(rep.settings.metrics, [.toxicity, .repetition], "--max-windows 0 without --metric drops perplexity, as before --metric")
        XCTAssertEqual(rep.protocols["perplexity"], "not measured (not in --metric)")
    }

    /// `--metric`: each metric alone gives exactly the numbers the all-metrics run gives for it, and nothing else
    /// (null numbers, no generation it does not need, no scorer call, no page column); the report states what ran.
    func testMetricSelection() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let prompts = try promptFile(dir)
        func evaluate(_ name: String, _ extra: [String]) throws -> (EvaluationReport, String) {
            let out = dir.appendingPathComponent("\(name).json")
            let r = try run(["evaluate", "--model", model, "--prompts", prompts, "--out", out.path, "--quiet"] + extra)
            XCTAssertEqual(r.status, 0, r.summary)
            return (try JSONDecoder().decode(EvaluationReport.self, from: Data(contentsOf: out)), r.stderr)
        }
        let (all, _) = try evaluate("all", small)
        XCTAssertEqual(all.settings.metrics, [.toxicity, .repetition, .perplexity])
        let a = all.models[0]

        // Repetition alone: the same 12-token greedy run, so the same texts, RUR and seq-rep; no toxicity, no perplexity.
        let (r, rErr) = try evaluate("rep", ["--metric", "repetition", "--repetition-tokens", "12"])
        XCTAssertEqual(r.settings.metrics, [.repetition])
        let rm = r.models[0]
        XCTAssertEqual(rm.prompts.map(\.greedy), a.prompts.map(\.greedy))
        XCTAssertEqual(rm.prompts.map(\.rur), a.prompts.map(\.rur))
        XCTAssertEqual(rm.prompts.map(\.seqRep), a.prompts.map(\.seqRep))
        XCTAssertEqual(rm.rur, a.rur)
        XCTAssertEqual(rm.rur.mean!, rm.prompts.compactMap(\.rur).reduce(0, +) / 3, accuracy: 1e-15)
        XCTAssertEqual(rm.generatedTokens, 3 * 12, "greedy only, 12 tokens per prompt (stories260K emits no EOS this early)")
        for st in [rm.greedyToxicity, rm.expectedMaxToxicity, rm.toxicityProbability] { XCTAssertEqual(st.n, 0); XCTAssertNil(st.mean) }
        XCTAssertTrue(rm.prompts.allSatisfy { $0.greedyToxicity == nil && $0.maxSampleToxicity == nil })
        XCTAssertNil(rm.perplexity)
        XCTAssertEqual(r.scorer, EvaluationReport.noScorer)
        XCTAssertEqual(r.protocols["rtp"], "not measured (not in --metric)")
        XCTAssertTrue(rErr.contains("metrics: repetition (greedy 12); not run: toxicity, perplexity"), rErr)
        let page = try String(contentsOf: dir.appendingPathComponent("rep.html"), encoding: .utf8)
        XCTAssertTrue(page.contains("repetition (greedy 12); not run: toxicity, perplexity"))
        XCTAssertFalse(page.contains("exp. max toxicity") || page.contains("greedy toxicity") || page.contains("WikiText ppl"))
        XCTAssertTrue(page.contains("seq-rep-2"))
        try HeadlessBrowser.check(dir.appendingPathComponent("rep.html"))

        // Toxicity alone: the same greedy 6-token scores and RTP maxima; the greedy run is only 6 tokens long.
        let (t, _) = try evaluate("tox", ["--metric", "toxicity", "--samples", "3", "--sample-tokens", "6", "--greedy-tokens", "6"])
        let tm = t.models[0]
        XCTAssertEqual(tm.prompts.map(\.greedyToxicity), a.prompts.map(\.greedyToxicity))
        XCTAssertEqual(tm.prompts.map(\.maxSampleToxicity), a.prompts.map(\.maxSampleToxicity))
        XCTAssertEqual(tm.expectedMaxToxicity, a.expectedMaxToxicity); XCTAssertEqual(tm.toxicityProbability, a.toxicityProbability)
        XCTAssertEqual(tm.generatedTokens, 3 * 6 + 3 * 3 * 6)
        XCTAssertTrue(tm.prompts.allSatisfy { $0.rur == nil && $0.seqRep == [nil, nil, nil, nil] && $0.greedyTokens == 6 })
        XCTAssertNil(tm.rur.mean); XCTAssertNil(tm.perplexity)
        XCTAssertTrue(t.scorerNote.contains("not Perspective"))

        // Perplexity alone: `workbench perplexity`'s number, nothing generated.
        let (p, _) = try evaluate("ppl", ["--metric", "perplexity", "--max-windows", "1", "--seqlen", "64"])
        let pm = p.models[0]
        XCTAssertEqual(pm.perplexity?.perplexity, a.perplexity?.perplexity)
        XCTAssertEqual(pm.perplexity?.scored, a.perplexity?.scored)
        XCTAssertEqual(pm.generatedTokens, 0)
        XCTAssertTrue(pm.prompts.allSatisfy { $0.greedy.isEmpty && $0.rur == nil && $0.greedyToxicity == nil })
        try HeadlessBrowser.check(dir.appendingPathComponent("ppl.html"))
    }

    /// Reports written before --metric have no settings.metrics: they measured toxicity, repetition and, with a
    /// text, perplexity.
    func testSettingsWithoutMetricsDecode() throws {
        let old = #"{"samples": 25, "sample_tokens": 20, "temperature": 1, "top_p": 1, "seed": 0, "greedy_tokens": 20, "repetition_tokens": 50, "#
            + #""batch_rows": 64, "perplexity_text": null, "perplexity_seqlen": null, "perplexity_windows": 0}"#
        XCTAssertEqual(try JSONDecoder().decode(EvaluationSettings.self, from: Data(old.utf8)).metrics, [.toxicity, .repetition])
        let withText = old.replacingOccurrences(of: #""perplexity_text": null"#, with: #""perplexity_text": "wiki.test.raw""#)
        XCTAssertEqual(try JSONDecoder().decode(EvaluationSettings.self, from: Data(withText.utf8)).metrics, [.toxicity, .repetition, .perplexity])
        var s = EvaluationSettings(); s.metrics = [.repetition]
        XCTAssertEqual(try JSONDecoder().decode(EvaluationSettings.self, from: try JSONEncoder().encode(s)), s)
    }

    /// --metric's usage errors exit 64 and name the flag; nothing is written.
    func testMetricUsageErrors() throws {
        let dir = try Scratch.dir(self)
        let prompts = try promptFile(dir)
        let out = dir.appendingPathComponent("x.json")
        for (extra, needle) in [(["--metric", "toxicity,foo"], "invalid for '--metric': unknown metric 'foo' (expected toxicity, repetition or perplexity)"),
                                (["--metric", "toxicity,,repetition"], "invalid for '--metric': an empty metric name"),
                                (["--metric", "repetition,repetition"], "invalid for '--metric': 'repetition' is listed twice"),
                                (["--metric", "repetition", "--scorer", "cat"], "--scorer configures the toxicity metric, which --metric repetition leaves out"),
                                (["--metric", "toxicity", "--repetition-tokens", "5"], "--repetition-tokens configures the repetition metric"),
                                (["--metric", "toxicity", "--max-windows", "3"], "--max-windows configures the perplexity metric"),
                                (["--metric", "toxicity,perplexity", "--max-windows", "0"], "--max-windows 0 turns the perplexity guardrail off, but --metric lists perplexity")] {
            let r = try run(["evaluate", "--model", try Assets.path("stories260K/hf"), "--prompts", prompts, "--out", out.path] + extra)
            XCTAssertEqual(r.status, 64, r.summary)
            XCTAssertTrue(r.stderr.contains("Error: ") && r.stderr.contains(needle), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        // --max-windows 0 agrees with a list without perplexity.
        let r = try run(["evaluate", "--model", try Assets.path("stories260K/hf"), "--prompts", prompts, "--out", out.path,
                         "--metric", "repetition", "--max-windows", "0", "--repetition-tokens", "4", "--quiet"])
        XCTAssertEqual(r.status, 0, r.summary)
    }

    /// `--sweep`: every count of a `correct` sweep, against its source model.
    func testSweep() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let prompts = try promptFile(dir)
        let c = try run(["correct", "--model", model, "--general", prompts, "--undesired", prompts, "--method", "random",
                         "--count", "4,40", "--max-new-tokens", "4", "--out", dir.appendingPathComponent("sweep").path, "--quiet"])
        XCTAssertEqual(c.status, 0, c.summary)
        let out = dir.appendingPathComponent("eval.json")
        let r = try run(["evaluate", "--sweep", dir.appendingPathComponent("sweep/correction.json").path, "--prompts", prompts,
                         "--out", out.path] + small)
        XCTAssertEqual(r.status, 0, r.summary)
        let rep = try JSONDecoder().decode(EvaluationReport.self, from: Data(contentsOf: out))
        XCTAssertEqual(rep.models.map(\.count), [4, 40])
        XCTAssertEqual(rep.baseline?.model, model)
        XCTAssertEqual(rep.deltas.count, 2)
        // Scored on the very prompts it is evaluated on: both sets overlap completely, on stderr and in the JSON.
        XCTAssertEqual(rep.overlaps.map(\.role), ["undesired (scored)", "general (scored)"])
        XCTAssertEqual(rep.overlaps.map(\.shared), [3, 3])
        XCTAssertEqual(rep.overlaps.map(\.compared), [3, 3])
        XCTAssertTrue(r.stderr.contains("warning: 3 of the 3 evaluated prompts also appear in the undesired (scored) set"), r.stderr)
        XCTAssertNotEqual(rep.models[1].prompts.map(\.greedy), rep.baseline!.prompts.map(\.greedy), "40 random neurons change the continuations")
        try HeadlessBrowser.check(dir.appendingPathComponent("eval.html"))
    }

    /// `--reference`: shared prompts (exact text, a repeated one once) are counted in a warning and in the report;
    /// a disjoint reference gives 0 and no warning.
    func testReferenceOverlapIsCounted() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let prompts = try promptFile(dir)
        let ref = dir.appendingPathComponent("reference.txt"), other = dir.appendingPathComponent("other.txt")
        try "She said\nA fox\nThe dog was\nShe said\nthe dog was\n".write(to: ref, atomically: true, encoding: .utf8)
        try "A fox\nOnce upon a time \n".write(to: other, atomically: true, encoding: .utf8)
        let fast = ["--samples", "0", "--greedy-tokens", "4", "--repetition-tokens", "4", "--max-windows", "0", "--quiet"]
        for (file, shared) in [(ref, 2), (other, 0)] {
            let out = dir.appendingPathComponent("eval-\(shared).json")
            let r = try run(["evaluate", "--model", model, "--prompts", prompts, "--reference", file.path, "--out", out.path] + fast)
            XCTAssertEqual(r.status, 0, r.summary)
            let rep = try JSONDecoder().decode(EvaluationReport.self, from: Data(contentsOf: out))
            XCTAssertEqual(rep.overlaps, [PromptOverlap(set: file.path, role: "reference", compared: 3, shared: shared)])
            XCTAssertEqual(r.stderr.contains("warning: 2 of the 3 evaluated prompts also appear in the reference set"), shared == 2, r.stderr)
        }
        let page = try String(contentsOf: dir.appendingPathComponent("eval-2.html"), encoding: .utf8)
        XCTAssertTrue(page.contains("2 of 3 prompts also in"), "the page states the overlap")
    }

    func testUsageErrors() throws {
        let dir = try Scratch.dir(self)
        let prompts = try promptFile(dir)
        for (args, needle) in [(["evaluate", "--prompts", prompts, "--out", "x.json"], "--model <path>' or '--sweep"),
                               (["evaluate", "--model", "m", "--sweep", "s", "--prompts", prompts, "--out", "x.json"], "mutually exclusive"),
                               (["evaluate", "--model", "m", "--prompts", prompts, "--out", prompts], "also an input"),
                               (["evaluate", "--model", "m", "--no-baseline", "--prompts", prompts, "--out", "x.json"], "only with --sweep")] {
            let r = try run(args)
            XCTAssertNotEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stderr.contains(needle), r.stderr)
        }
        XCTAssertTrue(try String(contentsOfFile: prompts, encoding: .utf8).hasPrefix("{\"prompt\": \"Once upon a time\"}\n"), "the input is untouched")
    }
}
