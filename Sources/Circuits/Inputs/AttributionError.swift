import Foundation
import Tokenize

// MARK: - Where an input came from

/// A line of an input file ("prompts.jsonl:12"), or a whole file (line 0).
public struct SourceLocation: Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) { self.file = file; self.line = line }
    public var description: String { line > 0 ? "\(file):\(line)" : file }
}

// MARK: - Errors

/// Every failure of the attribution front end, naming the file, line and field involved.
public enum AttributionError: LocalizedError, Equatable {
    /// The prompts file has no prompt (only blank lines, or nothing).
    case emptyPromptFile(path: String)
    /// A JSONL line is not a JSON object.
    case invalidJSON(SourceLocation, reason: String)
    /// A required field is absent (e.g. neither `text` nor `ids`).
    case missingField(SourceLocation, field: String)
    /// Two fields that exclude each other are both present.
    case conflictingFields(SourceLocation, String, String)
    /// A field has the wrong type or an unusable value.
    case badField(SourceLocation, field: String, reason: String)
    /// A prompt has fewer than 2 tokens (nothing to predict).
    case tooFewTokens(SourceLocation, count: Int)
    /// A token id (given in `ids`, a target or a contrast) is outside the vocabulary.
    case tokenOutOfVocabulary(SourceLocation, field: String, id: Int, vocabSize: Int)
    /// A target position is outside the sequence.
    case positionOutOfRange(SourceLocation, field: String, position: Int, length: Int)
    /// A target/contrast given as text does not tokenize to exactly one token.
    case notSingleToken(SourceLocation, field: String, text: String, ids: [Int])
    /// The sequence is longer than the model's context.
    case tooLong(SourceLocation, tokens: Int, limit: Int, origin: String? = nil)
    /// A `--target` string does not parse.
    case badTargetSpec(String, reason: String)
    /// The corpus has too few tokens for one window of the requested length.
    case corpusTooShort(path: String, tokens: Int, needed: Int)
    /// `--resume`: the checkpoint was made with different settings.
    case resumeMismatch(path: String, field: String, checkpoint: String, now: String)
    /// `--resume`: the file is not an attribution checkpoint (or is damaged).
    case badCheckpoint(path: String, reason: String)
    /// A checkpoint exists but `--resume` was not given.
    case checkpointExists(path: String)
    /// The output path equals an input path.
    case outputIsInput(path: String)
    /// The run was stopped (signal or stop hook) after a checkpoint was written.
    case interrupted(samplesDone: Int, total: Int, checkpoint: String)
    /// The run was stopped, and nothing was saved because the output is a device or FIFO.
    case interruptedWithoutCheckpoint(samplesDone: Int, total: Int, out: String)
    /// `--resume` with an output that is a device or FIFO (which gets no checkpoints).
    case resumeNeedsFile(out: String)
    /// The model has no tokenizer but text prompts were given.
    case needsTokenizer(SourceLocation)
    /// A sample failed during the run (progress so far was checkpointed).
    case sampleFailed(label: String, reason: String)

    /// A stop on request (SIGINT/SIGTERM): the CLI exits 130.
    public var isInterruption: Bool {
        switch self {
        case .interrupted, .interruptedWithoutCheckpoint: return true
        default: return false
        }
    }

    public var errorDescription: String? {
        switch self {
        case .emptyPromptFile(let p): return "\(p): the prompt file contains no prompts"
        case .invalidJSON(let l, let r): return "\(l): not a valid JSON object: \(r)"
        case .missingField(let l, let f): return "\(l): missing field '\(QuotedName.safe(f))'"
        case .conflictingFields(let l, let a, let b): return "\(l): fields '\(QuotedName.safe(a))' and '\(QuotedName.safe(b))' cannot both be given"
        case .badField(let l, let f, let r): return "\(l): field '\(QuotedName.safe(f))': \(r)"
        case .tooFewTokens(let l, let n):
            return "\(l): the prompt tokenizes to \(n) token\(n == 1 ? "" : "s"); at least 2 are needed"
        case .tokenOutOfVocabulary(let l, let f, let id, let v):
            return "\(l): field '\(QuotedName.safe(f))': token id \(id) is outside the vocabulary (size \(v))"
        case .positionOutOfRange(let l, let f, let p, let n):
            return "\(l): field '\(QuotedName.safe(f))': position \(p) is outside the sequence of \(n) tokens (valid: 0..<\(n) or -\(n)..<0)"
        case .notSingleToken(let l, let f, let t, let ids):
            return "\(l): field '\(QuotedName.safe(f))': \"\(QuotedName.safe(t))\" tokenizes to \(ids.count) tokens \(QuotedName.list(ids)), expected exactly 1 (give an id instead)"
        case .tooLong(let l, let n, let lim, let o):
            return "\(l): the sequence has \(n) tokens; the model's context is \(lim)" + (o.map { " (\($0))" } ?? "")
        case .badTargetSpec(let s, let r): return "invalid target '\(QuotedName.safe(s))': \(r)"
        case .corpusTooShort(let p, let n, let need):
            return "\(p): the corpus has \(n) tokens, fewer than one window of \(need)"
        case .resumeMismatch(let p, let f, let c, let n):
            return "\(p) was made with \(f) = \(c), but this run has \(f) = \(n); rerun with the same settings or delete the checkpoint"
        case .badCheckpoint(let p, let r): return "\(p): not a usable attribution checkpoint: \(r)"
        case .checkpointExists(let p):
            return "\(p) exists (an interrupted run): pass --resume to continue it, or delete it to start over"
        case .outputIsInput(let p): return "the output path \(p) is also an input; choose another --out"
        case .interrupted(let d, let t, let c):
            return "interrupted after \(d)/\(t) samples; progress saved to \(c) (continue with --resume)"
        case .interruptedWithoutCheckpoint(let d, let t, let o):
            return "interrupted after \(d)/\(t) samples; nothing was saved (--out \(o) is not a regular file, so no checkpoint is kept)"
        case .resumeNeedsFile(let o): return "--resume needs --out to be a regular file; \(o) is a device or FIFO and gets no checkpoints"
        case .needsTokenizer(let l): return "\(l): text prompts need a tokenizer, but the model has none (give token ids)"
        case .sampleFailed(let l, let r): return "\(l): \(r)"
        }
    }
}
