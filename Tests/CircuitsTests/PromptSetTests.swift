import Foundation
import XCTest
@testable import Circuits
import Transformer

/// Prompt files (txt / jsonl), the `--target` grammar, sample preparation and corpus windows.
final class PromptSetTests: XCTestCase {
    typealias F = AttributionFixtures

    func assertError(_ expected: AttributionError, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssertEqual(e as? AttributionError, expected, "\(e)", file: file, line: line)
        }
    }

    // MARK: - txt

    func testTxtOnePromptPerLineSkippingBlankLinesKeepsLineNumbers() throws {
        let s = try PromptSet.parse("first prompt\r\n\n   \nsecond  prompt \nthird", path: "p.txt")
        XCTAssertEqual(s.entries.map(\.text), ["first prompt", "second  prompt ", "third"])
        XCTAssertEqual(s.entries.map(\.location.line), [1, 4, 5])
        XCTAssertEqual(s.entries[1].location.description, "p.txt:4")
        XCTAssertTrue(s.entries.allSatisfy { $0.targets.isEmpty && !$0.hasContinuation })
    }

    func testEmptyFilesAreErrors() {
        assertError(.emptyPromptFile(path: "e.txt")) { _ = try PromptSet.parse("", path: "e.txt") }
        assertError(.emptyPromptFile(path: "e.txt")) { _ = try PromptSet.parse("\n  \n\n", path: "e.txt") }
        assertError(.emptyPromptFile(path: "e.jsonl")) { _ = try PromptSet.parse("\n", path: "e.jsonl") }
    }

    // MARK: - jsonl

    func testJSONLFields() throws {
        let lines = [
            #"{"text": "The capital of France is", "target": " Paris"}"#,
            #"{"prompt": "When Mary and John went", "target": " Mary", "contrast": " John", "toxicity": 0.9}"#,
            #"{"ids": [1, 5, 9], "target": {"position": 1, "id": 7, "contrast_id": 8}}"#,
            #"{"text": "x", "target_ids": [3, 4], "position": -2}"#,
            #"{"text": "y", "targets": [" a", 12, {"token": " b", "position": 0}]}"#,
            #"{"text": "z", "continuation": " and then"}"#,
            #"{"ids": [1, 2], "continuation_ids": [3, 4]}"#,
            #"{"text": "w", "target_id": 42, "contrast_id": 43}"#,
        ]
        let s = try PromptSet.parse(lines.joined(separator: "\n"), path: "p.jsonl")
        let e = s.entries
        XCTAssertEqual(e.count, 8)
        XCTAssertEqual(e[0].text, "The capital of France is")
        XCTAssertEqual(e[0].targets, [TargetTerm(token: .text(" Paris"))])
        XCTAssertEqual(e[1].text, "When Mary and John went")
        XCTAssertEqual(e[1].targets, [TargetTerm(token: .text(" Mary"), contrast: .text(" John"))])
        XCTAssertEqual(e[2].ids, [1, 5, 9])
        XCTAssertEqual(e[2].targets, [TargetTerm(position: 1, token: .id(7), contrast: .id(8))])
        XCTAssertEqual(e[3].targets, [TargetTerm(position: -2, token: .id(3)), TargetTerm(position: -2, token: .id(4))])
        XCTAssertEqual(e[4].targets, [TargetTerm(token: .text(" a")), TargetTerm(token: .id(12)), TargetTerm(position: 0, token: .text(" b"))])
        XCTAssertEqual(e[5].continuationText, " and then")
        XCTAssertEqual(e[6].continuationIds, [3, 4])
        XCTAssertEqual(e[7].targets, [TargetTerm(token: .id(42), contrast: .id(43))])
        XCTAssertEqual(e.map(\.location.line), Array(1...8))
    }

    func testJSONLErrorsNameLineAndField() {
        let L = { (n: Int) in SourceLocation(file: "p.jsonl", line: n) }
        func parse(_ bad: String) throws { _ = try PromptSet.parse(#"{"text": "ok"}"# + "\n\n" + bad, path: "p.jsonl") }
        assertError(.invalidJSON(L(3), reason: "cannot parse the line as JSON")) { try parse(#"{"text": "unterminated"#) }
        assertError(.invalidJSON(L(3), reason: "the line is not a JSON object")) { try parse("[1, 2]") }
        assertError(.missingField(L(3), field: "text")) { try parse(#"{"target": " x"}"#) }
        assertError(.conflictingFields(L(3), "text", "ids")) { try parse(#"{"text": "a", "ids": [1, 2]}"#) }
        assertError(.conflictingFields(L(3), "text", "prompt")) { try parse(#"{"text": "a", "prompt": "b"}"#) }
        assertError(.badField(L(3), field: "ids[1]", reason: "expected an integer")) { try parse(#"{"ids": [1, 2.5]}"#) }
        assertError(.badField(L(3), field: "text", reason: "expected a string")) { try parse(#"{"text": 5}"#) }
        assertError(.conflictingFields(L(3), "target", "targets")) { try parse(#"{"text": "a", "target": 1, "targets": [2]}"#) }
        assertError(.badField(L(3), field: "contrast", reason: "a contrast needs a 'target'")) { try parse(#"{"text": "a", "contrast": " b"}"#) }
        assertError(.badField(L(3), field: "target", reason: "expected a token text, a token id or an object")) {
            try parse(#"{"text": "a", "target": true}"#)
        }
        assertError(.missingField(L(3), field: "target.token")) { try parse(#"{"text": "a", "target": {"position": 1}}"#) }
        assertError(.badField(L(3), field: "target.postion", reason: "unknown key (expected [\"contrast\", \"contrast_id\", \"id\", \"position\", \"token\"])")) {
            try parse(#"{"text": "a", "target": {"postion": 1, "id": 3}}"#)
        }
        assertError(.badField(L(3), field: "target", reason: "empty token text")) { try parse(#"{"text": "a", "target": ""}"#) }
        assertError(.conflictingFields(L(3), "continuation", "continuation_ids")) {
            try parse(#"{"text": "a", "continuation": "b", "continuation_ids": [1]}"#)
        }
    }

    // MARK: - --target grammar

    func testTargetSpecGrammar() throws {
        XCTAssertEqual(try TargetMode.parse("auto"), .auto)
        XCTAssertEqual(try TargetMode.parse("next-token"), .nextToken)
        XCTAssertEqual(try TargetMode.parse("last-max"), .lastMax)
        XCTAssertEqual(try TargetMode.parse("continuation"), .continuation)
        XCTAssertEqual(try TargetMode.parse("-1:1234"), .terms([TargetTerm(position: -1, token: .id(1234))]))
        XCTAssertEqual(try TargetMode.parse("3:17,5:42"), .terms([TargetTerm(position: 3, token: .id(17)), TargetTerm(position: 5, token: .id(42))]))
        XCTAssertEqual(try TargetMode.parse(#"" Paris""#), .terms([TargetTerm(token: .text(" Paris"))]))
        XCTAssertEqual(try TargetMode.parse(#"-1:" Mary"-' John'"#),
                       .terms([TargetTerm(position: -1, token: .text(" Mary"), contrast: .text(" John"))]))
        XCTAssertEqual(try TargetMode.parse(#"0:"a,b",7-8"#),
                       .terms([TargetTerm(position: 0, token: .text("a,b")), TargetTerm(token: .id(7), contrast: .id(8))]))
        XCTAssertEqual(try TargetMode.parse(#"'\''"#), .terms([TargetTerm(token: .text("'"))]))
        for bad in ["", "nexttoken", "-1:", "1:2:3", "\"open", "1:-2", "x:3", "1:2,", "''"] {
            XCTAssertThrowsError(try TargetMode.parse(bad), "'\(bad)' should not parse") { e in
                guard case .badTargetSpec(let s, _)? = e as? AttributionError else { return XCTFail("\(e)") }
                XCTAssertEqual(s, bad)
            }
        }
        XCTAssertEqual(TargetMode.terms([TargetTerm(position: -1, token: .text(" Mary"), contrast: .id(3))]).description, #"-1:" Mary"-3"#)
    }

    // MARK: - Preparing samples (stories260K: tokenizer with BOS)

    func testPrepareTokenizesResolvesTargetsAndDefaults() throws {
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        let lines = [
            #"{"text": "Once upon a time"}"#,
            #"{"text": "Once upon a time", "target": " there", "contrast": 378}"#,
            #"{"ids": [1, 403, 407], "continuation_ids": [261, 378]}"#,
            #"{"text": "Lily saw a cat", "targets": [{"position": 0, "id": 5}, {"position": -1, "id": 6}]}"#,
        ]
        let set = try PromptSet.parse(lines.joined(separator: "\n"), path: "p.jsonl")
        let s = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: .auto)
        let p0 = try tok.encode("Once upon a time")
        XCTAssertEqual(p0.first, tok.bosId)
        XCTAssertEqual(s[0].tokens, p0)
        XCTAssertEqual(s[0].explain, .nextToken(from: 0))
        XCTAssertEqual(s[0].label, "p.jsonl:1")
        let there = try tok.encode(" there", addBOS: false)
        XCTAssertEqual(there.count, 1)
        XCTAssertEqual(s[1].explain, .groups([[ExplainTerm(position: p0.count - 1, token: there[0]),
                                               ExplainTerm(position: p0.count - 1, token: 378, coefficient: -1)]]))
        XCTAssertEqual(s[2].tokens, [1, 403, 407, 261, 378])
        XCTAssertEqual(s[2].promptLength, 3)
        XCTAssertEqual(s[2].explain, .nextToken(from: 2), "a given continuation is explained by default")
        let n3 = s[3].tokens.count
        XCTAssertEqual(s[3].explain, .groups([[ExplainTerm(position: 0, token: 5)], [ExplainTerm(position: n3 - 1, token: 6)]]))
        // An explicit run-wide target overrides the prompts' own.
        let lm = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: .lastMax)
        XCTAssertTrue(lm.allSatisfy { $0.explain == .lastMax })
        let nt = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: .nextToken)
        XCTAssertTrue(nt.allSatisfy { $0.explain == .nextToken(from: 0) })
        let terms = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: try TargetMode.parse("-2:9"))
        XCTAssertEqual(terms[2].explain, .groups([[ExplainTerm(position: 3, token: 9)]]), "negative = from the end of prompt + continuation")
    }

    func testPrepareErrorsNameFileLineAndField() throws {
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        func prep(_ text: String, _ path: String = "bad.jsonl", target: TargetMode = .auto) throws {
            _ = try PromptSamples.prepare(try PromptSet.parse(text, path: path), model: m.model, tokenizer: tok, target: target)
        }
        let L = { (n: Int) in SourceLocation(file: "bad.jsonl", line: n) }
        let ok = #"{"text": "Once upon a time"}"#
        // "a" with BOS is 2 tokens; ids [5] is 1 token.
        assertError(.tooFewTokens(L(2), count: 1)) { try prep(ok + "\n" + #"{"ids": [5]}"#) }
        assertError(.tokenOutOfVocabulary(L(1), field: "ids[2]", id: 512, vocabSize: 512)) { try prep(#"{"ids": [1, 2, 512]}"#) }
        assertError(.tokenOutOfVocabulary(L(1), field: "ids[0]", id: -1, vocabSize: 512)) { try prep(#"{"ids": [-1, 2]}"#) }
        assertError(.tokenOutOfVocabulary(L(1), field: "target", id: 9999, vocabSize: 512)) { try prep(#"{"ids": [1, 2], "target": 9999}"#) }
        assertError(.tokenOutOfVocabulary(L(1), field: "continuation_ids[0]", id: 600, vocabSize: 512)) {
            try prep(#"{"ids": [1, 2], "continuation_ids": [600]}"#)
        }
        assertError(.positionOutOfRange(L(1), field: "target", position: 7, length: 3)) {
            try prep(#"{"ids": [1, 2, 3], "target": {"position": 7, "id": 4}}"#)
        }
        assertError(.positionOutOfRange(L(1), field: "targets[1]", position: -4, length: 3)) {
            try prep(#"{"ids": [1, 2, 3], "targets": [{"position": 0, "id": 4}, {"position": -4, "id": 4}]}"#)
        }
        assertError(.positionOutOfRange(L(1), field: "--target", position: 3, length: 3)) {
            try prep(#"{"ids": [1, 2, 3]}"#, target: try TargetMode.parse("3:4"))
        }
        let multi = try tok.encode(" Once upon", addBOS: false)
        assertError(.notSingleToken(L(1), field: "target", text: " Once upon", ids: multi)) {
            try prep(#"{"text": "Lily", "target": " Once upon"}"#)
        }
        XCTAssertEqual(m.model.contextOrigin.map { URL(fileURLWithPath: $0).lastPathComponent }, "config.json key 'max_position_embeddings'")
        assertError(.tooLong(L(1), tokens: 513, limit: 512, origin: m.model.contextOrigin)) {
            try prep(#"{"ids": ["# + Array(repeating: "3", count: 513).joined(separator: ",") + "]}")
        }
    }

    func testTxtLineWithOneTokenIsAnErrorWithItsLine() throws {
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        // With BOS every non-empty text has ≥ 2 tokens; a model without BOS shows the check on text lines.
        XCTAssertTrue(tok.addsBOS)
        let set = PromptSet(path: "p.txt", entries: [PromptEntry(location: SourceLocation(file: "p.txt", line: 3), ids: [7])])
        assertError(.tooFewTokens(SourceLocation(file: "p.txt", line: 3), count: 1)) {
            _ = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: .auto)
        }
    }

    func testTextPromptsWithoutTokenizerAreAnError() throws {
        let model = try F.tiny("tiny-opt")
        let set = try PromptSet.parse("hello\n", path: "p.txt")
        assertError(.needsTokenizer(SourceLocation(file: "p.txt", line: 1))) {
            _ = try PromptSamples.prepare(set, model: model, tokenizer: nil, target: .auto)
        }
        let ids = try PromptSet.parse(#"{"ids": [2, 10, 20]}"#, path: "p.jsonl")
        XCTAssertEqual(try PromptSamples.prepare(ids, model: model, tokenizer: nil, target: .auto)[0].tokens, [2, 10, 20])
    }

    func testContinuationIsGeneratedGreedilyWhenMissing() throws {
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        let set = try PromptSet.parse(#"{"text": "Once upon a time"}"# + "\n" + #"{"text": "Lily", "continuation": " was happy"}"#,
                                      path: "b.jsonl")
        let s = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: .continuation, maxNewTokens: 6)
        let prompt = try tok.encode("Once upon a time")
        var sampler = Sampler(temperature: 0)
        let expected = try m.model.generate(prompt: prompt, maxNewTokens: 6, sampler: &sampler, stop: [tok.eosId ?? 2]).tokens
        XCTAssertEqual(s[0].promptLength, prompt.count)
        XCTAssertEqual(Array(s[0].tokens.prefix(prompt.count)), prompt)
        XCTAssertEqual(Array(s[0].tokens.dropFirst(prompt.count).prefix(expected.count)), expected)
        XCTAssertEqual(s[0].explain, .nextToken(from: prompt.count - 1))
        // A given continuation is used as is.
        let lily = try tok.encode("Lily"), was = try tok.encode(" was happy", addBOS: false)
        XCTAssertEqual(s[1].tokens, lily + was)
        XCTAssertEqual(s[1].explain, .nextToken(from: lily.count - 1))
        assertError(.badField(SourceLocation(file: "b.jsonl", line: 1), field: "continuation", reason: "none given and --max-new-tokens is 0")) {
            _ = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: .continuation, maxNewTokens: 0)
        }
    }
}
