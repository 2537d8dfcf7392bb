import Foundation
import Tokenize

// MARK: - Task-set errors

/// Every failure of reading, generating or evaluating a task set, naming the file, line, field or flag involved.
public enum TaskError: LocalizedError, Equatable {
    /// The task file holds no prompt.
    case emptyTaskFile(path: String)
    /// The file's extension is neither .jsonl nor .csv.
    case unknownFormat(path: String)
    /// A JSONL line is not a JSON object.
    case invalidJSON(SourceLocation, reason: String)
    /// A CSV row is malformed (unterminated quote, wrong number of cells).
    case invalidCSV(SourceLocation, reason: String)
    /// The CSV header lacks a column every row needs.
    case missingColumn(path: String, column: String, header: [String])
    /// A required field is absent (e.g. a prompt without an answer).
    case missingField(SourceLocation, field: String)
    /// Two fields that exclude each other are both present.
    case conflictingFields(SourceLocation, String, String)
    /// A field has the wrong type or an unusable value.
    case badField(SourceLocation, field: String, reason: String)
    /// An answer or distractor given as text is not one token in this model's tokenizer.
    case notSingleToken(SourceLocation, field: String, text: String, ids: [Int])
    /// A token id is outside the vocabulary.
    case tokenOutOfVocabulary(SourceLocation, field: String, id: Int, vocabSize: Int)
    /// A text answer and its id disagree (the file was made for another tokenizer).
    case idMismatch(SourceLocation, field: String, text: String, fileId: Int, tokenizerId: Int)
    /// The clean and corrupted prompts tokenize to different lengths (positions would not line up).
    case lengthMismatch(SourceLocation, clean: Int, corrupted: Int)
    /// A prompt tokenizes to nothing, or is longer than the model's context.
    case badLength(SourceLocation, tokens: Int, limit: Int, origin: String? = nil)
    /// The answer and distractor sets share a token.
    case overlappingTargets(SourceLocation, id: Int)
    /// The model has no tokenizer but the task is text.
    case needsTokenizer(path: String)
    /// The IOI/greater-than asset file is unusable.
    case badAsset(path: String, reason: String)
    /// A `--templates` item names no template.
    case badTemplateSelection(String, reason: String)
    /// Fewer than 3 + 2 usable names remain after the single-token filter.
    case tooFewNames(kept: Int, dropped: [String])
    /// The seed's share of the prompt space holds fewer distinct prompts than requested.
    case promptSpaceExhausted(task: String, seed: Int, found: Int, requested: Int, spaceSize: Int)
    /// No corrupted prompt with the clean prompt's token count was found.
    case noEqualLengthCorruption(text: String, tries: Int)
    /// `--seed` outside the partitioned range.
    case seedOutOfRange(seed: Int, partitions: Int)

    public var errorDescription: String? {
        switch self {
        case .emptyTaskFile(let p): return "\(p): the task file contains no prompts"
        case .unknownFormat(let p): return "\(p): unknown task file format (expected .jsonl or .csv)"
        case .invalidJSON(let l, let r): return "\(l): not a valid JSON object: \(r)"
        case .invalidCSV(let l, let r): return "\(l): malformed CSV: \(r)"
        case .missingColumn(let p, let c, let h):
            return "\(p): the CSV header \(QuotedName.list(h.map { QuotedName.safe($0) })) has no '\(QuotedName.safe(c))' column (EAP-IG/MIB format: clean, corrupted, correct_idx, incorrect_idx | label)"
        case .missingField(let l, let f): return "\(l): missing field '\(QuotedName.safe(f))'"
        case .conflictingFields(let l, let a, let b): return "\(l): fields '\(QuotedName.safe(a))' and '\(QuotedName.safe(b))' cannot both be given"
        case .badField(let l, let f, let r): return "\(l): field '\(QuotedName.safe(f))': \(r)"
        case .notSingleToken(let l, let f, let t, let ids):
            return "\(l): field '\(QuotedName.safe(f))': \"\(QuotedName.safe(t))\" is \(ids.count) tokens \(QuotedName.list(ids)) in this model's tokenizer, expected exactly 1"
        case .tokenOutOfVocabulary(let l, let f, let id, let v):
            return "\(l): field '\(QuotedName.safe(f))': token id \(id) is outside the vocabulary (size \(v))"
        case .idMismatch(let l, let f, let t, let fid, let tid):
            return "\(l): field '\(QuotedName.safe(f))': the file says id \(fid) but this model's tokenizer encodes \"\(QuotedName.safe(t))\" as \(tid) (a task file made for another model?)"
        case .lengthMismatch(let l, let c, let k):
            return "\(l): the clean prompt has \(c) tokens but the corrupted one \(k); they must be equal so positions line up"
        case .badLength(let l, let n, let lim, let o):
            return "\(l): the prompt has \(n) tokens (need 1...\(lim)" + (o.map { "; the context is \($0)" } ?? "") + ")"
        case .overlappingTargets(let l, let id): return "\(l): token \(id) is both an answer and a distractor"
        case .needsTokenizer(let p): return "\(p): text prompts need a tokenizer, but the model has none"
        case .badAsset(let p, let r): return "\(p): \(r)"
        case .badTemplateSelection(let s, let r): return "--templates '\(QuotedName.safe(s))': \(r)"
        case .tooFewNames(let k, let d):
            return "only \(k) names are single tokens in this tokenizer (dropped: \(QuotedName.list(d.map { QuotedName.safe($0) }))); at least 5 are needed"
        case .promptSpaceExhausted(let t, let s, let f, let n, let size):
            return "\(t) seed \(s): only \(f) distinct prompts found in this seed's partition (about \(size) for all seeds together), \(n) requested; select more templates or ask for fewer"
        case .noEqualLengthCorruption(let t, let n):
            return "no corrupted prompt with the same token count as \"\(QuotedName.safe(t))\" after \(n) tries"
        case .seedOutOfRange(let s, let p):
            return "--seed \(s): must be in 0..<\(p) (each seed owns one of \(p) hash partitions of the prompt space, so different seeds give disjoint sets)"
        }
    }
}
