import Foundation
import XCTest
@testable import Tokenize
import TestSupport

final class Llama2CTokenizerTests: XCTestCase {
    /// Single-spaced texts: where llama2.c's encoder and SentencePiece agree.
    let singleSpaced = [
        "Once upon a time, there was a little girl named Lily.",
        "She said: \"I'm 3 years old, and 12345 is big!\"",
        "Café naïve résumé",
        "emoji 😀 and 中文 and 한국어",
        "x",
        "The end.",
    ]

    // MARK: - Parity with SentencePiece

    func testIdsEqualSentencePieceOnSingleSpacedText() throws {
        let bin = try Llama2CTokenizer(path: try Assets.path("stories260K/tok512.bin"))
        let spm = try SentencePieceTokenizer(path: try Assets.path("stories260K/tok512.model"))
        XCTAssertEqual(bin.vocabSize, 512)
        XCTAssertEqual(bin.maxTokenLength, 7)
        for s in singleSpaced {
            XCTAssertEqual(try bin.encode(s), try spm.encode(s), "ids for \(s.debugDescription)")
            XCTAssertEqual(try bin.encode(s, addBOS: false), try spm.encode(s, addBOS: false))
        }
    }

    func testStructure() throws {
        let t = try Llama2CTokenizer(path: try Assets.path("stories260K/tok512.bin"))
        XCTAssertEqual(t.bosId, 1)
        XCTAssertEqual(t.eosId, 2)
        XCTAssertTrue(t.addsBOS)
        XCTAssertEqual(try t.encode(""), [1])
        XCTAssertEqual(try t.encode("", addBOS: false), [])
        XCTAssertEqual(t.tokenText(1), "<s>")
        XCTAssertEqual(t.tokenText(2), "</s>")
        XCTAssertEqual(t.tokenText(3 + 0x41), "<0x41>")
        // Byte fallback: a code point missing from the vocab becomes byte tokens (byte + 3).
        let ids = try t.encode("😀", addBOS: false)
        XCTAssertEqual(Array(ids.suffix(4)), [0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3])
    }

    // MARK: - Decode

    func testDecodeRoundTrip() throws {
        let t = try Llama2CTokenizer(path: try Assets.path("stories260K/tok512.bin"))
        for s in singleSpaced + roundTripStrings {
            XCTAssertEqual(t.decode(try t.encode(s)), s, "round trip of \(s.debugDescription)")
        }
        // Leading space of the first piece after BOS is stripped; later spaces are kept.
        let ids = try t.encode("Lily")
        XCTAssertEqual(t.decode(ids + [2]), "Lily")
        XCTAssertEqual(t.decode([-1, 4096] + ids), "Lily")
    }

    /// Long inputs exercise the incremental merge loop against the reference full rescan.
    func testMergeMatchesReferenceRescan() throws {
        let t = try Llama2CTokenizer(path: try Assets.path("stories260K/tok512.bin"))
        let texts = [
            String(repeating: "Once upon a time, a little dog named Spot ran to the park. ", count: 5),
            String(repeating: "aaaa bbbb ", count: 20) + "ééé 😀😀 中文 \t\n",
            "the the the the the the the",
            "Lily and Ben were best friends. They liked to play with their toys and share.",
        ]
        for text in texts {
            XCTAssertEqual(try t.encode(text), try referenceEncode(t, text), text.debugDescription)
        }
        // Pseudo-random strings (fixed LCG seed) stress ties and overlapping merges.
        let alphabet = Array("abehilnorst ,.'é😀\n")
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<200 {
            var text = ""
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            for _ in 0..<Int(state >> 58) + 1 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                text.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            XCTAssertEqual(try t.encode(text), try referenceEncode(t, text), text.debugDescription)
        }
    }

    /// Literal transcription of run.c's merge loop (full rescan each iteration).
    private func referenceEncode(_ t: Llama2CTokenizer, _ text: String) throws -> [Int] {
        var tokens = [1, t.pieces.firstIndex(of: [0x20]) ?? -1]
        var lookup: [[UInt8]: Int] = [:]
        for (i, p) in t.pieces.enumerated() where lookup[p] == nil { lookup[p] = i }
        for ch in text.unicodeScalars {
            let bytes = Array(String(ch).utf8)
            if let id = lookup[bytes] { tokens.append(id) } else { tokens += bytes.map { Int($0) + 3 } }
        }
        while true {
            var best: Float = -1e10, bestId = -1, bestIdx = -1
            for i in 0..<(tokens.count - 1) {
                if let id = lookup[t.pieces[tokens[i]] + t.pieces[tokens[i + 1]]], t.scores[id] > best {
                    best = t.scores[id]; bestId = id; bestIdx = i
                }
            }
            if bestIdx == -1 { break }
            tokens[bestIdx] = bestId
            tokens.remove(at: bestIdx + 1)
        }
        return tokens
    }

    // MARK: - Bad inputs

    func testMissingFile() {
        XCTAssertThrowsError(try Llama2CTokenizer(path: "/nonexistent/tokenizer.bin")) { error in
            XCTAssertEqual(error as? TokenizerError, .fileNotFound(path: "/nonexistent/tokenizer.bin"))
        }
    }

    func testTruncatedAndCorruptFiles() throws {
        let good = try Data(contentsOf: URL(fileURLWithPath: try Assets.path("stories260K/tok512.bin")))
        let dir = try Scratch.dir(self)
        let cases: [(String, Data)] = [
            ("truncated.bin", good.prefix(good.count - 3)),
            ("garbage.bin", Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) })),
            ("empty.bin", Data()),
        ]
        for (name, data) in cases {
            let url = dir.appendingPathComponent(name)
            try data.write(to: url)
            XCTAssertThrowsError(try Llama2CTokenizer(path: url.path), name) { error in
                guard case .invalidFile(let path, _)? = error as? TokenizerError else {
                    return XCTFail("\(name): unexpected error \(error)")
                }
                XCTAssertEqual(path, url.path)
            }
        }
        // Asking for more tokens than the file holds is also an error.
        XCTAssertThrowsError(try Llama2CTokenizer(data: good, name: "tok512", vocabSize: 600))
        XCTAssertEqual(try Llama2CTokenizer(data: good, name: "tok512", vocabSize: 300).vocabSize, 300)
    }
}
