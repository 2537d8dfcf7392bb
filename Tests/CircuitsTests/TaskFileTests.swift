import Foundation
import XCTest
@testable import Circuits
import Tokenize
import Transformer
import TestSupport

// MARK: - Task files: JSONL and EAP-IG/MIB CSV, tokenization checks

enum TaskTestSupport {
    /// The GPT-2 byte-level BPE tokenizer from shared/assets (no BOS; names are " Name" tokens).
    static func gpt2() throws -> Tokenizer {
        if let t = cached { return t }
        let t = try makeTokenizer(.vocabMerges(vocab: try Assets.path("tokenizers/gpt2/encoder.json"),
                                               merges: try Assets.path("tokenizers/gpt2/vocab.bpe")))
        cached = t
        return t
    }
    nonisolated(unsafe) static var cached: Tokenizer?

    /// YY → token for the two-digit suffixes whose encoding after `prompt` is the prompt's tokens plus
    /// the single token of "YY" (what a two-digit-token tokenizer like GPT-2 gives for most years).
    static func twoTokenYears(_ prompt: String, _ tok: Tokenizer) throws -> [Int: Int] {
        let base = try tok.encode(prompt)
        var out: [Int: Int] = [:]
        for yy in 0...99 {
            let s = String(format: "%02d", yy)
            let alone = try tok.encode(s, addBOS: false)
            if alone.count == 1, try tok.encode(prompt + s) == base + alone { out[yy] = alone[0] }
        }
        return out
    }

    /// Prompts of different lengths with random answer/distractor tokens.
    static func randomItems(vocab: Int, seed: UInt64) -> [TaskItem] {
        var rng = SeededRNG(seed: seed)
        return (0..<7).map { i in
            let n = 3 + Int(rng.next() % 9)
            let toks = (0..<n).map { _ in Int(rng.next() % UInt64(vocab)) }
            let a = Int(rng.next() % UInt64(vocab))
            var d = Int(rng.next() % UInt64(vocab - 1)); if d >= a { d += 1 }
            let corrupted = (0..<n).map { _ in Int(rng.next() % UInt64(vocab)) }
            return TaskItem(location: SourceLocation(file: "gen", line: i + 1), kind: .ioi, template: i % 2 == 0 ? "BABA:\(i)" : "ABBA:\(i)",
                            tokens: toks, corruptedTokens: corrupted, answerIds: [a], distractorIds: [d])
        }
    }

    static func ioiAssets() throws -> IOIAssets { try IOIAssets.load(try Assets.path("eval/ioi/ioi_templates.json")) }

    /// The typed error thrown by `body`, or a failure.
    static func error<T>(_ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> TaskError? {
        do { _ = try body(); XCTFail("expected an error", file: file, line: line); return nil } catch let e as TaskError {
            return e
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line); return nil
        }
    }
}

final class TaskFileTests: XCTestCase {
    func testCSVQuotingNewlinesAndLineNumbers() throws {
        let csv = ",clean,corrupted,correct_idx,incorrect_idx\r\n"
            + "0,\"Then, Mary and John went. John gave it to\",\"Then, Anna and Bob went. Carl gave it to\",5335,1757\r\n"
            + "\n"
            + "1,\"a \"\"quoted\"\"\nline\",b,\"[1, 2]\",3\n"
        let t = try CSVTable.parse(csv, path: "x.csv")
        XCTAssertEqual(t.header, ["", "clean", "corrupted", "correct_idx", "incorrect_idx"])
        XCTAssertEqual(t.rows.map(\.line), [2, 4])
        XCTAssertEqual(t.rows[0].cells[1], "Then, Mary and John went. John gave it to")
        XCTAssertEqual(t.rows[1].cells[1], "a \"quoted\"\nline")
        let set = try TaskSet.parse(csv, path: "x.csv")
        XCTAssertEqual(set.prompts.count, 2)
        XCTAssertEqual(set.prompts[0].answers.map(\.ref), [.id(5335)])
        XCTAssertEqual(set.prompts[0].distractors.map(\.ref), [.id(1757)])
        XCTAssertEqual(set.prompts[1].answers.map(\.ref), [.id(1), .id(2)])
        XCTAssertEqual(set.prompts[1].location, SourceLocation(file: "x.csv", line: 4))
    }

