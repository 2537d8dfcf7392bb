import Foundation
import Tokenize

// MARK: - Errors
//
// Every user-facing failure is a typed error whose message names the file,
// tensor or key involved. The CLI prints `Error: <errorDescription>` and exits 1.

public enum ModelError: LocalizedError, Equatable {
    case fileNotFound(path: String)
    case unreadable(path: String, reason: String)
    case unknownFormat(path: String)
    case badConfig(file: String, key: String, reason: String)
    case unknownModelType(file: String, modelType: String)
    case unsupported(file: String, feature: String)
    case missingTensor(name: String, file: String)
    case shapeMismatch(name: String, file: String, expected: [Int], found: [Int])
    /// A weight that is NaN or ±Inf: refused at load, where the file is known, instead of
    /// surfacing later as a NaN score far from its cause.
    case nonFiniteWeight(name: String, file: String, index: Int, value: Float)
    case missingTokenizer(path: String, reason: String? = nil)
    case emptyPrompt
    /// `origin`: where the context length was read (file and key), when known.
    case promptTooLong(tokens: Int, limit: Int, origin: String? = nil)
    case invalidToken(id: Int, vocabSize: Int)
    case cannotWrite(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .fileNotFound(let p): return "no such file or directory: \(QuotedName.path(p))"
        case .unreadable(let p, let r): return "cannot read \(QuotedName.path(p)): \(r)"
        case .unknownFormat(let p):
            return "\(QuotedName.path(p)): not a recognised model (expected an HF directory with config.json, a .gguf file, or a llama2.c .bin)"
        case .badConfig(let f, let k, let r): return "\(f): key '\(QuotedName.safe(k))': \(r)"
        case .unknownModelType(let f, let t):
            return "\(f): unsupported model_type '\(QuotedName.safe(t))' (supported: \(ModelFamily.supported.joined(separator: ", ")))"
        case .unsupported(let f, let what): return "\(f): unsupported: \(what)"
        case .missingTensor(let n, let f): return "\(f): tensor '\(QuotedName.safe(n))' is missing"
        case .shapeMismatch(let n, let f, let e, let s):
            return "\(f): tensor '\(QuotedName.safe(n))' has shape \(s), expected \(e)"
        case .nonFiniteWeight(let n, let f, let i, let v):
            return "\(f): tensor '\(QuotedName.safe(n))' holds a non-finite weight (\(v)) at flat index \(i)"
        case .missingTokenizer(let p, let reason?):
            return "\(QuotedName.path(p)): \(reason)"
        case .missingTokenizer(let p, nil):
            return "no tokenizer found for \(QuotedName.path(p)) (looked for tokenizer.json, tokenizer.model, vocab.json+merges.txt, tokenizer.bin)"
        case .emptyPrompt: return "the prompt is empty"
        case .promptTooLong(let n, let l, let o):
            return "the prompt is \(n) tokens long; the model's context is \(l) tokens" + (o.map { " (\($0))" } ?? "")
        case .invalidToken(let id, let v): return "token id \(id) is outside the vocabulary (size \(v))"
        case .cannotWrite(let p, let r): return "cannot write \(QuotedName.path(p)): \(r)"
        }
    }
}

extension ModelError {
    /// The model-side error for a failure of the shared input-file check (same messages
    /// as before it existed: `fileNotFound`, `unreadable` with the reason).
    public init(_ e: InputFileError) {
        switch e {
        case .notFound(let p): self = .fileNotFound(path: p)
        case .notRegular(let p, let k): self = .unreadable(path: p, reason: "is a \(k), not a regular file")
        case .unreadable(let p, let r): self = .unreadable(path: p, reason: r)
        case .tooLarge(let p, let s, let l): self = .unreadable(path: p, reason: "\(s) bytes exceeds the \(l)-byte limit")
        }
    }
}
