import XCTest
@testable import Circuits
import Tokenize
import Transformer
import TestSupport

// MARK: - End to end: scores files, on-the-fly Wanda, perplexity, bad input writes nothing

final class PrunePipelineTests: XCTestCase {

    func options(_ model: String, _ scores: ScoreSource, out: String, scheme: PruneScheme = .row,
                 amount: PruneAmount? = .fraction(0.5), layers: String? = nil) throws -> PruneOptions {
        PruneOptions(model: model, scores: scores, spec: try PruneSpec(scheme: scheme, amount: amount, layers: layers), out: out)
    }

    /// Runs `body`, expects it to throw, and checks the parent of `out` gained no entries.
    func assertFailsWritingNothing(_ out: String, _ body: () throws -> Void, _ check: (Error) -> Void,
                                   file: StaticString = #filePath, line: UInt = #line) {
        let parent = URL(fileURLWithPath: out).deletingLastPathComponent().path
        let before = (try? FileManager.default.contentsOfDirectory(atPath: parent).sorted()) ?? []
        XCTAssertThrowsError(try body(), file: file, line: line) { check($0) }
        let after = (try? FileManager.default.contentsOfDirectory(atPath: parent).sorted()) ?? []
        XCTAssertEqual(after, before, "nothing written", file: file, line: line)
    }

    func testScoresFileRoundTripAndProvenance() throws {
        let tmp = try Scratch.dir(self)
        let input = try Fixtures.path("tiny-llama-bias")
        let model = try PruneTestKit.load(input)
        let scoresPath = tmp.appendingPathComponent("relevance.safetensors").path
        try PruneTestKit.writeScores(PruneTestKit.scores(model, seed: 4), to: scoresPath,
                                    metadata: ["method": "lrp", "prompts_sha256": "abc123", "samples": "8"])
        let out = tmp.appendingPathComponent("pruned").path
        let o = try PrunePipeline.run(try options(input, .file(scoresPath), out: out, scheme: .global, amount: .fraction(0.3)))
        XCTAssertEqual(o.mask.pruned, Int(Double(o.mask.count) * 0.3))
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/pruning.json"))) as? [String: Any])
        XCTAssertEqual(j["method"] as? String, "lrp")
        let s = try XCTUnwrap(j["scores"] as? [String: Any])
        XCTAssertEqual(s["source"] as? String, scoresPath)
        XCTAssertEqual(s["prompts_hash"] as? String, "abc123")
        XCTAssertEqual((s["metadata"] as? [String: String])?["samples"], "8")
    }

    func testBadInputsFailClearlyAndWriteNothing() throws {
        let tmp = try Scratch.dir(self)
        let llama = try Fixtures.path("tiny-llama-bias"), opt = try Fixtures.path("tiny-opt")
        let optScores = tmp.appendingPathComponent("opt-scores.safetensors").path
        try PruneTestKit.writeScores(PruneTestKit.scores(try PruneTestKit.load(opt), seed: 1), to: optScores)
        let out = tmp.appendingPathComponent("out").path
        // Scores written for another model: the error names the tensor.
        assertFailsWritingNothing(out, { try PrunePipeline.run(try options(llama, .file(optScores), out: out)) }) {
            guard case .unknownScoreTensor(let t, let f)? = $0 as? PruneError else { return XCTFail("\($0)") }
            XCTAssertTrue(t.hasPrefix("model.decoder.layers."), t); XCTAssertEqual(f, optScores)
            XCTAssertTrue($0.localizedDescription.contains(t))
        }
        // A regex that matches nothing.
        assertFailsWritingNothing(out, { try PrunePipeline.run(try options(llama, .method(.magnitude, nil), out: out, layers: "fc1")) }) {
            guard case .noLayersMatched? = $0 as? PruneError else { return XCTFail("\($0)") }
        }
        // Missing score file.
        assertFailsWritingNothing(out, { try PrunePipeline.run(try options(llama, .file(tmp.path + "/nope.safetensors"), out: out)) }) {
            XCTAssertEqual($0 as? ModelError, .fileNotFound(path: tmp.path + "/nope.safetensors"))
        }
        // On-the-fly methods without calibration data are usage errors.
        assertFailsWritingNothing(out, { try PrunePipeline.run(try options(llama, .method(.wanda, nil), out: out)) }) {
            XCTAssertTrue(($0 as? PruneError)?.isUsageError == true, "\($0)")
        }
        // Data for a method that reads none, and a method that scores no weights.
        assertFailsWritingNothing(out, { try PrunePipeline.run(try options(llama, .method(.magnitude, .prompts(path: "p.txt", first: nil)), out: out)) }) {
            XCTAssertTrue(($0 as? PruneError)?.isUsageError == true, "\($0)")
        }
        assertFailsWritingNothing(out, { try PrunePipeline.run(try options(llama, .method(.activation, .prompts(path: "p.txt", first: nil)), out: out)) }) {
            XCTAssertTrue(($0 as? PruneError)?.isUsageError == true, "\($0)")
        }
        // N:M on a matrix whose width is not a multiple of M.
        assertFailsWritingNothing(out, {
            try PrunePipeline.run(try options(llama, .method(.magnitude, nil), out: out, scheme: .nm(n: 4, m: 32), amount: nil))
        }) { XCTAssertNotNil($0 as? PruneError) }
    }