    func testCSVErrorsNameLineAndColumn() {
        XCTAssertEqual(TaskTestSupport.error { try CSVTable.parse("a,b\n1,\"open\n", path: "q.csv") },
                       .invalidCSV(SourceLocation(file: "q.csv", line: 2), reason: "unterminated quoted cell"))
        XCTAssertEqual(TaskTestSupport.error { try CSVTable.parse("a,b\n1,2\n3\n", path: "q.csv") },
                       .invalidCSV(SourceLocation(file: "q.csv", line: 3), reason: "1 cells, but the header has 2"))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("text,label\nx,3\n", path: "m.csv") },
                       .missingColumn(path: "m.csv", column: "clean", header: ["text", "label"]))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("clean,corrupted\nx,y\n", path: "m.csv") },
                       .missingColumn(path: "m.csv", column: "correct_idx' or 'label", header: ["clean", "corrupted"]))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("clean,correct_idx\nx,abc\n", path: "m.csv") },
                       .badField(SourceLocation(file: "m.csv", line: 2), field: "correct_idx", reason: "'abc' is not a token id"))
    }

    func testJSONLFieldsAndErrors() throws {
        let ok = """
        {"text": "When Mary and John went, John gave it to", "answer": " Mary", "answer_id": 5335, "distractor": " John", "template": "BABA:0", "task": "ioi"}

        {"text": "x", "answer_ids": [1, 2], "distractor_ids": [3], "corrupted": "y"}
        """
        let s = try TaskSet.parse(ok, path: "t.jsonl")
        XCTAssertEqual(s.prompts.count, 2)
        XCTAssertEqual(s.prompts[0].kind, .ioi)
        XCTAssertEqual(s.prompts[0].answers.map(\.ref), [.text(" Mary"), .id(5335)])
        XCTAssertEqual(s.prompts[1].location.line, 3)
        XCTAssertEqual(s.prompts[1].corrupted, "y")
        let loc2 = SourceLocation(file: "t.jsonl", line: 2)
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("{\"text\": \"a\", \"answer\": \" b\"}\n{\"text\": \"a\"}", path: "t.jsonl") },
                       .missingField(loc2, field: "answer"))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("{\"text\": \"a\", \"answer\": \" b\"}\n{\"answer\": \" b\"}", path: "t.jsonl") },
                       .missingField(loc2, field: "text"))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("{\"text\": \"a\", \"answer\": \" b\", \"answer_ids\": [1]}", path: "t.jsonl") },
                       .conflictingFields(SourceLocation(file: "t.jsonl", line: 1), "answer_ids", "answer"))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("{\"text\": \"a\", \"answer\": \" b\", \"task\": \"sum\"}", path: "t.jsonl") },
                       .badField(SourceLocation(file: "t.jsonl", line: 1), field: "task", reason: "unknown task 'sum' (expected [\"ioi\", \"greater-than\", \"custom\"])"))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("[1]", path: "t.jsonl") },
                       .invalidJSON(SourceLocation(file: "t.jsonl", line: 1), reason: "the line is not a JSON object"))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("\n\n", path: "t.jsonl") }, .emptyTaskFile(path: "t.jsonl"))
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse("x", path: "t.txt") }, .unknownFormat(path: "t.txt"))
    }

    /// A FIFO or a directory given as the task file is refused at once (never waited on or read as empty).
    func testNonRegularTaskFilesAreRefused() throws {
        let dir = try Scratch.dir(self)
        let fifo = dir.appendingPathComponent("tasks.jsonl").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        for p in [fifo, dir.path, dir.appendingPathComponent("missing.jsonl").path] {
            XCTAssertThrowsError(try TaskSet.load(p), p) { XCTAssertTrue($0 is ModelError, "\(p): \($0)") }
        }
    }

    func testTokenizationChecks() throws {
        let tok = try TaskTestSupport.gpt2()
        let mary = try tok.encode(" Mary", addBOS: false), john = try tok.encode(" John", addBOS: false)
        XCTAssertEqual(mary.count, 1); XCTAssertEqual(john.count, 1)
        let cfg = (vocab: 50257, ctx: 1024)
        func item(_ line: String) throws -> TaskItem {
            try TaskSet.parse(line, path: "t.jsonl").prompts[0].tokenize(tokenizer: tok, vocabSize: cfg.vocab, maxSeqLen: cfg.ctx)
        }
        let good = try item(#"{"text": "When Mary and John went, John gave it to", "answer": " Mary", "answer_id": \#(mary[0]), "distractor": " John", "corrupted": "When Anna and Carl went, Paul gave it to"}"#)
        XCTAssertEqual(good.answerIds, mary); XCTAssertEqual(good.distractorIds, john)
        XCTAssertEqual(good.tokens, try tok.encode("When Mary and John went, John gave it to"))
        XCTAssertEqual(good.corruptedTokens?.count, good.tokens.count)
        let loc = SourceLocation(file: "t.jsonl", line: 1)
        XCTAssertEqual(TaskTestSupport.error { try item(#"{"text": "a b", "answer": " Mary", "answer_id": 7}"#) },
                       .idMismatch(loc, field: "answer_id", text: " Mary", fileId: 7, tokenizerId: mary[0]))
        let multi = try tok.encode(" Xylophonists", addBOS: false)
        XCTAssertGreaterThan(multi.count, 1)
        XCTAssertEqual(TaskTestSupport.error { try item(#"{"text": "a b", "answer": " Xylophonists"}"#) },
                       .notSingleToken(loc, field: "answer", text: " Xylophonists", ids: multi))
        let clean = try tok.encode("When Mary and John went, John gave it to").count
        XCTAssertEqual(TaskTestSupport.error { try item(#"{"text": "When Mary and John went, John gave it to", "answer": " Mary", "corrupted": "When Mary and John went home, John gave it to"}"#) },
                       .lengthMismatch(loc, clean: clean, corrupted: clean + 1))
        XCTAssertEqual(TaskTestSupport.error { try item(#"{"text": "a b", "answer_id": 60000}"#) },
                       .tokenOutOfVocabulary(loc, field: "answer_id", id: 60000, vocabSize: cfg.vocab))
        XCTAssertEqual(TaskTestSupport.error { try item(#"{"text": "a b", "answer_ids": [5, 6], "distractor_id": 6}"#) },
                       .overlappingTargets(loc, id: 6))
    }

    /// EAP-IG's greater-than rows (`label` = start year suffix). GPT-2 writes most two-digit suffixes as one
    /// token after " 17", but merges some years differently (those cannot follow the prompt's tokens): the sets
    /// must be exactly the suffixes YY whose encoding is prompt tokens + the single token "YY", split at 52.
    func testGreaterThanLabelSetsWithTwoDigitTokens() throws {
        let tok = try TaskTestSupport.gpt2()
        let prompt = "The war lasted from the year 1752 to the year 17"
        let csv = "clean,corrupted,label\n\(prompt),The war lasted from the year 1701 to the year 17,52\n"
        let item = try TaskSet.parse(csv, path: "g.csv").prompts[0].tokenize(tokenizer: tok, vocabSize: 50257, maxSeqLen: 1024)
        XCTAssertEqual(item.kind, .greaterThan)
        let reach = try TaskTestSupport.twoTokenYears(prompt, tok)
        XCTAssertGreaterThan(reach.count, 60, "most suffixes are one token in GPT-2")
        XCTAssertEqual(item.answerIds, reach.filter { $0.key > 52 }.map(\.value).sorted())
        XCTAssertEqual(item.distractorIds, reach.filter { $0.key < 52 }.map(\.value).sorted())
        XCTAssertEqual(item.corruptedTokens?.count, item.tokens.count)
        // A start suffix outside 0…99 names the field.
        let bad = "clean,label\nThe war lasted from the year 1752 to the year 17,152\n"
        XCTAssertEqual(TaskTestSupport.error { try TaskSet.parse(bad, path: "g.csv").prompts[0].tokenize(tokenizer: tok, vocabSize: 50257, maxSeqLen: 1024) },
                       .badField(SourceLocation(file: "g.csv", line: 2), field: "label", reason: "start year suffix 152 is not in 0...99"))
    }
}
