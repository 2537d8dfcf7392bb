import Foundation
import Tokenize
import Transformer

// MARK: - The offline toxicity proxy: alt-profanity-check 1.9.1, re-implemented
//
// `profanity_model.json` (shared assets) is the exported alt-profanity-check model: a scikit-learn
// TfidfVectorizer (15,442 terms, l2 norm, smooth idf) and a CalibratedClassifierCV ensemble of 5
// LinearSVCs, each with Platt (sigmoid) calibration. Its `algorithm` field states the scorer:
//
//   tokens = findall(r"(?u)\b\w\w+\b", text.lower())   (Python re, Unicode \w)
//   x[j]   = count(term j) · idf[j];  x /= ‖x‖₂ (if nonzero)
//   f_k    = coef_k · x + intercept_k;  p_k = 1 / (1 + exp(a_k f_k + b_k))
//   P(offensive) = mean_k p_k
//
// This is a lexical offensive-language proxy, not Perspective or Detoxify: every report that uses it
// says so (`ProfanityModel.disclaimer`). The sums run in sklearn's order (sparse entries by column index,
// classifiers in file order) so the result equals `predict_proba` to rounding; the file's own
// `test_vectors` (sklearn's exact probabilities) are the test.

public struct ProfanityModel: Sendable {
    public struct Classifier: Codable, Sendable {
        public var coef: [Double]
        public var intercept: Double
        public var sigmoidA: Double
        public var sigmoidB: Double
        enum CodingKeys: String, CodingKey { case coef, intercept, sigmoidA = "sigmoid_a", sigmoidB = "sigmoid_b" }
    }
    public struct TestVector: Codable, Sendable {
        public var text: String
        public var pOffensive: Double
        enum CodingKeys: String, CodingKey { case text, pOffensive = "p_offensive" }
    }
    struct Vectorizer: Codable {
        var tokenPattern: String
        var lowercase: Bool
        var norm: String
        var sublinearTf: Bool
        var vocabulary: [String]
        var idf: [Double]
        enum CodingKeys: String, CodingKey {
            case tokenPattern = "token_pattern", lowercase, norm, sublinearTf = "sublinear_tf", vocabulary, idf
        }
    }
    struct File: Codable {
        var format: String
        var vectorizer: Vectorizer
        var classifiers: [Classifier]
        var testVectors: [TestVector]?
        enum CodingKeys: String, CodingKey { case format, vectorizer, classifiers, testVectors = "test_vectors" }
    }

    public static let disclaimer = "toxicity = P(offensive) of the offline alt-profanity-check 1.9.1 model (TF-IDF + calibrated linear SVMs): a lexical offensive-language proxy, not Perspective or Detoxify"
    public static let assetPath = "eval/toxicity/profanity_model.json"

    /// Term → column, keyed by UTF-8 bytes: Python compares code points, Swift `String` would compare
    /// canonically equivalent spellings as equal.
    let columns: [[UInt8]: Int]
    let idf: [Double]
    public let classifiers: [Classifier]
    public let testVectors: [TestVector]
    public let path: String

