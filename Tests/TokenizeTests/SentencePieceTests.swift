import Foundation
import XCTest
@testable import Tokenize
import TestSupport

final class SentencePieceTests: XCTestCase {
    // MARK: - Goldens

    func testLlama2Goldens() throws {
        let t = try SentencePieceTokenizer(path: try Assets.path("tokenizers/llama2/tokenizer.model"))
        XCTAssertEqual(t.vocabSize, 32000)
        XCTAssertEqual(t.bosId, 1)
        XCTAssertEqual(t.eosId, 2)
        XCTAssertTrue(t.addsBOS)
        XCTAssertEqual(try t.encode("I believe the meaning of life is"), [1, 306, 4658, 278, 6593, 310, 2834, 338])
        XCTAssertEqual(try t.encode("Hello world", addBOS: false), [15043, 3186])
        XCTAssertEqual(t.decode([1, 15043, 3186, 2]), "Hello world")
        XCTAssertEqual(t.tokenText(15043), " Hello")
        XCTAssertEqual(t.piece(15043), "\u{2581}Hello")
        XCTAssertEqual(t.pieceToId("\u{2581}Hello"), 15043)
        XCTAssertNil(t.pieceToId("definitely-not-a-piece-xyz"))
        XCTAssertTrue(t.isControl(1))
        XCTAssertTrue(t.isByte(3 + 0x0A))
        XCTAssertEqual(t.tokenText(-1), "")
        XCTAssertEqual(t.kind, "sentencepiece (32000 pieces)")
    }

    // MARK: - Round trips

    /// Llama 2 uses an identity normaliser without whitespace removal plus byte fallback,
    /// so every test string round-trips.
    func testLlama2RoundTrip() throws {
        let t = try SentencePieceTokenizer(path: try Assets.path("tokenizers/llama2/tokenizer.model"))
        for s in roundTripStrings {
            XCTAssertEqual(t.decode(try t.encode(s)), s, "round trip of \(s.debugDescription)")
        }
    }

    /// tok512.model was trained with `remove_extra_whitespaces`: space runs collapse and
    /// leading/trailing spaces vanish. Those are the documented exceptions; single-spaced
    /// text (including byte-fallback unicode, tabs and newlines) round-trips.
    func testTok512RoundTripAndExceptions() throws {
        let t = try SentencePieceTokenizer(path: try Assets.path("stories260K/tok512.model"))
        XCTAssertEqual(t.vocabSize, 512)
        for s in ["Once upon a time", "Café naïve 😀 中文", "a\tb\nc", "Lily's 3 cats."] {
            XCTAssertEqual(t.decode(try t.encode(s)), s, "round trip of \(s.debugDescription)")
        }
        XCTAssertEqual(t.decode(try t.encode("  two   spaces  ")), "two spaces")
    }

    func testDecodeIgnoresBadIds() throws {
        let t = try SentencePieceTokenizer(path: try Assets.path("tokenizers/llama2/tokenizer.model"))
        XCTAssertEqual(t.decode([-5, 1, 15043, 99_999_999, 3186, 2]), "Hello world")
        XCTAssertEqual(t.decode([]), "")
    }

    func testLoadFromBytes() throws {
        let path = try Assets.path("stories260K/tok512.model")
        let t = try SentencePieceTokenizer(modelData: try Data(contentsOf: URL(fileURLWithPath: path)), name: "tok512")
        XCTAssertEqual(t.vocabSize, 512)
        XCTAssertEqual(try t.encode("Once upon a time").first, 1)
    }

    func testAddBOSWithoutBOSIdThrows() throws {
        let t = try SentencePieceTokenizer(path: try Assets.path("stories260K/tok512.model"))
        t.bosId = nil
        XCTAssertThrowsError(try t.encode("hi")) { XCTAssertTrue($0 is TokenizerError) }
        XCTAssertNoThrow(try t.encode("hi", addBOS: false))
    }

    // MARK: - Bad inputs

    func testMissingFile() {
        XCTAssertThrowsError(try SentencePieceTokenizer(path: "/nonexistent/dir/tokenizer.model")) { error in
            XCTAssertEqual(error as? TokenizerError, .fileNotFound(path: "/nonexistent/dir/tokenizer.model"))
        }
    }

    func testCorruptModel() throws {
        let dir = try Scratch.dir(self)
        let bad = dir.appendingPathComponent("corrupt.model")
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }).write(to: bad)
        XCTAssertThrowsError(try SentencePieceTokenizer(path: bad.path)) { error in
            guard case .sentencePiece(let path, let message)? = error as? TokenizerError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(path, bad.path)
            XCTAssertFalse(message.isEmpty)
            XCTAssertTrue(error.localizedDescription.contains("corrupt.model"))
        }
        XCTAssertThrowsError(try SentencePieceTokenizer(modelData: Data("garbage".utf8), name: "blob")) { error in
            guard case .sentencePiece(let path, _)? = error as? TokenizerError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(path, "blob")
        }
    }
}

/// libsentencepiece's messages echo raw model bytes ("byte piece <\xff\x7f"): they are escaped before
/// they reach an error message (issue 12, fuzz case 1286).
final class SentencePieceMessageTests: XCTestCase {
    func testRawBytesInLibraryMessageAreEscaped() {
        let raw: [UInt8] = Array("byte piece <".utf8) + [0xFF, 0x7F, 0x1B] + Array("[2J".utf8) + [0]
        let m = SentencePieceTokenizer.message(raw.map { CChar(bitPattern: $0) })
        XCTAssertEqual(m, "byte piece <\\u{fffd}\\u{7f}\\u{1b}[2J")
        XCTAssertEqual(SentencePieceTokenizer.message([0]), "unknown error")
        let long = SentencePieceTokenizer.message([CChar](repeating: 0x41, count: 5000) + [0])
        XCTAssertEqual(long, String(repeating: "A", count: 200) + "…(5000 characters)")
    }
}
