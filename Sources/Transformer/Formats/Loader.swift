import Foundation
import Tokenize

// MARK: - Loading any supported checkpoint
//
// `--model PATH` accepts an HF directory (config.json + safetensors, single or
// sharded), a GGUF file, or a llama2.c `.bin`. Every loader yields a
// `Checkpoint` with HF names, then `Model.build` consumes it.

public struct LoadedModel {
    public let model: Model
    public let tokenizer: Tokenizer?
    public let format: String
    public let sourceDType: String
    public let path: String
    public let loadSeconds: Double

    /// The tokenizer, or a typed error naming the model path.
    public func requireTokenizer() throws -> Tokenizer {
        guard let tokenizer else { throw ModelError.missingTokenizer(path: path) }
        return tokenizer
    }
}

public enum ModelLoader {
    public static func load(_ path: String, needTokenizer: Bool = true) throws -> LoadedModel {
        let t0 = Date()
        let ck = try checkpoint(path)
        let (source, hints) = (ck.tokenizer, tokenizerHints(for: ck))
        let model = try Model.build(from: ck)
        var tok: Tokenizer? = nil
        if let source, needTokenizer { tok = try makeTokenizer(source, hints: hints) }
        return LoadedModel(model: model, tokenizer: tok, format: ck.format, sourceDType: ck.sourceDType,
                           path: path, loadSeconds: Date().timeIntervalSince(t0))
    }

    /// Reads a checkpoint in any supported format.
    public static func checkpoint(_ path: String) throws -> Checkpoint {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw ModelError.fileNotFound(path: path) }
        if isDir.boolValue { return try loadHFDirectory(path) }
        let magic = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)).read(upToCount: 4) ?? Data()
        if magic == Data("GGUF".utf8) {
            let g = try GGUFFile(path: path)
            var ck = try loadGGUF(g)
            ck.addBOS = g.tokenizerHints.addBOS
            return ck
        }
        if path.hasSuffix(".bin") { return try loadLlama2C(path: path) }
        throw ModelError.unknownFormat(path: path)
    }

    static func tokenizerHints(for ck: Checkpoint) -> TokenizerHints {
        tokenizerHints(config: ck.config, tokenizer: ck.tokenizer, addBOS: ck.addBOS)
    }

    /// BOS/EOS rules per family and tokenizer source: OPT prepends `</s>` = 2;
    /// GGUF byte-level BPE adds BOS only when the file says so (SmolLM2: no);
    /// otherwise the checkpoint's `add_bos_token`, when stated.
    public static func tokenizerHints(config: ModelConfig, tokenizer: TokenizerSource?, addBOS: Bool?) -> TokenizerHints {
        switch config.family {
        case .opt: return TokenizerHints(bosId: config.bosTokenId ?? 2, eosId: config.eosTokenId ?? 2, addBOS: true)
        case .llama:
            if case .ggufBPE? = tokenizer {
                return TokenizerHints(bosId: config.bosTokenId, eosId: config.eosTokenId, addBOS: addBOS ?? false)
            }
            return TokenizerHints(bosId: config.bosTokenId, eosId: config.eosTokenId, addBOS: addBOS)
        }
    }
}
