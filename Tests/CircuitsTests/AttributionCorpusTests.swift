import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// `--text` corpus windows: reproducible per seed, exact length, BOS in front, short documents
/// joined with EOS, long documents cropped, clear errors.
final class AttributionCorpusTests: XCTestCase {
    typealias F = AttributionFixtures

    func write(_ s: String, _ name: String) throws -> String {
        let p = try Scratch.dir(self).appendingPathComponent(name).path
        try s.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func testWindowsAreReproducibleForASeedAndDifferForAnother() throws {
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        let docs = (0..<20).map { i in #"{"text": "Once upon a time there was a girl named Lily number \#(i). She liked to play in the park with her ball."}"# }
        let p = try write(docs.joined(separator: "\n"), "c.jsonl")
        let corpus = try TextCorpus.load(p)
        XCTAssertEqual(corpus.documents.count, 20)
        let a = try corpus.windows(tokenizer: tok, seqlen: 40, count: 6, seed: 1, vocab: 512)
        let b = try corpus.windows(tokenizer: tok, seqlen: 40, count: 6, seed: 1, vocab: 512)
        let c = try corpus.windows(tokenizer: tok, seqlen: 40, count: 6, seed: 2, vocab: 512)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a.map(\.tokens), c.map(\.tokens))
        for w in a {
            XCTAssertEqual(w.tokens.count, 40)
            XCTAssertEqual(w.tokens.first, tok.bosId, "BOS in front (the tokenizer adds one)")
            XCTAssertEqual(w.explain, .nextToken(from: 0))
            XCTAssertEqual(w.promptLength, 40)
        }
        // The first windows of a longer draw are the same windows (sample k depends only on the seed and k).
        let longer = try corpus.windows(tokenizer: tok, seqlen: 40, count: 9, seed: 1, vocab: 512)
        XCTAssertEqual(Array(longer.prefix(6)), a)
    }

    func testShortDocumentsAreJoinedWithEOSAndLongOnesCropped() throws {
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        let eos = try XCTUnwrap(tok.eosId)
        // Documents of a few tokens each: every 30-token window must span several, EOS between them.
        let short = (0..<6).map { #"{"prefix": "Lily saw ", "gold_completion": "a cat \#($0)."}"# }
        let p = try write(short.joined(separator: "\n"), "short.jsonl")
        let corpus = try TextCorpus.load(p)
        XCTAssertEqual(corpus.documents[0], "Lily saw a cat 0.", "prefix + gold_completion")
        let docTokens = try corpus.documents.map { try tok.encode($0, addBOS: false) }
        let ws = try corpus.windows(tokenizer: tok, seqlen: 30, count: 8, seed: 3, vocab: 512)
        for w in ws {
            XCTAssertEqual(w.tokens.count, 30)
            XCTAssertGreaterThan(w.tokens.dropFirst().filter { $0 == eos }.count, 0, "EOS separates joined documents")
            // The window is a contiguous piece of doc d ‖ EOS ‖ doc d+1 ‖ … (wrapping).
            let d = Int(w.label.split(separator: "doc ")[1].prefix { $0.isNumber })!
            var stream: [Int] = []
            for k in 0..<6 { if k > 0 { stream.append(eos) }; stream += docTokens[(d + k) % 6] }
            let body = Array(w.tokens.dropFirst())
            XCTAssertTrue((0...(stream.count - body.count)).contains { Array(stream[$0..<($0 + body.count)]) == body }, w.label)
        }
        // One long document: a crop inside it, no EOS.
        let long = String(repeating: "Once upon a time there was a little girl. ", count: 20)
        let lp = try write(long, "long.txt")
        let lc = try TextCorpus.load(lp)
        XCTAssertEqual(lc.documents.count, 1, "plain text is one document")
        let all = try tok.encode(long, addBOS: false)
        for w in try lc.windows(tokenizer: tok, seqlen: 25, count: 4, seed: 9, vocab: 512) {
            let body = Array(w.tokens.dropFirst())
            XCTAssertFalse(body.contains(eos))
            XCTAssertTrue((0...(all.count - 24)).contains { Array(all[$0..<($0 + 24)]) == body })
        }
    }

    func testErrors() throws {
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        let tiny = try TextCorpus.load(try write(#"{"text": "Lily"}"# + "\n" + #"{"text": "a cat"}"#, "tiny.jsonl"))
        XCTAssertThrowsError(try tiny.windows(tokenizer: tok, seqlen: 64, count: 1, seed: 0, vocab: 512)) { e in
            guard case .corpusTooShort(_, _, let need)? = e as? AttributionError else { return XCTFail("\(e)") }
            XCTAssertEqual(need, 63)
        }
        let bad = try write(#"{"text": "ok"}"# + "\n" + #"{"body": "no text"}"#, "bad.jsonl")
        XCTAssertThrowsError(try TextCorpus.load(bad)) { e in
            XCTAssertEqual(e as? AttributionError, .missingField(SourceLocation(file: bad, line: 2),
                                                                  field: "text (or prefix + gold_completion, or prompt)"))
        }
        let empty = try write("\n\n", "empty.jsonl")
        XCTAssertThrowsError(try TextCorpus.load(empty)) { XCTAssertEqual($0 as? AttributionError, .emptyPromptFile(path: empty)) }
        XCTAssertThrowsError(try tiny.windows(tokenizer: tok, seqlen: 4, count: 1, seed: 0, vocab: 512, target: .continuation))
    }

    func testSharedC4WindowsOf512() throws {
        let c4 = try Assets.path("eval/c4/c4_pfdecoding_1480.jsonl")
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        let corpus = try TextCorpus.load(c4)
        XCTAssertEqual(corpus.documents.count, 1480)
        let a = try corpus.windows(tokenizer: tok, seqlen: 512, count: 3, seed: 0, vocab: 512)
        XCTAssertEqual(a.map(\.tokens.count), [512, 512, 512])
        XCTAssertEqual(a, try corpus.windows(tokenizer: tok, seqlen: 512, count: 3, seed: 0, vocab: 512))
        print("c4 windows:", a.map(\.label))
    }
}
