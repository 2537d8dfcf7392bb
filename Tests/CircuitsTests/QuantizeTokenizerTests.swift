import XCTest
import Transformer
import TestSupport
@testable import Tokenize
@testable import Circuits

/// `quantize` from an HF directory writes the `tokenizer.ggml.*` keys llama.cpp's converter writes for a byte-level
/// BPE: checked against the keys llama.cpp's converter wrote into the SmolLM2 GGUF (through an HF tokenizer.json made
/// from them), and end to end: HF directory → GGUF → our loader tokenizes exactly as the HF directory does.
final class QuantizeTokenizerTests: XCTestCase {
    /// SmolLM2 GGUF keys → tokenizer.json → our arrays: the same tokens, types, merges and pre as the original file.
    func testArraysReproduceLlamaCppConverterKeys() throws {
        let g = try GGUFFile(path: try Assets.smolLM2())
        let tokens = try XCTUnwrap(g.strings("tokenizer.ggml.tokens")), merges = try XCTUnwrap(g.strings("tokenizer.ggml.merges"))
        guard case .intArray(let t64)? = g.metadata["tokenizer.ggml.token_type"] else { return XCTFail("no token_type") }
        let types = t64.map { Int32($0) }
        let pre = g.string("tokenizer.ggml.pre")
        let dir = try Scratch.dir(self), path = dir.appendingPathComponent("tokenizer.json").path
        try CheckpointWriter.tokenizerJSON(tokens: tokens, merges: merges, tokenTypes: types, pre: pre).write(to: URL(fileURLWithPath: path))
        let a = try ByteLevelBPETokenizer(tokenizerJSONPath: path).ggufArrays(vocabularySize: tokens.count)
        XCTAssertEqual(a.pre, pre)
        XCTAssertEqual(a.tokens.count, tokens.count)
        XCTAssertEqual(a.tokens, tokens)
        XCTAssertEqual(a.tokenTypes, types)
        XCTAssertEqual(a.merges.count, merges.count)
        XCTAssertEqual(a.merges, merges)
    }

    /// A tiny Llama HF directory with a 256-byte byte-level tokenizer: the quantised GGUF loads with a tokenizer that
    /// encodes like the directory's; padding ids beyond the tokenizer are [PAD<id>] with type 5.
    func testHFDirectoryGGUFCarriesItsTokenizer() throws {
        let src = try Fixtures.path("tiny-llama-bias"), dir = try Scratch.dir(self)
        let hf = dir.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: hf, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: src + "/" + f, toPath: hf.appendingPathComponent(f).path)
        }
        // 250 byte tokens + 2 merges + one special added token; the model's vocabulary is 256 (ids 251–255 unused).
        var tokens = (0..<250).map { ByteUnicode.encode([UInt8($0)]) }
        let h = ByteUnicode.encode([UInt8(ascii: "h")]), e = ByteUnicode.encode([UInt8(ascii: "e")])
        tokens.append(h + e)
        let merges = [h + " " + e]
        var types = [Int32](repeating: 1, count: tokens.count)
        tokens.append("<|end|>"); types.append(3)
        try CheckpointWriter.tokenizerJSON(tokens: tokens, merges: merges, tokenTypes: types, pre: nil)
            .write(to: hf.appendingPathComponent("tokenizer.json"))
        let ck = try ModelLoader.checkpoint(hf.path)
        let meta = try GGUFLlamaExport.tokenizerMetadata(ck)
        XCTAssertNil(meta.reason)
        let out = dir.appendingPathComponent("q.gguf").path
        _ = try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 32, types: [.f32], importance: .plain, weightedRounding: false),
                                           carry: meta.items, out: out)
        let g = try GGUFFile(path: out)
        XCTAssertEqual(g.string("tokenizer.ggml.model"), "gpt2"); XCTAssertEqual(g.string("tokenizer.ggml.pre"), "gpt-2")
        let written = try XCTUnwrap(g.strings("tokenizer.ggml.tokens"))
        XCTAssertEqual(written.count, 256); XCTAssertEqual(Array(written.prefix(252)), tokens); XCTAssertEqual(written[253], "[PAD253]")
        guard case .intArray(let wt)? = g.metadata["tokenizer.ggml.token_type"] else { return XCTFail("no token_type") }
        XCTAssertEqual(wt[251], 3); XCTAssertEqual(wt[255], 5); XCTAssertEqual(wt[0], 1)
        XCTAssertEqual(g.strings("tokenizer.ggml.merges"), merges)
        let fromHF = try ModelLoader.load(hf.path).tokenizer, fromGGUF = try ModelLoader.load(out).tokenizer
        let text = "hello there <|end|> hehe"
        XCTAssertEqual(try XCTUnwrap(fromGGUF).encode(text), try XCTUnwrap(fromHF).encode(text))
        XCTAssertTrue(try XCTUnwrap(fromGGUF).encode("he").contains(250), "the merge applies")
    }
}