    func testOnTheFlyWandaEqualsHandComputation() throws {
        let dir = try Assets.path("stories260K/hf")
        let tmp = try Scratch.dir(self)
        let prompts = tmp.appendingPathComponent("p.txt")
        let texts = ["Once upon a time there was a cat.", "The little dog ran to the park and played."]
        try texts.joined(separator: "\n").write(to: prompts, atomically: true, encoding: .utf8)
        let (model, source) = try CheckpointSourceInfo.load(dir)
        let scores = try OnTheFlyScores.compute(method: .wanda, calibration: .prompts(path: prompts.path, first: nil),
                                                aggregation: .absPerToken, model: model, source: source, log: { _ in })
        XCTAssertEqual(scores.metadata["method"], "wanda")
        XCTAssertNotNil(scores.promptsHash)
        // Hand computation: S_ij = |W_ij| · sqrt(Σ_t x_tj²) over every token of every prompt.
        let tok = try ModelLoader.load(dir).requireTokenizer()
        let c = model.config
        var sumsq = [[String: [Double]]](repeating: [:], count: c.nLayers)
        for text in texts {
            let ids = try tok.encode(text)
            let seg = [Segment(rowStart: 0, count: ids.count, pos0: 0, cache: KVCache(config: c, capacity: ids.count))]
            var x = model.embedRows(ids, segments: seg)
            let bb = BlockBuffers(config: c, rows: ids.count)
            for l in 0..<c.nLayers {
                model.runBlock(l, &x, segments: seg, buffers: bb)
                for (site, v, w) in [("in", bb.normed1, c.dModel), ("z", bb.z, c.qDim), ("mlp", bb.normed2, c.dModel), ("post", bb.post, c.dFF)] {
                    var acc = sumsq[l][site] ?? [Double](repeating: 0, count: w)
                    for t in 0..<ids.count { for j in 0..<w { acc[j] += Double(v[t * w + j]) * Double(v[t * w + j]) } }
                    sumsq[l][site] = acc
                }
            }
        }
        for b in model.blocks {
            for (lin, site) in [(b.q, "in"), (b.k, "in"), (b.v, "in"), (b.o, "z"), (b.gate!, "mlp"), (b.up, "mlp"), (b.down, "post")] {
                let got = try scores.weightScores(lin), norm = try XCTUnwrap(sumsq[b.index][site]).map { $0.squareRoot() }
                for i in stride(from: 0, to: lin.weight.count, by: 97) {
                    let want = Double(abs(lin.weight[i])) * norm[i % lin.inDim]
                    XCTAssertEqual(Double(got[i]), want, accuracy: 1e-5 * max(1, want), "\(lin.name)[\(i)]")
                }
            }
        }
    }

    func testMagnitudeRowPruningRaisesStories260KPerplexity() throws {
        let dir = try Assets.path("stories260K/hf")
        let wiki = try Assets.path("eval/wikitext-2-raw/wiki.test.raw")
        let tmp = try Scratch.dir(self)
        let out = tmp.appendingPathComponent("s260-mag50").path
        try PrunePipeline.run(try options(dir, .method(.magnitude, nil), out: out))
        let raw = String(decoding: try Data(contentsOf: URL(fileURLWithPath: wiki)).prefix(20_000), as: UTF8.self)
        func ppl(_ path: String) throws -> Double {
            let m = try ModelLoader.load(path)
            let tok = try m.requireTokenizer()
            let ids = try tok.encode(joinRawTextRows(raw))
            return try m.model.perplexity(tokens: ids, seqlen: 128, protocol: .wanda, maxWindows: 4, bos: tok.bosId).perplexity
        }
        let dense = try ppl(dir), pruned = try ppl(out)
        print(String(format: "stories260K WikiText-2 (4 × 128 tokens): dense %.2f → magnitude 50%% row %.2f", dense, pruned))
        XCTAssertGreaterThan(pruned, dense, "pruning half the weights must raise perplexity")
    }
}
