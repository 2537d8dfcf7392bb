import Foundation

// MARK: - Tokenizer protocol

/// The contract every tokenizer family implements. Ids are `Int` everywhere.
public protocol Tokenizer: AnyObject {
    /// Number of ids the tokenizer can produce (pieces / vocab entries).
    var vocabSize: Int { get }
    var bosId: Int? { get }
    var eosId: Int? { get }
    /// Whether `encode(_:)` prepends BOS by default (per model family rules:
    /// Llama SentencePiece yes, OPT yes (`</s>` = 2), GPT-2 no, SmolLM2 GGUF no).
    var addsBOS: Bool { get }
    /// Short human description, e.g. "sentencepiece (32000 pieces)".
    var kind: String { get }

    /// Encode text to ids; `addBOS` overrides `addsBOS` when given.
    func encode(_ text: String, addBOS: Bool?) throws -> [Int]
    /// Decode ids to text (special/control tokens are dropped).
    func decode(_ ids: [Int]) -> String
    /// The surface string of one token, for display (heatmaps, tables).
    func tokenText(_ id: Int) -> String
}

extension Tokenizer {
    public func encode(_ text: String) throws -> [Int] { try encode(text, addBOS: nil) }
}

public enum TokenizerError: LocalizedError, Equatable {
    case fileNotFound(path: String)
    case invalidFile(path: String, reason: String)
    case sentencePiece(path: String, message: String)
    case unknownToken(String)

    public var errorDescription: String? {
        switch self {
        case .fileNotFound(let p): return "tokenizer file not found: \(p)"
        case .invalidFile(let p, let r): return "\(p): invalid tokenizer file: \(r)"
        case .sentencePiece(let p, let m): return "\(p): sentencepiece: \(m)"
        case .unknownToken(let t): return "unknown token '\(t)'"
        }
    }
}

// MARK: - Sources

/// Where the tokenizer for a checkpoint comes from.
public enum TokenizerSource: Sendable {
    /// SentencePiece `.model` file.
    case sentencePiece(path: String)
    /// llama2.c `tokenizer.bin` (scores + pieces).
    case llama2c(path: String)
    /// HF `tokenizer.json` (byte-level BPE).
    case tokenizerJSON(path: String)
    /// GPT-2 style `vocab.json` + `merges.txt`.
    case vocabMerges(vocab: String, merges: String)
    /// Byte-level BPE embedded in GGUF metadata (`tokenizer.ggml.*`).
    /// `pre` is `tokenizer.ggml.pre` (e.g. "smollm", "gpt2"): selects the pre-tokenizer regex.
    /// `file`: the .gguf it came from, named (with the metadata key) in the tokenizer's errors.
    case ggufBPE(tokens: [String], merges: [String], tokenTypes: [Int32], pre: String?, file: String = "gguf")
}


/// Family rules the model side knows and the tokenizer file may not state
/// (e.g. OPT prepends `</s>` = 2 as BOS; SmolLM2's GGUF says add_bos=false).
/// `nil` means "use what the tokenizer file says / the tokenizer's default".
public struct TokenizerHints: Sendable, Equatable {
    public var bosId: Int?
    public var eosId: Int?
    public var addBOS: Bool?
    public init(bosId: Int? = nil, eosId: Int? = nil, addBOS: Bool? = nil) {
        self.bosId = bosId; self.eosId = eosId; self.addBOS = addBOS
    }
}