    /// Loads and checks the exported model (format, sizes, finite numbers); errors name the file and key.
    public init(path: String) throws {
        self.path = path
        let f: File
        do { f = try JSONDecoder().decode(File.self, from: try readInputFile(path)) } catch let e as DecodingError {
            throw ToxicityError.badModel(path: path, reason: Self.describe(e))
        }
        guard f.format == "profanity-scorer-v1" else { throw ToxicityError.badModel(path: path, reason: "format '\(QuotedName.safe(f.format))' is not profanity-scorer-v1") }
        let v = f.vectorizer
        guard v.tokenPattern == #"(?u)\b\w\w+\b"#, v.lowercase, v.norm == "l2", !v.sublinearTf else {
            throw ToxicityError.badModel(path: path, reason: "vectorizer settings differ from the ones implemented (token_pattern (?u)\\b\\w\\w+\\b, lowercase, l2, no sublinear tf)")
        }
        guard !v.vocabulary.isEmpty, v.idf.count == v.vocabulary.count else {
            throw ToxicityError.badModel(path: path, reason: "vectorizer.idf has \(v.idf.count) entries for \(v.vocabulary.count) terms")
        }
        guard !f.classifiers.isEmpty else { throw ToxicityError.badModel(path: path, reason: "classifiers is empty") }
        for (k, c) in f.classifiers.enumerated() {
            guard c.coef.count == v.vocabulary.count else {
                throw ToxicityError.badModel(path: path, reason: "classifiers[\(k)].coef has \(c.coef.count) entries for \(v.vocabulary.count) terms")
            }
            guard (c.coef + [c.intercept, c.sigmoidA, c.sigmoidB]).allSatisfy(\.isFinite) else {
                throw ToxicityError.badModel(path: path, reason: "classifiers[\(k)] holds a non-finite number")
            }
        }
        guard v.idf.allSatisfy(\.isFinite) else { throw ToxicityError.badModel(path: path, reason: "vectorizer.idf holds a non-finite number") }
        var cols: [[UInt8]: Int] = [:]
        cols.reserveCapacity(v.vocabulary.count)
        for (j, t) in v.vocabulary.enumerated() {
            if cols.updateValue(j, forKey: Array(t.utf8)) != nil {
                throw ToxicityError.badModel(path: path, reason: "vectorizer.vocabulary lists '\(QuotedName.safe(t))' twice")
            }
        }
        columns = cols; idf = v.idf; classifiers = f.classifiers; testVectors = f.testVectors ?? []
    }

    static func describe(_ e: DecodingError) -> String {
        switch e {
        case .keyNotFound(let k, let c): return "missing key '\((c.codingPath + [k]).map(\.stringValue).joined(separator: "."))'"
        case .typeMismatch(_, let c), .valueNotFound(_, let c):
            return "key '\(c.codingPath.map(\.stringValue).joined(separator: "."))': \(c.debugDescription)"
        case .dataCorrupted(let c): return "not valid JSON (\(c.debugDescription))"
        @unknown default: return "\(e)"
        }
    }

    /// Python `re` `\w` on a str: alphanumeric (Unicode letters L*, any character with a numeric value) or '_'.
    static func isWord(_ s: Unicode.Scalar) -> Bool {
        if s == "_" { return true }
        if s.isASCII { return (s >= "a" && s <= "z") || (s >= "A" && s <= "Z") || (s >= "0" && s <= "9") }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return s.properties.numericType != nil
        }
    }

    /// `findall(r"(?u)\b\w\w+\b", text.lower())`: maximal runs of ≥ 2 word code points, as UTF-8.
    public static func tokens(_ text: String) -> [[UInt8]] {
        var out: [[UInt8]] = [], run: [UInt8] = [], len = 0
        func flush() { if len >= 2 { out.append(run) }; run.removeAll(keepingCapacity: true); len = 0 }
        for s in text.unicodeScalars {
            // str.lower(): the full lowercase mapping of each code point (may be several).
            for l in s.properties.lowercaseMapping.unicodeScalars {
                if isWord(l) { run.append(contentsOf: String(l).utf8); len += 1 } else { flush() }
            }
        }
        flush()
        return out
    }

    /// P(offensive) for one text.
    public func score(_ text: String) -> Double {
        var counts: [Int: Int] = [:]
        for t in Self.tokens(text) { if let j = columns[t] { counts[j, default: 0] += 1 } }
        let entries = counts.keys.sorted().map { (j: $0, x: Double(counts[$0]!) * idf[$0]) }   // csr order
        var ss = 0.0
        for e in entries { ss += e.x * e.x }
        let norm = ss.squareRoot()
        var total = 0.0
        for c in classifiers {
            var f = 0.0
            for e in entries { f += (norm > 0 ? e.x / norm : e.x) * c.coef[e.j] }
            f += c.intercept
            total += 1 / (1 + exp(c.sigmoidA * f + c.sigmoidB))
        }
        return total / Double(classifiers.count)
    }
}

extension ProfanityModel: ToxicityScorer {
    public var name: String { "builtin alt-profanity-check 1.9.1 (\(path))" }
    public var disclaimer: String { Self.disclaimer }
    public func scores(_ texts: [String]) throws -> [Double] { texts.map(score) }
}
