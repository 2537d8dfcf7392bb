import XCTest
@testable import Circuits
import Tokenize
import Transformer
import TestSupport

// MARK: - Written checkpoints: round trip, formats, tokenizer export, safety

final class CheckpointWriterTests: XCTestCase {
    let tokens = Fixtures.tokens

    /// Prunes `fixture` with magnitude row 50% into `out` and returns the in-memory pruned model.
    @discardableResult
    func prune(_ input: String, to out: String, format: WeightFormat = .dense, scheme: PruneScheme = .row,
               amount: PruneAmount? = .fraction(0.5), force: Bool = false) throws -> PruneOutcome {
        try PrunePipeline.run(PruneOptions(model: input, scores: .method(.magnitude, nil),
                                           spec: try PruneSpec(scheme: scheme, amount: amount), out: out, format: format, force: force))
    }

    func prunedInMemory(_ input: String) throws -> Model {
        let m = try PruneTestKit.load(input)
        try Pruner.mask(m, scores: ScoreMap.magnitude(m), spec: try PruneSpec(scheme: .row, amount: .fraction(0.5))).apply(to: m)
        return m
    }

    func testDenseAndBitmaskRoundTripGiveIdenticalLogits() throws {
        let tmp = try Scratch.dir(self)
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let input = try Fixtures.path(name)
            let expected = try prunedInMemory(input).forward(tokens)
            var sizes: [WeightFormat: Int] = [:]
            for format in WeightFormat.allCases {
                let out = tmp.appendingPathComponent("\(name)-\(format.rawValue)").path
                let o = try prune(input, to: out, format: format)
                let loaded = try ModelLoader.load(out, needTokenizer: false)
                XCTAssertEqual(loaded.model.forward(tokens), expected, "\(name) \(format.rawValue): save → load → identical logits")
                XCTAssertEqual(SparsityReport.measure(loaded.model).sparsity, 0.5, accuracy: 1e-12)
                XCTAssertEqual(o.written.modelBytes, PruneTestKit.fileSize(out + "/" + format.weightsFileName))
                sizes[format] = o.written.modelBytes
                let st = try SafetensorsFile(path: out + "/" + format.weightsFileName)
                XCTAssertEqual(st.metadata["format"], "pt")
                let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as? [String: Any])
                if format == .dense {
                    XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/config.json")),
                                   try Data(contentsOf: URL(fileURLWithPath: input + "/config.json")), "HF config copied verbatim")
                    XCTAssertTrue(st.entries.values.allSatisfy { $0.dtype == .F32 })
                    // The index names model.safetensors for every tensor (and so never mask.safetensors).
                    let index = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors.index.json"))) as? [String: Any])
                    let map = try XCTUnwrap(index["weight_map"] as? [String: String])
                    XCTAssertEqual(Set(map.keys), Set(st.names))
                    XCTAssertEqual(Set(map.values), ["model.safetensors"])
                    XCTAssertEqual((index["metadata"] as? [String: Any])?["total_size"] as? Int,
                                   st.entries.values.reduce(0) { $0 + $1.byteCount })
                } else {
                    // Not model.safetensors: a loader without a sparse decompressor must find no weights at all.
                    XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
                    XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model.safetensors.index.json"))
                    let q = try XCTUnwrap(config["quantization_config"] as? [String: Any])
                    XCTAssertEqual(q["quant_method"] as? String, "compressed-tensors")
                    XCTAssertNil(q["format"], "no quantization format: compressed-tensors ≤ 0.14 would require config_groups")
                    let sc = try XCTUnwrap(q["sparsity_config"] as? [String: Any])
                    XCTAssertEqual(sc["format"] as? String, "sparse-bitmask")
                    XCTAssertEqual(sc["sparsity_structure"] as? String, "unstructured")
                    XCTAssertEqual((sc["targets"] as? [String])?.count, loaded.model.linears.count)
                    XCTAssertNotNil(sc["global_sparsity"] as? Double)
                    let firstLinear = CheckpointWriter.moduleName(loaded.model.linears[0].name)
                    for suffix in [".shape", ".compressed", ".bitmask", ".row_offsets"] {
                        XCTAssertNotNil(st.entries[firstLinear + suffix], firstLinear + suffix)
                    }
                    XCTAssertNil(st.entries[loaded.model.linears[0].name])
                }
            }
            // A sparse-bitmask input re-written dense must lose its compressed-tensors block.
            let again = tmp.appendingPathComponent("\(name)-again").path
            try prune(tmp.appendingPathComponent("\(name)-\(WeightFormat.sparseBitmask.rawValue)").path, to: again, amount: .fraction(0))
            let cfg = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: again + "/config.json"))) as? [String: Any])
            XCTAssertNil(cfg["quantization_config"], "stale compression block dropped")
            XCTAssertEqual(try ModelLoader.load(again, needTokenizer: false).model.forward(tokens), expected)
            let dense = try XCTUnwrap(sizes[.dense]), bitmask = try XCTUnwrap(sizes[.sparseBitmask])
            print("\(name): model.safetensors dense \(dense) B, sparse-bitmask \(bitmask) B at 50%")
            XCTAssertLessThan(bitmask, dense, "sparse-bitmask is smaller at 50%")
        }
    }

    func testSidecarsMaskAndPruningJSON() throws {
        let tmp = try Scratch.dir(self)
        let input = try Fixtures.path("tiny-opt"), out = tmp.appendingPathComponent("opt").path
        try prune(input, to: out, scheme: .global, amount: .count(1234))
        let mask = try PruneMask.load(path: out + "/mask.safetensors")
        XCTAssertEqual(mask.pruned, 1234)
        let fresh = try PruneTestKit.load(input)
        try mask.apply(to: fresh)
        XCTAssertEqual(fresh.forward(tokens), try PruneTestKit.load(out).forward(tokens), "mask.safetensors reproduces the checkpoint")
        let st = try SafetensorsFile(path: out + "/mask.safetensors")
        XCTAssertTrue(st.entries.values.allSatisfy { $0.dtype == .U8 })
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/pruning.json"))) as? [String: Any])
        XCTAssertEqual(j["scheme"] as? String, "global")
        XCTAssertEqual(j["method"] as? String, "magnitude")
        XCTAssertEqual(j["rank"] as? String, "abs")
        XCTAssertEqual((j["target"] as? [String: Any])?["count"] as? Int, 1234)
        let achieved = try XCTUnwrap(j["achieved"] as? [String: Any])
        XCTAssertEqual((achieved["targeted_weights"] as? [String: Any])?["pruned"] as? Int, 1234)
        XCTAssertEqual((achieved["tensors"] as? [Any])?.count, 12)
        XCTAssertNotNil(j["timestamp"] as? String); XCTAssertNotNil(j["tool"] as? String)
        XCTAssertNotNil((j["scores"] as? [String: Any])?["metadata"])
    }

    func testGGUFTokenizerExportTokenizesLikeTheGGUF() throws {
        let path = try Assets.smolLM2()
        let g = try GGUFFile(path: path)
        let toks = try XCTUnwrap(g.strings("tokenizer.ggml.tokens")), merges = try XCTUnwrap(g.strings("tokenizer.ggml.merges"))
        guard case .intArray(let a)? = g.metadata["tokenizer.ggml.token_type"] else { return XCTFail("no token types") }
        let types = a.map { Int32(truncatingIfNeeded: $0) }
        let tmp = try Scratch.dir(self)
        let file = tmp.appendingPathComponent("tokenizer.json").path
        try CheckpointWriter.tokenizerJSON(tokens: toks, merges: merges, tokenTypes: types, pre: g.string("tokenizer.ggml.pre"))
            .write(to: URL(fileURLWithPath: file))
        let hints = TokenizerHints(bosId: 1, eosId: 2, addBOS: false)
        let fromGGUF = try makeTokenizer(.ggufBPE(tokens: toks, merges: merges, tokenTypes: types, pre: g.string("tokenizer.ggml.pre")), hints: hints)
        let fromJSON = try makeTokenizer(.tokenizerJSON(path: file), hints: hints)
        for text in ["Hello, world!", "The year 2024 had 366 days.", "<|im_start|>user\nHi<|im_end|>", "  spaces\tand\ttabs  ", "naïve café 東京"] {
            XCTAssertEqual(try fromJSON.encode(text), try fromGGUF.encode(text), text)
            XCTAssertEqual(fromJSON.decode(try fromGGUF.encode(text)), fromGGUF.decode(try fromGGUF.encode(text)))
        }
    }

    func testLlama2CInputBecomesAnHFDirectoryWithItsTokenizer() throws {
        let bin = try Assets.path("stories260K/stories260K.bin")
        let tmp = try Scratch.dir(self)
        let out = tmp.appendingPathComponent("s260").path
        try prune(bin, to: out, amount: .fraction(0))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/tokenizer.bin"))
        let a = try ModelLoader.load(bin), b = try ModelLoader.load(out)
        let text = "Once upon a time, there was a little girl."
        let ids = try a.requireTokenizer().encode(text)
        XCTAssertEqual(try b.requireTokenizer().encode(text), ids)
        XCTAssertLessThanOrEqual(PruneTestKit.maxAbsDiff(a.model.forward(ids), b.model.forward(ids)), 1e-5, "sparsity 0 round trip")
        XCTAssertEqual(b.model.config, a.model.config)
    }

    func testExistingOutputNeedsForceAndOnlyReplacesCheckpoints() throws {
        let tmp = try Scratch.dir(self)
        let input = try Fixtures.path("tiny-opt"), out = tmp.appendingPathComponent("o").path
        try prune(input, to: out)
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors"))
        XCTAssertThrowsError(try prune(input, to: out, amount: .fraction(0.25))) {
            XCTAssertEqual($0 as? CheckpointWriteError, .outputExists(path: out))
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/model.safetensors")), before, "untouched without --force")
        try prune(input, to: out, amount: .fraction(0.25), force: true)
        XCTAssertEqual(SparsityReport.measure(try PruneTestKit.load(out)).sparsity, 0.25, accuracy: 1e-9)
        // A non-empty directory that is not a checkpoint is never replaced, even with --force.
        let precious = tmp.appendingPathComponent("precious")
        try FileManager.default.createDirectory(at: precious, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: precious.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try prune(input, to: precious.path, force: true)) {
            guard case .refusingToReplace? = $0 as? CheckpointWriteError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try String(contentsOf: precious.appendingPathComponent("notes.txt"), encoding: .utf8), "keep me")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.hasPrefix(".") }, [], "no temp dirs left")
    }

    func testOutputInsideOrContainingTheInputIsRefused() throws {
        let tmp = try Scratch.dir(self)
        let input = tmp.appendingPathComponent("model")
        try FileManager.default.copyItem(atPath: try Fixtures.path("tiny-opt"), toPath: input.path)
        let listing = try FileManager.default.contentsOfDirectory(atPath: input.path).sorted()
        XCTAssertThrowsError(try prune(input.path, to: input.appendingPathComponent("pruned").path)) {
            guard case .outputInsideInput? = $0 as? CheckpointWriteError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try prune(input.path, to: input.path + "/./sub/../pruned2", force: true))
        XCTAssertThrowsError(try prune(input.path, to: input.path, force: true)) {
            XCTAssertEqual($0 as? CheckpointWriteError, .outputIsInput(path: input.path))
        }
        XCTAssertThrowsError(try prune(input.path, to: tmp.path, force: true)) {
            guard case .inputInsideOutput? = $0 as? CheckpointWriteError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: input.path).sorted(), listing, "input untouched")
    }

    func testGeneratedConfigForEveryFamilyLoadsBack() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let c = try PruneTestKit.load(try Fixtures.path(name)).config
            let data = try JSONSerialization.data(withJSONObject: CheckpointWriter.hfConfig(c))
            let tmp = try Scratch.dir(self)
            try data.write(to: tmp.appendingPathComponent("config.json"))
            // Reuse the fixture's weights under the generated config.
            try FileManager.default.copyItem(atPath: try Fixtures.path(name) + "/model.safetensors",
                                             toPath: tmp.appendingPathComponent("model.safetensors").path)
            XCTAssertEqual(try PruneTestKit.load(tmp.path).config, c, name)
        }
    }
}

extension PruneTestKit {
    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? -1
    }
}
