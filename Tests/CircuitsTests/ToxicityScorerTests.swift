import Circuits
import Foundation
import TestSupport
import XCTest

/// The built-in toxicity proxy against sklearn (the asset's own test vectors), its tokenizer against
/// Python `re`, a hand-computed two-term model, and the external-scorer protocol's failure modes.
final class ToxicityScorerTests: XCTestCase {
    /// sklearn `predict_proba` on 20 strings, stored in the asset by its exporter (see shared/assets/MANIFEST.md).
    func testReproducesSklearnTestVectors() throws {
        let m = try ProfanityModel(path: try Assets.path(ProfanityModel.assetPath))
        XCTAssertEqual(m.testVectors.count, 20)
        for t in m.testVectors {
            XCTAssertEqual(m.score(t.text), t.pOffensive, accuracy: 1e-12, "\(t.text)")
        }
        // The set spans both classes, so a constant scorer cannot pass.
        XCTAssertGreaterThan(m.testVectors.map(\.pOffensive).max()!, 0.99)
        XCTAssertLessThan(m.testVectors.map(\.pOffensive).min()!, 0.01)
    }

    /// Expected lists printed by Python 3.11: re.findall(r'(?u)\b\w\w+\b', text.lower()).
    func testTokensMatchPythonRegex() {
        func toks(_ s: String) -> [String] { ProfanityModel.tokens(s).map { String(decoding: $0, as: UTF8.self) } }
        XCTAssertEqual(toks("Don't stop_me ÉTÉ 12 a x² İstanbul e\u{301}t\u{e9} ß-ok"),
                       ["don", "stop_me", "été", "12", "x²", "stanbul", "té", "ok"])
        XCTAssertEqual(toks("ǅemal ⅫV 一二 a_b"), ["ǆemal", "ⅻv", "一二", "a_b"])
        XCTAssertEqual(toks(""), [])
    }

    /// vocab [bad, word], idf [2, 1], one classifier coef [1, 0], a = −1, b = 0.5:
    /// "Bad bad word!" → x = [4, 1]/√17, f = 4/√17 + 0.25, p = 1/(1 + exp(−f + 0.5)).
    func testHandComputedTinyModel() throws {
        let dir = try Scratch.dir(self)
        let path = dir.appendingPathComponent("m.json").path
        try tinyModel(coef: [1, 0]).write(toFile: path, atomically: true, encoding: .utf8)
        let m = try ProfanityModel(path: path)
        let f = 4 / 17.0.squareRoot() + 0.25
        XCTAssertEqual(m.score("Bad bad word!"), 1 / (1 + exp(-f + 0.5)), accuracy: 1e-15)
        XCTAssertEqual(m.score("nothing known"), 1 / (1 + exp(-0.25 + 0.5)), accuracy: 1e-15)   // x = 0: the intercept alone
        try tinyModel(coef: [1]).write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProfanityModel(path: path)) { e in
            XCTAssertEqual(e as? ToxicityError, .badModel(path: path, reason: "classifiers[0].coef has 1 entries for 2 terms"))
        }
        try "{\"format\": \"profanity-scorer-v1\"}".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProfanityModel(path: path)) { e in
            XCTAssertTrue(e.localizedDescription.contains("missing key 'vectorizer'"), e.localizedDescription)
        }
    }

    func tinyModel(coef: [Double]) -> String {
        """
        {"format": "profanity-scorer-v1", "vectorizer": {"token_pattern": "(?u)\\\\b\\\\w\\\\w+\\\\b", "lowercase": true,
         "norm": "l2", "smooth_idf": true, "sublinear_tf": false, "vocabulary": ["bad", "word"], "idf": [2, 1]},
         "classifiers": [{"coef": \(coef), "intercept": 0.25, "sigmoid_a": -1, "sigmoid_b": 0.5}]}
        """
    }

    func testCommandScorerParsesAndKeepsPartialResults() throws {
        XCTAssertEqual(try CommandScorer(command: "cat >/dev/null; printf '{\"toxicity\": 0.25}\\n{\"toxicity\":1}\\n'").scores(["a", "b"]), [0.25, 1])
        // The command reads exactly the JSONL we send.
        let echo = try CommandScorer(command: "grep -c '^{\"text\":\"x\\\\\\\\ny\"}$' | sed 's/.*/{\"toxicity\": 0.5}/'").scores(["x\\ny"])
        XCTAssertEqual(echo, [0.5])
        func failure(_ cmd: String, _ n: Int) -> ToxicityError? {
            do { _ = try CommandScorer(command: cmd).scores(Array(repeating: "t", count: n)); return nil } catch { return error as? ToxicityError }
        }
        guard case .scorerFailed(_, let r1, let p1, 3)? = failure("printf '{\"toxicity\":0.25}\\nnope\\n'", 3) else { return XCTFail("garbage accepted") }
        XCTAssertEqual(p1, [0.25]); XCTAssertTrue(r1.contains("output line 2"), r1)
        guard case .scorerFailed(_, let r2, let p2, 2)? = failure("printf '{\"toxicity\":0.5}\\n'; echo boom >&2; exit 3", 2) else { return XCTFail("exit 3 accepted") }
        XCTAssertEqual(p2, [0.5]); XCTAssertTrue(r2.contains("status 3") && r2.contains("boom"), r2)
        guard case .scorerFailed(_, let r3, let p3, 2)? = failure("printf '{\"toxicity\":0.5}\\n'", 2) else { return XCTFail("short output accepted") }
        XCTAssertEqual(p3, [0.5]); XCTAssertTrue(r3.contains("1 score lines for 2 texts"), r3)
        guard case .scorerFailed(_, let r4, let p4, 1)? = failure("echo '{\"toxicity\": 1.5}'", 1) else { return XCTFail("1.5 accepted") }
        XCTAssertEqual(p4, []); XCTAssertTrue(r4.contains("not in [0, 1]"), r4)
        guard case .scorerFailed? = failure("echo '{\"toxicity\": true}'", 1) else { return XCTFail("a boolean accepted") }
    }

    func testInputErrorsNameTheLine() {
        XCTAssertEqual(try ToxicityInput.parse(Data("{\"text\":\"a\",\"x\":1}\n\n{\"text\":\"b\"}\n".utf8), path: "f"), ["a", "b"])
        XCTAssertThrowsError(try ToxicityInput.parse(Data("{\"text\":\"a\"}\n{\"prompt\":\"b\"}\n".utf8), path: "f")) { e in
            XCTAssertEqual(e as? ToxicityError, .badInput(path: "f", line: 2, reason: "no string field \"text\""))
        }
        XCTAssertThrowsError(try ToxicityInput.parse(Data("plain text\n".utf8), path: "f")) { e in
            XCTAssertEqual((e as? ToxicityError)?.localizedDescription, "f:1: not a JSON object (expected {\"text\": \"…\"})")
        }
    }
}
