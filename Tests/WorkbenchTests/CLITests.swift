import Foundation
import XCTest
@testable import Transformer
import Tokenize
import Circuits
import TestSupport

// MARK: - CLI behaviour

final class CLITests: XCTestCase {
    static let subcommands = ["info", "tokenize", "generate", "perplexity", "bench"]

    private var storiesBin: String { get throws { try Assets.path("stories260K/stories260K.bin") } }
    private var storiesHF: String { get throws { try Assets.path("stories260K/hf") } }

    // MARK: help

    func testTopLevelHelpListsSubcommands() throws {
        let r = try WorkbenchCLI.run(["--help"])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stdout.contains("USAGE: workbench <subcommand>"), r.summary)
        for c in Self.subcommands {
            XCTAssertTrue(r.stdoutLines.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix(c + " ") }, "missing \(c)\n" + r.summary)
        }
    }

    func testHelpForEverySubcommand() throws {
        // Every subcommand listed by the top-level help, plus the ones this test knows must exist.
        let top = try WorkbenchCLI.run(["--help"])
        var listed: [String] = []
        var inList = false
        for l in top.stdoutLines {
            if l.hasPrefix("SUBCOMMANDS:") { inList = true; continue }
            if inList {
                guard l.hasPrefix("  "), let name = l.split(separator: " ").first, !l.contains("See '") else { break }
                listed.append(String(name))
            }
        }
        XCTAssertTrue(Set(Self.subcommands).isSubset(of: Set(listed)), "listed: \(listed)")
        for c in Set(listed).union(Self.subcommands).sorted() {
            for flag in ["--help", "-h"] {
                let r = try WorkbenchCLI.run([c, flag])
                XCTAssertFalse(r.crashed, r.summary)
                XCTAssertEqual(r.status, 0, r.summary)
                XCTAssertTrue(r.stdout.contains("USAGE: workbench \(c)"), r.summary)
                XCTAssertTrue(r.stdout.contains("OPTIONS:"), r.summary)
                XCTAssertTrue(r.stdout.contains("--help"), r.summary)
            }
            // Help wins even with other (valid) options present, and needs no model.
            guard Self.subcommands.contains(c) else { continue }
            let r = try WorkbenchCLI.run([c, "--model", "/nonexistent/model.bin", "--help"])
            XCTAssertEqual(r.status, 0, r.summary)
            XCTAssertTrue(r.stdout.contains("USAGE: workbench \(c)"), r.summary)
        }
    }

    /// Help lines are rendered from the option declarations: the default and the allowed values
    /// come from the same values the parser uses, and shared groups read the same in every command.
    func testHelpRenderedFromDeclarations() throws {
        let generate = try WorkbenchCLI.run(["generate", "--help"])
        XCTAssertTrue(generate.stdoutLines.contains("  --max-new-tokens <n>        Tokens to generate (default 64)."), generate.summary)
        XCTAssertTrue(generate.stdoutLines.contains("  --top-p <p>                 Nucleus sampling mass (default 1)."), generate.summary)
        XCTAssertFalse(generate.stdout.contains("tok/s"), "no measurements in help\n" + generate.summary)
        let prune = try WorkbenchCLI.run(["prune", "--help"])
        XCTAssertTrue(prune.stdoutLines.contains {
            $0.hasPrefix("  --aggregation <a>") && $0.hasSuffix("(abs-per-token | abs-per-sample | signed; default abs-per-token).")
        }, prune.summary)
        // The calibration group: one declaration, the same line in attribute and prune.
        let attribute = try WorkbenchCLI.run(["attribute", "--help"])
        for flag in ["--prompts", "--text", "--seqlen", "--samples", "--seed "] {
            let a = attribute.stdoutLines.filter { $0.hasPrefix("  " + flag) }, p = prune.stdoutLines.filter { $0.hasPrefix("  " + flag) }
            XCTAssertEqual(a.count, 1, flag); XCTAssertEqual(a, p, flag)
        }
        // A value outside the declared choices names them.
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["prune", "--model", "m", "--method", "activation", "--scheme", "row",
                                                            "--sparsity", "0.5", "--out", "o"]),
                                      mentions: "expected magnitude, wanda, gradient or lrp")
        let version = try WorkbenchCLI.run(["--version"])
        XCTAssertEqual(version.stdout, "workbench 0.1.0\n", version.summary)
    }

    // MARK: usage errors (exit 64)

    func testNoSubcommand() throws {
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run([]))
    }

    func testUnknownSubcommand() throws {
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["frobnicate", "--model", "x"]), mentions: "frobnicate")
    }

    func testUnknownOption() throws {
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", "x", "--prompt", "hi", "--bogus", "1"]),
                                      mentions: "--bogus")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["info", "--modle", "x"]), mentions: "--modle")
    }

    func testPositionalArgumentRejected() throws {
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["info", "model.bin"]), mentions: "model.bin")
    }

    func testMissingValue() throws {
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--prompt", "hi", "--model"]), mentions: "--model")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["tokenize", "--model", "x", "--text"]), mentions: "--text")
    }

    func testMissingModel() throws {
        for args in [["generate", "--prompt", "hi"], ["info"], ["tokenize", "--text", "hi"], ["perplexity", "--text", "f.txt"]] {
            WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(args), mentions: "--model")
        }
    }

    func testMissingPrompt() throws {
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", try storiesBin]), mentions: "--prompt")
    }

    func testBadNumber() throws {
        let bin = try storiesBin
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "hi", "--max-new-tokens", "abc"]),
                                      mentions: "abc")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "hi", "--temperature", "warm"]),
                                      mentions: "--temperature")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["perplexity", "--model", bin, "--text", "f", "--seqlen", "1.5"]),
                                      mentions: "--seqlen")
    }

    func testOutOfRange() throws {
        let bin = try storiesBin
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "hi", "--top-p", "2"]),
                                      mentions: "--top-p")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "hi", "--top-p", "-0.1"]),
                                      mentions: "--top-p")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "hi", "--max-new-tokens", "-3"]),
                                      mentions: "--max-new-tokens")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "hi", "--temperature", "nan"]),
                                      mentions: "--temperature")
        WorkbenchCLI.assertUsageError(try WorkbenchCLI.run(["perplexity", "--model", bin, "--text", "f", "--protocol", "hf"]),
                                      mentions: "--protocol")
    }

    // MARK: generate

    /// Greedy continuation of "Once upon a time": stdout is exactly the decoded text of the
    /// reference greedy ids 4..<24 (the prompt's 5 ids are the first 5 of the greedy-from-BOS run).
    func testGenerateStdoutIsOnlyTheContinuation() throws {
        let bin = try storiesBin
        let ref = try ReferenceData.load()
        let greedy = ref.greedyFromBOS
        let tok = try ModelLoader.load(bin).requireTokenizer()
        XCTAssertEqual(try tok.encode("Once upon a time"), [1] + Array(greedy.prefix(4)))
        let expected = tok.decode(Array(greedy[4..<24]))
        XCTAssertTrue(expected.hasPrefix(", there was a little girl named Lily."), expected)

        let r = try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "Once upon a time", "--max-new-tokens", "20"])
        XCTAssertFalse(r.crashed, r.summary)
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertEqual(r.stdout, expected + "\n", r.summary)
        // The continuation matches the reference text too (llama2.c decoding).
        XCTAssertTrue(ref.greedyText.dropFirst("Once upon a time".count).hasPrefix(r.stdout.dropLast()), r.summary)
        // Stats go to stderr only.
        XCTAssertTrue(r.stderr.contains("generated 20 tokens"), r.summary)
        for noise in ["tok/s", "loaded", "prompt:", "Error"] { XCTAssertFalse(r.stdout.contains(noise), "stdout has '\(noise)'") }
    }

    func testGenerateHFCopyMatchesBin() throws {
        let bin = try storiesBin, hf = try storiesHF
        let a = try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "Lily and Tom went to the", "--max-new-tokens", "12"])
        let b = try WorkbenchCLI.run(["generate", "--model", hf, "--prompt", "Lily and Tom went to the", "--max-new-tokens", "12"])
        XCTAssertEqual(a.status, 0, a.summary); XCTAssertEqual(b.status, 0, b.summary)
        XCTAssertEqual(a.stdout, b.stdout)
        XCTAssertGreaterThan(a.stdout.count, 12, a.summary)
    }

    func testGenerateSamplingIsSeeded() throws {
        let bin = try storiesBin
        func gen(_ seed: Int) throws -> String {
            let r = try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "Once upon a time", "--max-new-tokens", "40",
                                          "--temperature", "1.0", "--top-p", "0.95", "--seed", "\(seed)"])
            XCTAssertEqual(r.status, 0, r.summary)
            return r.stdout
        }
        let a = try gen(7), b = try gen(7), c = try gen(8)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }

    func testGenerateZeroNewTokens() throws {
        let r = try WorkbenchCLI.run(["generate", "--model", try storiesBin, "--prompt", "Once upon a time", "--max-new-tokens", "0"])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertEqual(r.stdout, "\n", r.summary)
    }

    // MARK: tokenize

    func testTokenizeStories260K() throws {
        let bin = try storiesBin, hf = try storiesHF
        let ref = try ReferenceData.load()
        for (prompt, ids) in ref.top5.map({ ($0.prompt, $0.inputIds) }) + [(ref.nllSentence, ref.nllInputIds)] {
            for model in [bin, hf] {
                let r = try WorkbenchCLI.run(["tokenize", "--model", model, "--text", prompt])
                XCTAssertEqual(r.status, 0, r.summary)
                XCTAssertEqual(r.stdoutLines.count, 1, r.summary)
                XCTAssertEqual(r.stdout, ids.map(String.init).joined(separator: " ") + "\n", "\(model): \(prompt)")
            }
        }
    }

    func testTokenizeSmolLM2() throws {
        let gguf = try Assets.smolLM2()
        let r = try WorkbenchCLI.run(["tokenize", "--model", gguf, "--text", "The capital of France is"])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertEqual(r.stdout, "504 3575 282 4649 314\n", r.summary)
    }

    // MARK: perplexity

    private func writeText(_ rows: [String]) throws -> String {
        let url = try Scratch.dir(self).appendingPathComponent("text.raw")
        try Data(rows.map { $0 + "\r\n" }.joined().utf8).write(to: url)
        return url.path
    }

    private static let storyRows = [
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
        "One day, she saw a big, red ball. She wanted to play with it, but it was too high.",
        "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do.",
        "Tom and Sam went to the shop to buy a toy. They were very happy.",
    ]

    func testPerplexityJSON() throws {
        let hf = try storiesHF
        let file = try writeText(Self.storyRows + Self.storyRows)
        let r = try WorkbenchCLI.run(["perplexity", "--model", hf, "--text", file, "--seqlen", "32", "--json"])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertEqual(r.stdoutLines.count, 1, "exactly one JSON object on stdout\n" + r.summary)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
        let ppl = try XCTUnwrap(obj["perplexity"] as? Double)
        let tokens = try XCTUnwrap(obj["tokens"] as? Int), windows = try XCTUnwrap(obj["windows"] as? Int)
        XCTAssertEqual(obj["seqlen"] as? Int, 32)
        XCTAssertEqual(obj["protocol"] as? String, "wanda")
        // The same numbers in-process: same text preparation, tokenizer and protocol.
        let m = try ModelLoader.load(hf)
        let tok = try m.requireTokenizer()
        let ids = try tok.encode(joinRawTextRows(String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self)))
        XCTAssertEqual(tokens, ids.count)
        XCTAssertEqual(windows, ids.count / 32)
        XCTAssertGreaterThanOrEqual(windows, 3)
        let want = try m.model.perplexity(tokens: ids, seqlen: 32, protocol: .wanda, bos: tok.bosId)
        XCTAssertEqual(ppl, want.perplexity, accuracy: 1e-9 * want.perplexity)
        XCTAssertEqual(obj["scored"] as? Int, windows * 31)
        XCTAssertEqual(try XCTUnwrap(obj["mean_nll"] as? Double), log(ppl), accuracy: 1e-9)
        XCTAssertGreaterThan(ppl, 1); XCTAssertLessThan(ppl, 50)

        // Text mode: the last stdout line is `perplexity: <value>`, equal to the JSON value.
        let t = try WorkbenchCLI.run(["perplexity", "--model", hf, "--text", file, "--seqlen", "32"])
        XCTAssertEqual(t.status, 0, t.summary)
        let last = try XCTUnwrap(t.stdoutLines.last)
        XCTAssertTrue(last.hasPrefix("perplexity: "), t.summary)
        XCTAssertEqual(try XCTUnwrap(Double(last.dropFirst("perplexity: ".count))), ppl, accuracy: 1e-4)
        XCTAssertTrue(t.stdoutLines.contains("tokens: \(tokens)"), t.summary)
        XCTAssertTrue(t.stdoutLines.contains("windows: \(windows)"), t.summary)
        XCTAssertTrue(t.stdoutLines.contains("seqlen: 32"), t.summary)
        XCTAssertTrue(t.stdoutLines.contains { $0.hasPrefix("protocol: wanda") }, t.summary)
    }

    func testPerplexityLlamaCppAndMaxWindows() throws {
        let hf = try storiesHF
        let file = try writeText(Self.storyRows + Self.storyRows)
        let r = try WorkbenchCLI.run(["perplexity", "--model", hf, "--text", file, "--seqlen", "32", "--protocol", "llamacpp",
                                      "--max-windows", "2", "--json"])
        XCTAssertEqual(r.status, 0, r.summary)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
        XCTAssertEqual(obj["protocol"] as? String, "llamacpp")
        XCTAssertEqual(obj["windows"] as? Int, 2)
        XCTAssertEqual(obj["scored"] as? Int, 2 * (32 / 2 - 1))
        XCTAssertGreaterThan(try XCTUnwrap(obj["perplexity"] as? Double), 1)
    }

    // MARK: info

    func testInfoStories260K() throws {
        for model in [try storiesBin, try storiesHF] {
            let r = try WorkbenchCLI.run(["info", "--model", model])
            XCTAssertEqual(r.status, 0, r.summary)
            let lines = Set(r.stdoutLines)
            XCTAssertTrue(lines.contains("family: llama"), r.summary)
            // embedding 512·64 + norms 5·2·64 + 64 + attention 5·(2·64·64 + 2·32·64) + mlp 5·3·172·64 = 260032 (tied head).
            XCTAssertTrue(lines.contains("parameters: 260032 (0.3M)"), r.summary)
            XCTAssertTrue(lines.contains("layers: 5"), r.summary)
            XCTAssertTrue(lines.contains("heads: 8 (kv heads: 4, head dim: 8)"), r.summary)
            XCTAssertTrue(lines.contains("vocab: 512"), r.summary)
            XCTAssertTrue(lines.contains("context: 512"), r.summary)
            XCTAssertTrue(lines.contains("tied embeddings: true"), r.summary)
        }
    }

    func testInfoTinyOPT() throws {
        let r = try WorkbenchCLI.run(["info", "--model", try Fixtures.path("tiny-opt")])
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stdoutLines.contains("family: opt"), r.summary)
        XCTAssertTrue(r.stdoutLines.contains("tokenizer: none"), r.summary)
        let params = try XCTUnwrap(r.stdoutLines.first { $0.hasPrefix("parameters: ") })
        let m = try ModelLoader.load(try Fixtures.path("tiny-opt"), needTokenizer: false)
        XCTAssertTrue(params.hasPrefix("parameters: \(m.model.parameterCount) "), params)
    }

    func testInfoSmolLM2() throws {
        let gguf = try Assets.smolLM2()
        let r = try WorkbenchCLI.run(["info", "--model", gguf])
        XCTAssertEqual(r.status, 0, r.summary)
        let lines = Set(r.stdoutLines)
        XCTAssertTrue(lines.contains("family: llama"), r.summary)
        XCTAssertTrue(lines.contains("format: gguf"), r.summary)
        XCTAssertTrue(lines.contains("layers: 30"), r.summary)
        XCTAssertTrue(lines.contains("vocab: 49152"), r.summary)
        // 134,515,008 parameters (HF's SmolLM2-135M count, tied embeddings).
        XCTAssertTrue(lines.contains("parameters: 134515008 (134.5M)"), r.summary)
    }

    /// `bench --circuits` at a tiny size (the debug build stays fast; the issues' 128 prompts are the default): every
    /// row has seconds and a fraction of the sgemm peak around it that follows the documented FLOP count, the curve
    /// has the asked-for points, the edge count is the graph's and the patched point's metric is finite.
    func testBenchCircuitsRowsAtATinySize() throws {
        let hf = try Fixtures.path("tiny-llama-bias")
        let r = try WorkbenchCLI.run(["bench", "--model", hf, "--lengths", "16", "--tokens", "2", "--circuits", "--circuit-prompts", "4",
                                      "--circuit-points", "5", "--json"])
        XCTAssertEqual(r.status, 0, r.summary)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
        let c = try XCTUnwrap(obj["circuits"] as? [String: Any], r.summary)
        XCTAssertEqual(c["prompts"] as? Int, 4)
        XCTAssertTrue((c["prompt_source"] as? String ?? "").hasPrefix("random 16-token pairs: the model has no tokenizer"), "\(c)")
        let m = try Model.build(from: ModelLoader.loadHFDirectory(hf))
        let params = Double(m.linears.reduce(0) { $0 + $1.weight.count }), linear = 2 * params * 64   // 4 prompts × 16 tokens
        for g in ["heads", "neurons", "weights"] {
            let row = try XCTUnwrap(c["curve_\(g)"] as? [String: Any], g)
            let attribution = g == "weights" ? 3.0 : 2.0     // + the δW products only when weights are ranked
            XCTAssertEqual(row["attribution_forwards"] as? Double, attribution, g)
            XCTAssertEqual(row["target_seconds"] as? Double, g == "weights" ? 360 : 180, g)
            let secs = try XCTUnwrap(row["seconds"] as? Double), peak = try XCTUnwrap(row["sgemm_peak_gflops"] as? Double)
            let forwards = try XCTUnwrap(row["forwards"] as? Int), points = try XCTUnwrap(row["curve_points"] as? Int)
            XCTAssertEqual(points, 5, g)
            XCTAssertEqual(forwards, 2 + (points - 1) + (row["bisection_evaluations"] as! Int), g)
            XCTAssertEqual(row["bisection_tolerance"] as? Double, g == "heads" ? 0 : 0.01, g)
            XCTAssertGreaterThan(secs, 0)
            XCTAssertEqual(secs, (row["attribution_seconds"] as! Double) + (row["curve_seconds"] as! Double), accuracy: 1e-9)
            XCTAssertEqual(row["fraction_of_sgemm_peak"] as! Double, (attribution + Double(forwards)) * linear / secs / 1e9 / peak, accuracy: 1e-9, g)
            XCTAssertEqual(row["candidates"] as? Int, ["heads": 2 * 4, "neurons": 2 * 48, "weights": Int(params)][g], g)
            XCTAssertLessThanOrEqual(row["circuit_kept"] as? Int ?? -1, row["candidates"] as? Int ?? -2, g)
        }
        let edges = SplitForward(m).graph.edgeIndices.count
        for method in ["eap", "lrp", "eap-ig"] {
            let row = try XCTUnwrap(c["graph_\(method)"] as? [String: Any], method)
            XCTAssertEqual(row["edges"] as? Int, edges)
            XCTAssertEqual(row["target_seconds"] as? Double, method == "eap-ig" ? 300 : 60, method)
            XCTAssertGreaterThan(row["fraction_of_sgemm_peak"] as? Double ?? 0, 0)
        }
        let point = try XCTUnwrap(c["graph_point"] as? [String: Any])
        XCTAssertTrue((point["metric"] as? Double)?.isFinite ?? false)
        XCTAssertEqual(point["edges_in_circuit"] as? Int, max(1, edges / 20))
        XCTAssertEqual((c["sgemm_peak_measurements_gflops"] as? [Double])?.count, 2 * 7, "two per phase: 3 curves, 3 scorings, 1 point")
        XCTAssertTrue(r.stderr.contains("circuit curve, heads, lrp (abs-per-token)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("circuit curve, weights, lrp (abs-per-token)") && r.stderr.contains("target < 360 s"), r.stderr)
    }

    /// `bench --json --lrp`: every timed row reports a rate and a fraction of the
    /// larger of the two peak measurements bracketing it (and of the run's best),
    /// and the FLOP accounting matches the documented formula (prefill: 2·P·T +
    /// causal attention; full-logits and nll: the same + the lm_head GEMM; LRP: 3× linear + 3.5× attention).
    func testBenchJSONReportsFractionsOfThePeakAroundEachPhase() throws {
        let hf = try Assets.path("stories260K/hf")
        let r = try WorkbenchCLI.run(["bench", "--model", hf, "--lengths", "64,200", "--tokens", "8", "--lrp", "--json"])
        XCTAssertEqual(r.status, 0, r.summary)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
        let peak = try XCTUnwrap(obj["sgemm_peak_gflops"] as? Double)
        let peaks = try XCTUnwrap(obj["sgemm_peak_measurements_gflops"] as? [Double])
        XCTAssertEqual(peaks.count, 16, "two per phase: prefill 64, 200; full-logits and nll at 64, then at 200; lrp 64, 200")
        XCTAssertEqual(peak, peaks.max()!)
        let m = try Model.build(from: ModelLoader.loadHFDirectory(hf))
        let c = m.config, params = Double(m.linears.reduce(0) { $0 + $1.weight.count })
        // Phases in run order: (JSON key, tokens, linear multiple, attention multiple, lm_head counted).
        let order: [(String, Int, Double, Double, Bool)] = [
            ("prefill", 64, 1, 1, false), ("prefill", 200, 1, 1, false),
            ("full_logits", 64, 1, 1, true), ("nll", 64, 1, 1, true), ("full_logits", 200, 1, 1, true), ("nll", 200, 1, 1, true),
            ("lrp", 64, 3, 3.5, false), ("lrp", 200, 3, 3.5, false)]
        for kind in ["prefill", "full_logits", "nll", "lrp"] {
            let rows = try XCTUnwrap(obj[kind] as? [[String: Any]], kind)
            XCTAssertEqual(rows.compactMap { $0["tokens"] as? Int }, [64, 200], kind)
        }
        XCTAssertNotNil((obj["outputs"] as? [String: String])?["full-logits"], "each row names its output")
        for (phase, (kind, tokens, linearK, attnK, head)) in order.enumerated() {
            let row = try XCTUnwrap((obj[kind] as? [[String: Any]])?.first { $0["tokens"] as? Int == tokens }, kind)
            let t = Double(tokens), secs = try XCTUnwrap(row["seconds"] as? Double)
            let attn = Double(c.nLayers * c.nHeads * c.headDim) * 4 * t * (t + 1) / 2
            let flops = linearK * 2 * params * t + attnK * attn + (head ? 2 * t * Double(c.dModel * c.vocabSize) : 0)
            // The phase's bound is the larger of its own pair of measurements, in run order.
            let own = try XCTUnwrap(row["sgemm_peak_gflops"] as? Double)
            XCTAssertEqual(own, max(peaks[2 * phase], peaks[2 * phase + 1]), kind)
            XCTAssertEqual(try XCTUnwrap(row["gflops"] as? Double), flops / secs / 1e9, accuracy: 1e-9 * flops / secs, kind)
            XCTAssertEqual(try XCTUnwrap(row["fraction_of_sgemm_peak"] as? Double), flops / secs / 1e9 / own, accuracy: 1e-9, kind)
            XCTAssertEqual(try XCTUnwrap(row["fraction_of_run_sgemm_peak"] as? Double), flops / secs / 1e9 / peak, accuracy: 1e-9, kind)
            XCTAssertEqual(try XCTUnwrap(row["tokens_per_s"] as? Double), t / secs, accuracy: 1e-6 * t / secs, kind)
        }
        let decode = try XCTUnwrap(obj["decode"] as? [String: Any])
        let rate = try XCTUnwrap(decode["tokens_per_s"] as? Double)
        XCTAssertGreaterThan(rate, 0)
        let bws = try XCTUnwrap(obj["bandwidth_measurements_gbs"] as? [Double])
        XCTAssertEqual(bws.count, 2)
        let bw = try XCTUnwrap(decode["bandwidth_gbs"] as? Double)
        XCTAssertEqual(bw, bws.max()!)
        let bytes = Double(try XCTUnwrap(decode["weight_bytes"] as? Int))
        XCTAssertEqual(try XCTUnwrap(decode["fraction_of_bandwidth_bound"] as? Double), rate * bytes / (bw * 1e9), accuracy: 1e-9)
        XCTAssertTrue(r.stderr.contains("machine: sgemm peak"), r.stderr)
        // The BLAS it ran with, and the peak against the vector-width estimate.
        for prefix in ["blas library: ", "blas config: ", "blas core: ", "blas threads: ", "sgemm peak: ", "output of full-logits: "] {
            XCTAssertTrue(r.stderrLines.contains { $0.hasPrefix(prefix) }, prefix + "\n" + r.stderr)
        }
    }

    func testBenchRunsReportEveryRunAndTheirSpread() throws {
        let hf = try Assets.path("stories260K/hf")
        let r = try WorkbenchCLI.run(["bench", "--model", hf, "--lengths", "32", "--tokens", "4", "--runs", "3", "--json"])
        XCTAssertEqual(r.status, 0, r.summary)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.summary)
        let runs = try XCTUnwrap(obj["runs"] as? [[String: Any]])
        XCTAssertEqual(runs.count, 3)
        let fractions = try runs.map { run -> Double in
            let row = try XCTUnwrap((run["prefill"] as? [[String: Any]])?.first)
            return try XCTUnwrap(row["fraction_of_sgemm_peak"] as? Double)
        }
        let summary = try XCTUnwrap(obj["summary"] as? [String: Any])
        let prefill = try XCTUnwrap((summary["prefill"] as? [[String: Any]])?.first)
        XCTAssertEqual(prefill["tokens"] as? Int, 32)
        let spread = try XCTUnwrap(prefill["fraction_of_sgemm_peak"] as? [String: Double])
        XCTAssertEqual(spread["min"], fractions.min())
        XCTAssertEqual(spread["max"], fractions.max())
        XCTAssertEqual(spread["median"], fractions.sorted()[1])
        let decodeRates = runs.compactMap { ($0["decode"] as? [String: Any])?["tokens_per_s"] as? Double }
        let decode = try XCTUnwrap((summary["decode"] as? [String: Any])?["tokens_per_s"] as? [String: Double])
        XCTAssertEqual(decode["median"], decodeRates.sorted()[1])
        XCTAssertTrue(r.stderr.contains("over 3 runs:"), r.stderr)
        XCTAssertNotNil(obj["load_seconds"] as? Double)
        let bad = try WorkbenchCLI.run(["bench", "--model", hf, "--runs", "0"])
        XCTAssertEqual(bad.status, 64, bad.summary)
    }
}
