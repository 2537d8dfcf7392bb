import Foundation
import XCTest
@testable import Tokenize
import TestSupport

final class FactoryTests: XCTestCase {
    func testSentencePieceDefaultsAndHints() throws {
        let path = try Assets.path("tokenizers/llama2/tokenizer.model")
        let t = try makeTokenizer(.sentencePiece(path: path), hints: TokenizerHints())
        XCTAssertTrue(t is SentencePieceTokenizer)
        XCTAssertEqual(try t.encode("Hello world"), [1, 15043, 3186])
        let noBOS = try makeTokenizer(.sentencePiece(path: path), hints: TokenizerHints(eosId: 7, addBOS: false))
        XCTAssertEqual(try noBOS.encode("Hello world"), [15043, 3186])
        XCTAssertEqual(noBOS.eosId, 7)
    }

    func testLlama2C() throws {
        let t = try makeTokenizer(.llama2c(path: try Assets.path("stories260K/tok512.bin")), hints: TokenizerHints())
        XCTAssertTrue(t is Llama2CTokenizer)
        XCTAssertEqual(try t.encode("x").first, 1)
        XCTAssertTrue(t.kind.hasPrefix("llama2.c"))
    }

    func testGPT2AddsNoBOSUnlessHinted() throws {
        let source = TokenizerSource.vocabMerges(vocab: try Assets.path("tokenizers/gpt2/encoder.json"),
                                                 merges: try Assets.path("tokenizers/gpt2/vocab.bpe"))
        let t = try makeTokenizer(source, hints: TokenizerHints())
        XCTAssertFalse(t.addsBOS)
        XCTAssertEqual(try t.encode("Hello"), [15496])
        let withBOS = try makeTokenizer(source, hints: TokenizerHints(addBOS: true))
        XCTAssertEqual(try withBOS.encode("Hello"), [50256, 15496])
        let custom = try makeTokenizer(source, hints: TokenizerHints(bosId: 42, addBOS: true))
        XCTAssertEqual(try custom.encode("Hello"), [42, 15496])
    }

    func testGGUFUsesHints() throws {
        let tokens = (0..<256).map { ByteUnicode.encode([UInt8($0)]) } + ["<|im_start|>", "<|im_end|>"]
        var types = [Int32](repeating: 1, count: tokens.count)
        types[256] = 3; types[257] = 3
        let source = TokenizerSource.ggufBPE(tokens: tokens, merges: [], tokenTypes: types, pre: "smollm")
        let t = try makeTokenizer(source, hints: TokenizerHints(bosId: 256, eosId: 257, addBOS: false))
        XCTAssertEqual(t.bosId, 256)
        XCTAssertEqual(t.eosId, 257)
        XCTAssertFalse(t.addsBOS)
        XCTAssertEqual(try t.encode("<|im_start|>hi"), [256, 104, 105])
        XCTAssertEqual(try t.encode("hi", addBOS: true), [256, 104, 105])
        XCTAssertEqual(t.decode([256, 104, 105, 257]), "hi")
    }

    func testMissingFilesAreTyped() {
        let sources: [(TokenizerSource, String)] = [
            (.sentencePiece(path: "/missing/a.model"), "/missing/a.model"),
            (.llama2c(path: "/missing/b.bin"), "/missing/b.bin"),
            (.tokenizerJSON(path: "/missing/tokenizer.json"), "/missing/tokenizer.json"),
            (.vocabMerges(vocab: "/missing/vocab.json", merges: "/missing/merges.txt"), "/missing/vocab.json"),
        ]
        for (source, path) in sources {
            XCTAssertThrowsError(try makeTokenizer(source, hints: TokenizerHints())) {
                XCTAssertEqual($0 as? TokenizerError, .fileNotFound(path: path))
                XCTAssertTrue($0.localizedDescription.contains(path))
            }
        }
    }
}
