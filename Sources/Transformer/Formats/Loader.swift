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
    /// Files the loader read or looked for (`Checkpoint.inputFiles`), for `OutputGuard.check`.
    public let inputFiles: [String]
    /// Why the checkpoint's tokenizer could not be used (`Checkpoint.tokenizerAbsence`), or nil.
    public var tokenizerAbsence: String? = nil

    /// The tokenizer, or a typed error naming the model path (and the key that explains why, if any).
    public func requireTokenizer() throws -> Tokenizer {
        guard let tokenizer else { throw ModelError.missingTokenizer(path: path, reason: tokenizerAbsence) }
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
        if let source, needTokenizer {
            tok = try makeCheckedTokenizer(source, hints: hints, config: ck.config, configSource: ck.configSource, modelPath: path)
        }
        return LoadedModel(model: model, tokenizer: tok, format: ck.format, sourceDType: ck.sourceDType,
                           path: path, loadSeconds: Date().timeIntervalSince(t0), inputFiles: ck.inputFiles,
                           tokenizerAbsence: ck.tokenizerAbsence)
    }

    /// Reads a checkpoint in any supported format; a NaN or ±Inf weight is refused here.
    public static func checkpoint(_ path: String) throws -> Checkpoint {
        let ck = try readCheckpoint(path)
        try checkFinite(ck)
        return ck
    }

    /// Throws `nonFiniteWeight` for the first (by name) tensor holding a NaN or ±Inf.
    /// One pass per tensor, branch-free with plain integer AND/ADD/OR (SSE2 has no unsigned max,
    /// so this vectorises on baseline x86-64 too); only a tensor that fails is scanned again for the index.
    public static func checkFinite(_ ck: Checkpoint) throws {
        for name in ck.tensors.keys.sorted() {
            let data = ck.tensors[name]!.data
            // Exponent bits + one exponent step carries into bit 31 exactly when the exponent is all
            // ones (Inf or NaN); OR-ing that over the buffer flags any non-finite value.
            let flags: UInt32 = data.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: UInt32.self) { u in
                    var acc: UInt32 = 0
                    for x in u { acc |= (x & 0x7F80_0000) &+ 0x0080_0000 }
                    return acc
                }
            }
            if flags & 0x8000_0000 != 0, let i = data.firstIndex(where: { !$0.isFinite }) {
                throw ModelError.nonFiniteWeight(name: name, file: ck.file(of: name), index: i, value: data[i])
            }
        }
    }

    private static func readCheckpoint(_ path: String) throws -> Checkpoint {
        // What the path is decides the reader; anything but a directory or a regular file
        // (a FIFO would block the read of the magic forever) is refused here.
        switch InputFile.kind(path) {
        case nil: throw ModelError.fileNotFound(path: path)
        case .directory?: return try loadHFDirectory(path)
        case .other(let kind)?: throw ModelError.unreadable(path: path, reason: "is a \(kind), not a regular file or a model directory")
        case .regular?: break
        }
        let magic: Data
        do { magic = try InputFile.prefix(path, count: 4) } catch let e as InputFileError { throw ModelError(e) }
        if magic == Data("GGUF".utf8) {
            let g = try GGUFFile(path: path)
            var ck = try loadGGUF(g)
            ck.addBOS = g.tokenizerHints.addBOS
            ck.inputFiles = [path]
            return ck
        }
        if path.hasSuffix(".bin") {
            var ck = try loadLlama2C(path: path)
            ck.inputFiles = [path] + llama2CTokenizerCandidates(modelPath: path, vocabSize: ck.config.vocabSize)
            return ck
        }
        throw ModelError.unknownFormat(path: path)
    }

    /// `makeTokenizer` plus `checkTokenizer`; errors about a GGUF's embedded tokenizer name the
    /// model file and the metadata key instead of a pseudo-path.
    public static func makeCheckedTokenizer(_ source: TokenizerSource, hints: TokenizerHints, config: ModelConfig,
                                            configSource: ConfigSource?, modelPath: String) throws -> Tokenizer {
        let tok = try makeTokenizer(source, hints: hints)     // a GGUF source names its file and key itself
        try checkTokenizer(tok, source: source, config: config, configSource: configSource, modelPath: modelPath)
        return tok
    }

    /// Refuses a tokenizer that can produce ids the model has no embedding for (more pieces than
    /// the model's vocabulary, or a BOS/EOS id outside it), naming the tokenizer file and the
    /// model's vocabulary key. Without this the first such id fails deep in a forward pass.
    public static func checkTokenizer(_ tok: Tokenizer, source: TokenizerSource, config: ModelConfig,
                                      configSource: ConfigSource?, modelPath: String) throws {
        let file: String
        switch source {
        case .sentencePiece(let p), .llama2c(let p), .tokenizerJSON(let p): file = p
        case .vocabMerges(let v, _): file = v
        case .ggufBPE: file = modelPath + " (tokenizer.ggml.tokens)"
        }
        let vocabKey = configSource.map { "\($0.file) \($0.key(.vocabSize))" } ?? "vocab_size"
        let model = config.vocabSize
        if tok.vocabSize > model {
            throw ModelError.badConfig(file: file, key: "vocabulary", reason:
                "the tokenizer has \(tok.vocabSize) tokens, but the model's vocabulary (\(vocabKey)) is \(model)")
        }
        for (what, id) in [("BOS", tok.bosId), ("EOS", tok.eosId)] {
            if let id, id < 0 || id >= model {
                throw ModelError.badConfig(file: file, key: "\(what) id", reason:
                    "token id \(id) is outside the model's vocabulary (\(vocabKey) = \(model))")
            }
        }
    }

    static func tokenizerHints(for ck: Checkpoint) -> TokenizerHints {
        tokenizerHints(config: ck.config, tokenizer: ck.tokenizer, addBOS: ck.addBOS)
    }

    /// BOS/EOS rules of the family (its file's `tokenizerHints`) for a tokenizer source and
    /// the checkpoint's `add_bos_token`, when stated.
    public static func tokenizerHints(config: ModelConfig, tokenizer: TokenizerSource?, addBOS: Bool?) -> TokenizerHints {
        config.definition.tokenizerHints(config: config, tokenizer: tokenizer, addBOS: addBOS)
    }
}
