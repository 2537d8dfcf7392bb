import Foundation
import XCTest
@testable import Tokenize
import TestSupport

/// tokenizer.json / GGUF constructors and bad inputs for the byte-level BPE.
final class ByteLevelLoadingTests: XCTestCase {
    private struct GPT2Files {
        let vocabPath: String, mergesPath: String
        let vocab: [String: Int]
        let merges: [String]
    }

    private func gpt2Files() throws -> GPT2Files {
        let v = try Assets.path("tokenizers/gpt2/encoder.json"), m = try Assets.path("tokenizers/gpt2/vocab.bpe")
        let vocab = try JSONDecoder().decode([String: Int].self, from: try Data(contentsOf: URL(fileURLWithPath: v)))
        let lines = String(decoding: try Data(contentsOf: URL(fileURLWithPath: m)), as: UTF8.self)
            .split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#version") && !$0.isEmpty }
        return GPT2Files(vocabPath: v, mergesPath: m, vocab: vocab, merges: lines)
    }

    /// Writes a GPT-2 `tokenizer.json` in HF layout.
    private func writeTokenizerJSON(_ f: GPT2Files, mergesAsArrays: Bool, preTokenizer: [String: Any],
                                    postProcessor: Any = NSNull(), to dir: URL) throws -> String {
        let merges: [Any] = mergesAsArrays
            ? f.merges.map { $0.split(separator: " ").map(String.init) } : f.merges
        let root: [String: Any] = [
            "version": "1.0",
            "added_tokens": [["id": 50256, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": true, "special": true]],
            "normalizer": NSNull(),
            "pre_tokenizer": preTokenizer,
            "post_processor": postProcessor,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "vocab": f.vocab, "merges": merges],
        ]
        let url = dir.appendingPathComponent("tokenizer-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: root).write(to: url)
        return url.path
    }

    private let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false,
                                           "trim_offsets": true, "use_regex": true]

    // MARK: - tokenizer.json

    func testTokenizerJSONMatchesVocabMerges() throws {
        let f = try gpt2Files(), dir = try Scratch.dir(self)
        let reference = try ByteLevelBPETokenizer(vocabPath: f.vocabPath, mergesPath: f.mergesPath)
        for arrays in [false, true] {
            let path = try writeTokenizerJSON(f, mergesAsArrays: arrays, preTokenizer: byteLevel, to: dir)
            let t = try ByteLevelBPETokenizer(tokenizerJSONPath: path)
            XCTAssertEqual(t.preTokenizer, .gpt2)
            XCTAssertEqual(t.vocabSize, 50257)
            XCTAssertFalse(t.addsBOS)
            XCTAssertTrue(t.isControl(50256))
            for s in roundTripStrings + ["x<|endoftext|>y"] {
                XCTAssertEqual(try t.encode(s), try reference.encode(s), "merges as arrays: \(arrays), \(s.debugDescription)")
            }
        }
    }

    func testTokenizerJSONDigitsSelectsSmolLMAndTemplateBOS() throws {
        let f = try gpt2Files(), dir = try Scratch.dir(self)
        let pre: [String: Any] = ["type": "Sequence", "pretokenizers": [
            ["type": "Digits", "individual_digits": true], byteLevel]]
        let post: [String: Any] = [
            "type": "TemplateProcessing",
            "single": [["SpecialToken": ["id": "<|endoftext|>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
            "pair": [], "special_tokens": ["<|endoftext|>": ["id": "<|endoftext|>", "ids": [50256], "tokens": ["<|endoftext|>"]]],
        ]
        let t = try ByteLevelBPETokenizer(tokenizerJSONPath:
            try writeTokenizerJSON(f, mergesAsArrays: true, preTokenizer: pre, postProcessor: post, to: dir))
        XCTAssertEqual(t.preTokenizer, .smollm)
        XCTAssertTrue(t.addsBOS)
        XCTAssertEqual(try t.encode("x 12"), [50256, 87, 220, 16, 17])
    }

    func testTokenizerJSONBadInputs() throws {
        let dir = try Scratch.dir(self)
        let cases: [(String, String)] = [
            ("notjson.json", "this is not json"),
            ("nomodel.json", "{\"added_tokens\": []}"),
            ("unigram.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}, \"decoder\": {\"type\": \"ByteLevel\"}}"),
            ("metaspace.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": \"Metaspace\"}}"),
            ("badmerge.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [42]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}"),
        ]
        for (name, body) in cases {
            let url = dir.appendingPathComponent(name)
            try Data(body.utf8).write(to: url)
            XCTAssertThrowsError(try ByteLevelBPETokenizer(tokenizerJSONPath: url.path), name) { error in
                guard case .invalidFile(let path, _)? = error as? TokenizerError else {
                    return XCTFail("\(name): unexpected error \(error)")
                }
                XCTAssertEqual(path, url.path)
            }
        }
    }

    // MARK: - GGUF arrays

    func testGGUFArrays() throws {
        let f = try gpt2Files()
        var tokens = [String](repeating: "", count: 50257)
        for (tok, id) in f.vocab { tokens[id] = tok }
        tokens.append("<|user|>")
        var types = [Int32](repeating: 1, count: tokens.count)
        types[50256] = 3
        types[50257] = 4
        let t = try ByteLevelBPETokenizer(ggufTokens: tokens, merges: f.merges, tokenTypes: types, pre: "smollm")
        XCTAssertEqual(t.preTokenizer, .smollm)
        XCTAssertEqual(t.vocabSize, 50258)
        XCTAssertFalse(t.addsBOS)
        let ids = try t.encode("hi<|user|>12<|endoftext|>")
        XCTAssertEqual(ids, [5303, 50257, 16, 17, 50256])
        XCTAssertEqual(t.decode(ids), "hi<|user|>12")  // control dropped, user-defined kept
        let plain = try ByteLevelBPETokenizer(ggufTokens: tokens, merges: f.merges, tokenTypes: types, pre: "unknown-pre")
        XCTAssertEqual(plain.preTokenizer, .gpt2)
        XCTAssertEqual(try plain.encode("Hello, my dog is cute"), [15496, 11, 616, 3290, 318, 13779])
    }

    func testGGUFBadInputs() {
        XCTAssertThrowsError(try ByteLevelBPETokenizer(ggufTokens: [], merges: [], tokenTypes: [], pre: nil))
        XCTAssertThrowsError(try ByteLevelBPETokenizer(ggufTokens: ["a", "b"], merges: [], tokenTypes: [1], pre: nil)) {
            guard case .invalidFile(let path, _)? = $0 as? TokenizerError else { return XCTFail("\($0)") }
            XCTAssertTrue(path.contains("token_type"))
        }
        XCTAssertThrowsError(try ByteLevelBPETokenizer(ggufTokens: ["a", "b"], merges: ["ab"], tokenTypes: [], pre: nil)) {
            guard case .invalidFile(let path, _)? = $0 as? TokenizerError else { return XCTFail("\($0)") }
            XCTAssertTrue(path.contains("merges"))
        }
        // A vocabulary without byte tokens cannot encode arbitrary text: typed error, no crash.
        XCTAssertThrowsError(try ByteLevelBPETokenizer(ggufTokens: ["a", "b"], merges: [], tokenTypes: [], pre: nil).encode("z")) {
            XCTAssertTrue($0 is TokenizerError)
        }
    }

    // MARK: - vocab.json + merges.txt bad inputs

    func testVocabMergesBadInputs() throws {
        let f = try gpt2Files(), dir = try Scratch.dir(self)
        XCTAssertThrowsError(try ByteLevelBPETokenizer(vocabPath: "/nonexistent/vocab.json", mergesPath: f.mergesPath)) {
            XCTAssertEqual($0 as? TokenizerError, .fileNotFound(path: "/nonexistent/vocab.json"))
        }
        XCTAssertThrowsError(try ByteLevelBPETokenizer(vocabPath: f.vocabPath, mergesPath: "/nonexistent/merges.txt")) {
            XCTAssertEqual($0 as? TokenizerError, .fileNotFound(path: "/nonexistent/merges.txt"))
        }
        let badVocab = dir.appendingPathComponent("vocab.json")
        try Data("[1, 2, 3".utf8).write(to: badVocab)
        XCTAssertThrowsError(try ByteLevelBPETokenizer(vocabPath: badVocab.path, mergesPath: f.mergesPath)) {
            guard case .invalidFile(let path, _)? = $0 as? TokenizerError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, badVocab.path)
        }
        let badMerges = dir.appendingPathComponent("merges.txt")
        try Data("#version: 0.2\nĠ t\nthis line has three parts\n".utf8).write(to: badMerges)
        XCTAssertThrowsError(try ByteLevelBPETokenizer(vocabPath: f.vocabPath, mergesPath: badMerges.path)) {
            guard case .invalidFile(let path, let reason)? = $0 as? TokenizerError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, badMerges.path)
            XCTAssertTrue(reason.contains("line 3"), reason)
        }
    }
}
