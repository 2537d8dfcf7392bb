import Foundation
import XCTest
@testable import Tokenize
import TestSupport

final class ByteLevelBPETests: XCTestCase {
    private func gpt2(_ pre: ByteLevelBPETokenizer.PreTokenizer = .gpt2) throws -> ByteLevelBPETokenizer {
        try ByteLevelBPETokenizer(vocabPath: try Assets.path("tokenizers/gpt2/encoder.json"),
                                  mergesPath: try Assets.path("tokenizers/gpt2/vocab.bpe"), preTokenizer: pre)
    }

    // MARK: - Goldens

    func testGPT2Golden() throws {
        let t = try gpt2()
        XCTAssertEqual(t.vocabSize, 50257)
        XCTAssertFalse(t.addsBOS)
        XCTAssertEqual(t.bosId, 50256)
        XCTAssertEqual(t.eosId, 50256)
        XCTAssertEqual(try t.encode("Hello, my dog is cute"), [15496, 11, 616, 3290, 318, 13779])
        XCTAssertEqual(t.tokenText(616), " my")
        XCTAssertEqual(t.token(616), "Ġmy")
        XCTAssertEqual(t.tokenId("Ġmy"), 616)
    }

    func testOPTGolden() throws {
        let t = try makeTokenizer(.vocabMerges(vocab: try Assets.path("tokenizers/opt/vocab.json"),
                                               merges: try Assets.path("tokenizers/opt/merges.txt")),
                                  hints: TokenizerHints())
        XCTAssertTrue(t.addsBOS)
        XCTAssertEqual(t.bosId, 2)
        XCTAssertEqual(try t.encode("Hello, my dog is cute"), [2, 31414, 6, 127, 2335, 16, 11962])
        XCTAssertEqual(t.decode([2, 31414, 6, 127, 2335, 16, 11962]), "Hello, my dog is cute")
        XCTAssertEqual(try t.encode("</s>Hi<pad>", addBOS: false), [2, 30086, 1])
    }

