import Foundation
import Tokenize
import Transformer

// MARK: - Reference windows from a corpus (`--text FILE --seqlen N --samples K --seed S`)
//
// Wanda's `get_c4` draws a random document longer than seqlen and takes a
// random crop. Here:
//
// 1. Documents: a `.jsonl` file gives one document per line, from the first of
//    `text`, `prefix` + `gold_completion` (the shared C4 stand-in), `prompt`.
//    Any other file is one document (CRLF → LF).
// 2. Window k (k = 0..<K), with SplitMix64 seeded by S (`SeededRNG`): pick a
//    document d = next() mod D. If it has at least N' tokens (N' = N − 1 when
//    the tokenizer adds BOS, else N), crop inside it. Otherwise append the
//    following documents d+1, d+2, … (wrapping around), separated by EOS, until
//    the stream has N' tokens, then crop. The crop start is next() mod (L − N' + 1)
//    over the stream length L. BOS, if the tokenizer uses one, is put in front.
//
// Why concatenate rather than skip short documents: the shared C4 stand-in has
// no document of 512 tokens (they are 320–1554 characters), so skipping would
// leave nothing; packing documents with EOS between them is how these models
// were pre-trained, so the windows stay in-distribution. Why BOS in front: the
// models are trained and evaluated (our perplexity) with it; a window without
// it puts an arbitrary token at the attention-sink position.
// Documents are tokenized (without BOS) only when a window touches them.

/// A text corpus split into documents.
public struct TextCorpus: Sendable {
    public var path: String
    public var documents: [String]

    public init(path: String, documents: [String]) { self.path = path; self.documents = documents }

    /// Reads `.jsonl` (one document per line) or plain text (one document).
    public static func load(_ path: String) throws -> TextCorpus {
        let data = try readInputFile(path)
        let text = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        guard path.lowercased().hasSuffix(".jsonl") else {
            guard !text.allSatisfy(\.isWhitespace) else { throw AttributionError.emptyPromptFile(path: path) }
            return TextCorpus(path: path, documents: [text])
        }
        var docs: [String] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !raw.allSatisfy(\.isWhitespace) else { continue }
            let loc = SourceLocation(file: path, line: i + 1)
            guard case .object(let o)? = try? JSONDecoder().decode(JSONValue.self, from: Data(raw.utf8)) else {
                throw AttributionError.invalidJSON(loc, reason: "expected a JSON object per line")
            }
            if case .string(let s)? = o["text"] { docs.append(s) }
            else if case .string(let p)? = o["prefix"], case .string(let g)? = o["gold_completion"] { docs.append(p + g) }
            else if case .string(let s)? = o["prompt"] { docs.append(s) }
            else { throw AttributionError.missingField(loc, field: "text (or prefix + gold_completion, or prompt)") }
        }
        guard !docs.isEmpty else { throw AttributionError.emptyPromptFile(path: path) }
        return TextCorpus(path: path, documents: docs)
    }

    /// K reproducible windows of exactly `seqlen` tokens (see the file comment).
    /// `explain` is applied to every window (next-token by default).
    public func windows(tokenizer: Tokenizer, seqlen: Int, count: Int, seed: UInt64, vocab: Int,
                        target: TargetMode = .nextToken) throws -> [AttributionSample] {
        guard seqlen >= 2 else { throw AttributionError.tooFewTokens(SourceLocation(file: path, line: 0), count: seqlen) }
        if case .continuation = target {
            throw AttributionError.badTargetSpec("continuation", reason: "corpus windows have no prompt/continuation split")
        }
        let bos = tokenizer.addsBOS ? tokenizer.bosId : nil
        let body = seqlen - (bos == nil ? 0 : 1)
        let eos = tokenizer.eosId
        var cache: [Int: [Int]] = [:]
        func tokens(_ d: Int) throws -> [Int] {
            if let t = cache[d] { return t }
            let t = try tokenizer.encode(documents[d], addBOS: false)
            cache[d] = t
            return t
        }
        var rng = SeededRNG(seed: seed)
        var out: [AttributionSample] = []
        let nDocs = documents.count
        for k in 0..<count {
            let d = Int(rng.next() % UInt64(nDocs))
            var stream = try tokens(d)
            var joined = 0
            while stream.count < body {
                joined += 1
                guard joined < nDocs else {
                    throw AttributionError.corpusTooShort(path: path, tokens: stream.count - (eos == nil ? 0 : joined - 1), needed: body)
                }
                if let eos { stream.append(eos) }
                stream += try tokens((d + joined) % nDocs)
            }
            let start = Int(rng.next() % UInt64(stream.count - body + 1))
            let window = (bos.map { [$0] } ?? []) + Array(stream[start..<(start + body)])
            if let bad = window.first(where: { $0 < 0 || $0 >= vocab }) {
                throw AttributionError.tokenOutOfVocabulary(SourceLocation(file: path, line: 0), field: "text", id: bad, vocabSize: vocab)
            }
            let loc = SourceLocation(file: path, line: 0)
            let explain: ExplainSpec
            switch target {
            case .auto, .nextToken, .continuation: explain = .nextToken(from: 0)
            case .lastMax: explain = .lastMax
            case .terms(let t):
                explain = .groups(try TargetResolver.groups(t, fieldPrefix: "--target", length: seqlen, promptLength: seqlen,
                                                            at: loc, tokenizer: tokenizer, vocab: vocab))
            }
            let label = "\(URL(fileURLWithPath: path).lastPathComponent) window \(k) (doc \(d)\(joined > 0 ? "+\(joined)" : "") @ \(start))"
            out.append(AttributionSample(label: label, tokens: window, promptLength: seqlen, explain: explain))
        }
        return out
    }
}
