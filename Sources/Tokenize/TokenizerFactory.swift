import Foundation

// MARK: - Factory

/// Creates the tokenizer for `source` and applies `hints` (non-nil hint fields override
/// what the file says).
///
/// Default BOS rules per family:
/// * SentencePiece `.model`: BOS added (Llama rule).
/// * llama2.c `tokenizer.bin`: BOS = 1 added.
/// * `vocab.json` + `merges.txt` / `tokenizer.json`: fairseq layout (`<s>` = 0, `</s>` = 2, OPT)
///   adds `</s>` = 2 as BOS; plain GPT-2 adds none; `tokenizer.json` with a `TemplateProcessing`
///   post-processor adds its leading special token.
/// * GGUF byte-level BPE: no BOS unless `hints.addBOS` says so (SmolLM2: false).
///
/// - Throws: `TokenizerError` naming the offending file.
public func makeTokenizer(_ source: TokenizerSource, hints: TokenizerHints = TokenizerHints()) throws -> Tokenizer {
    let tokenizer: HintableTokenizer
    switch source {
    case .sentencePiece(let path):
        tokenizer = try SentencePieceTokenizer(path: path)
    case .llama2c(let path):
        tokenizer = try Llama2CTokenizer(path: path)
    case .tokenizerJSON(let path):
        tokenizer = try ByteLevelBPETokenizer(tokenizerJSONPath: path)
    case .vocabMerges(let vocab, let merges):
        tokenizer = try ByteLevelBPETokenizer(vocabPath: vocab, mergesPath: merges)
    case .ggufBPE(let tokens, let merges, let tokenTypes, let pre, let file):
        tokenizer = try ByteLevelBPETokenizer(ggufTokens: tokens, merges: merges, tokenTypes: tokenTypes, pre: pre, file: file)
    }
    tokenizer.apply(hints)
    return tokenizer
}

// MARK: - Hint application

/// Tokenizers whose BOS/EOS settings can be overridden after loading.
protocol HintableTokenizer: Tokenizer {
    var bosId: Int? { get set }
    var eosId: Int? { get set }
    var addsBOS: Bool { get set }
}

extension HintableTokenizer {
    func apply(_ hints: TokenizerHints) {
        if let b = hints.bosId { bosId = b }
        if let e = hints.eosId { eosId = e }
        if let a = hints.addBOS { addsBOS = a }
    }
}

extension SentencePieceTokenizer: HintableTokenizer {}
extension Llama2CTokenizer: HintableTokenizer {}
extension ByteLevelBPETokenizer: HintableTokenizer {}