    /// Ids from HF (`tools/tokenizer_goldens.py`): GPT2TokenizerFast and the SmolLM pre-tokenizer.
    func testMatchesHuggingFaceGoldens() throws {
        let goldens = try loadGoldens()
        let plain = try gpt2(.gpt2), smol = try gpt2(.smollm)
        guard let cases = goldens["cases"] as? [[String: Any]], !cases.isEmpty else { return XCTFail("no cases") }
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            XCTAssertEqual(try plain.encode(text), try XCTUnwrap(c["gpt2"] as? [Int]), "gpt2 \(text.debugDescription)")
            XCTAssertEqual(try smol.encode(text), try XCTUnwrap(c["smollm"] as? [Int]), "smollm \(text.debugDescription)")
            XCTAssertEqual(plain.decode(try plain.encode(text)), text.replacingOccurrences(of: "<|endoftext|>", with: ""))
        }
    }

    /// The whole WikiText-2 test file: same ids as HF (count, head, tail, FNV-1a hash) and a lossless round trip.
    func testWikiTextMatchesHuggingFace() throws {
        let path = try Assets.path("eval/wikitext-2-raw/wiki.test.raw")
        let wiki = try XCTUnwrap(try loadGoldens()["wikitext"] as? [String: Any])
        let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
        let t = try gpt2()
        let ids = try t.encode(text)
        XCTAssertEqual(ids.count, wiki["count"] as? Int)
        XCTAssertEqual(Array(ids.prefix(64)), wiki["head"] as? [Int])
        XCTAssertEqual(Array(ids.suffix(64)), wiki["tail"] as? [Int])
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for id in ids {
            for k in 0..<4 { h = (h ^ UInt64((UInt32(id) >> (8 * UInt32(k))) & 0xFF)) &* 0x100_0000_01B3 }
        }
        XCTAssertEqual(String(h, radix: 16).leftPadded(16), wiki["fnv1a64_ids_u32le"] as? String)
        XCTAssertTrue(t.decode(ids) == text, "wiki.test.raw round trip")
    }

    // MARK: - Round trips and special tokens

    func testRoundTrips() throws {
        let opt = try ByteLevelBPETokenizer(vocabPath: try Assets.path("tokenizers/opt/vocab.json"),
                                            mergesPath: try Assets.path("tokenizers/opt/merges.txt"))
        for t in [try gpt2(), try gpt2(.smollm), opt] {
            for s in roundTripStrings {
                XCTAssertEqual(t.decode(try t.encode(s, addBOS: false)), s, "\(t.kind): \(s.debugDescription)")
                XCTAssertEqual(t.decode(try t.encode(s)), s, "\(t.kind) with BOS: \(s.debugDescription)")
            }
        }
    }

    func testSpecialTokensAreAtomic() throws {
        let t = try gpt2()
        XCTAssertEqual(try t.encode("<|endoftext|>"), [50256])
        XCTAssertEqual(try t.encode("a<|endoftext|>b"), [64, 50256, 65])
        // A prefix of a special token is ordinary text.
        XCTAssertFalse(try t.encode("<|endoftext").contains(50256))
        XCTAssertEqual(t.decode([64, 50256, 65]), "ab")
        XCTAssertEqual(t.tokenText(50256), "<|endoftext|>")
        XCTAssertTrue(t.isControl(50256))
    }

    func testPartialUTF8DecodesLossily() throws {
        let t = try gpt2()
        let ids = try t.encode("😀")
        XCTAssertGreaterThan(ids.count, 1)
        XCTAssertEqual(t.decode(Array(ids.prefix(1))), "\u{FFFD}")
        XCTAssertEqual(t.decode(ids + [-3, 1_000_000]), "😀")
    }

    /// The per-word cache is shared: concurrent encodes must agree with a serial one.
    func testConcurrentEncode() throws {
        let t = try gpt2()
        let texts = roundTripStrings + (0..<20).map { "sentence number \($0) with words \($0 * 7919)" }
        let expected = try texts.map { try t.encode($0) }
        let lock = NSLock()
        var mismatches = 0
        DispatchQueue.concurrentPerform(iterations: 8) { k in
            for (i, s) in texts.enumerated().shuffled() where (i + k) % 2 == 0 {
                let ids = try? t.encode(s)
                if ids != expected[i] { lock.lock(); mismatches += 1; lock.unlock() }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    // MARK: - Pre-tokenizer

    func testPreTokenizerSplits() {
        func words(_ s: String, smollm: Bool = false) -> [String] {
            let bytes = Array(s.utf8)
            var out: [String] = []
            bytes.withUnsafeBufferPointer { buf in
                PreTokenizerScanner(smollm: smollm).split(buf, 0..<buf.count) { a, b in
                    out.append(String(decoding: buf[a..<b], as: UTF8.self))
                }
            }
            return out
        }
        XCTAssertEqual(words("Hello, world!"), ["Hello", ",", " world", "!"])
        XCTAssertEqual(words("I'm they'll it's"), ["I", "'m", " they", "'ll", " it", "'s"])
        XCTAssertEqual(words("a   b  "), ["a", "  ", " b", "  "])
        XCTAssertEqual(words("x\n\ny \tz\n\n"), ["x", "\n", "\n", "y", " ", "\t", "z", "\n\n"])
        XCTAssertEqual(words("abc 123x"), ["abc", " 123", "x"])
        XCTAssertEqual(words("abc 123x", smollm: true), ["abc", " ", "1", "2", "3", "x"])
        XCTAssertEqual(words("e\u{301}!? 'q"), ["e", "\u{301}!?", " '", "q"])
        XCTAssertEqual(ByteLevelBPETokenizer.PreTokenizer(ggufPre: "smollm"), .smollm)
        XCTAssertEqual(ByteLevelBPETokenizer.PreTokenizer(ggufPre: "some-new-pre"), .gpt2)
        XCTAssertEqual(ByteLevelBPETokenizer.PreTokenizer(ggufPre: nil), .gpt2)
    }

    // MARK: - Helpers

    private func loadGoldens() throws -> [String: Any] {
        let url = Fixtures.root.appendingPathComponent("tokenizer_goldens.json")
        let obj = try JSONSerialization.jsonObject(with: try Data(contentsOf: url))
        return try XCTUnwrap(obj as? [String: Any])
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
