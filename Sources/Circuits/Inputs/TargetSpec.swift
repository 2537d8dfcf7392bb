import Foundation
import Tokenize
import Transformer

// MARK: - What is explained (run-wide setting)

/// The run-wide `--target`. Per-sample `ExplainSpec`s are resolved from it.
public enum TargetMode: Equatable, Sendable, CustomStringConvertible {
    /// Per prompt: its own target fields if any, else its given continuation, else next-token.
    /// For corpus windows: next-token.
    case auto
    /// At every position t the logit of the true next token x_{t+1} (one backward pass per sequence).
    case nextToken
    /// The largest logit at the last position.
    case lastMax
    /// The continuation tokens (given, or generated greedily): ExplainSpec.nextToken(from: promptLength − 1).
    case continuation
    /// Explicit logits / logit differences, the same for every sample.
    case terms([TargetTerm])

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .nextToken: return "next-token"
        case .lastMax: return "last-max"
        case .continuation: return "continuation"
        case .terms(let t): return t.map(\.description).joined(separator: ",")
        }
    }

    /// Parses `--target`: `auto`, `next-token`, `last-max`, `continuation`, or a
    /// comma-separated list of terms `[POS:]REF[-REF]` where POS is a position
    /// (negative counts from the end; omitted = last prompt token), REF a token
    /// id or a double/single-quoted token text, and `A-B` a logit difference:
    /// `-1:1234`, `'" Paris"'`, `'-1:" Mary"-" John"'`, `3:17,5:42`.
    public static func parse(_ spec: String) throws -> TargetMode {
        switch spec {
        case "auto": return .auto
        case "next-token": return .nextToken
        case "last-max": return .lastMax
        case "continuation": return .continuation
        default: break
        }
        var p = TargetSpecParser(chars: Array(spec), spec: spec)
        var terms = [try p.term()]
        while p.peek == "," { p.i += 1; terms.append(try p.term()) }
        guard p.i == p.chars.count else { throw p.fail("unexpected '\(QuotedName.safe(String(p.chars[p.i...])))' at offset \(p.i)") }
        return .terms(terms)
    }
}

/// Recursive-descent parser for the `--target` term grammar.
struct TargetSpecParser {
    let chars: [Character]
    let spec: String
    var i = 0
    var peek: Character? { i < chars.count ? chars[i] : nil }

    func fail(_ why: String) -> AttributionError {
        .badTargetSpec(spec, reason: why + " (expected auto, next-token, last-max, continuation or [POS:]REF[-REF],…)")
    }

    mutating func term() throws -> TargetTerm {
        var position: Int? = nil
        let start = i
        if peek == "-" || peek?.isNumber == true {
            let n = try integer(signed: true)
            if peek == ":" { i += 1; position = n } else { i = start }
        }
        let token = try ref()
        var contrast: TokenRef? = nil
        if peek == "-" { i += 1; contrast = try ref() }
        return TargetTerm(position: position, token: token, contrast: contrast)
    }

    mutating func integer(signed: Bool) throws -> Int {
        var s = ""
        if signed, peek == "-" { s.append("-"); i += 1 }
        while let c = peek, c.isASCII, c.isNumber { s.append(c); i += 1 }
        guard let n = Int(s) else { throw fail("expected a number at offset \(i)") }
        return n
    }

    mutating func ref() throws -> TokenRef {
        guard let c = peek else { throw fail("expected a token id or a quoted token text at the end") }
        if c == "\"" || c == "'" {
            i += 1
            var s = ""
            while let d = peek, d != c {
                if d == "\\", i + 1 < chars.count { i += 1 }
                s.append(chars[i]); i += 1
            }
            guard peek == c else { throw fail("unterminated quote") }
            i += 1
            guard !s.isEmpty else { throw fail("empty token text") }
            return .text(s)
        }
        guard c.isASCII, c.isNumber else { throw fail("expected a token id or a quoted token text at offset \(i)") }
        return .id(try integer(signed: false))
    }
}

// MARK: - Resolving terms against a sequence

enum TargetResolver {
    /// A token reference → id, checked against the vocabulary. Text must be one token (encoded without BOS).
    static func id(_ ref: TokenRef, field: String, at loc: SourceLocation, tokenizer: Tokenizer?, vocab: Int) throws -> Int {
        switch ref {
        case .id(let i):
            guard i >= 0, i < vocab else { throw AttributionError.tokenOutOfVocabulary(loc, field: field, id: i, vocabSize: vocab) }
            return i
        case .text(let s):
            guard let tokenizer else { throw AttributionError.needsTokenizer(loc) }
            let ids = try tokenizer.encode(s, addBOS: false)
            guard ids.count == 1 else { throw AttributionError.notSingleToken(loc, field: field, text: s, ids: ids) }
            guard ids[0] < vocab else { throw AttributionError.tokenOutOfVocabulary(loc, field: field, id: ids[0], vocabSize: vocab) }
            return ids[0]
        }
    }

    /// Terms → explained groups for a sequence of `length` tokens whose prompt has `promptLength` tokens.
    static func groups(_ terms: [TargetTerm], fieldPrefix: String, length n: Int, promptLength: Int, at loc: SourceLocation,
                       tokenizer: Tokenizer?, vocab: Int) throws -> [ExplainGroup] {
        try terms.enumerated().map { k, t in
            let field = terms.count > 1 ? "\(fieldPrefix)[\(k)]" : fieldPrefix
            let raw = t.position ?? (promptLength - 1)
            let pos = raw < 0 ? n + raw : raw
            guard pos >= 0, pos < n else { throw AttributionError.positionOutOfRange(loc, field: field, position: raw, length: n) }
            var g = [ExplainTerm(position: pos, token: try id(t.token, field: field, at: loc, tokenizer: tokenizer, vocab: vocab))]
            if let c = t.contrast {
                g.append(ExplainTerm(position: pos, token: try id(c, field: field + ".contrast", at: loc, tokenizer: tokenizer,
                                                               vocab: vocab), coefficient: -1))
            }
            return g
        }
    }
}
