import Foundation
import Tokenize

// MARK: - Where a config came from
//
// Every loader (config.json, GGUF metadata, llama2.c header) fills the same
// `ModelConfig`, but a user needs the error in the words of *their* file: the
// key `hidden_size` of config.json, `llama.embedding_length` of a GGUF, the
// `dim` field of a llama2.c header. `ConfigSource` carries those names, and
// all value checks live in `ModelConfig.validate(source:)` and
// `ModelConfig.checkWeights(_:source:fileOf:weights:)` below, called by every loader.

/// The fields of `ModelConfig` that come from a file.
public enum ConfigField: String, CaseIterable, Sendable {
    case vocabSize, dModel, nLayers, nHeads, nKVHeads, headDim, dFF, maxSeqLen, normEps, ropeTheta, bosTokenId, eosTokenId
    case tiedEmbeddings, attentionBias, mlpBias
}

public struct ConfigSource: Sendable, Equatable {
    /// The file the values were read from (config.json, the .gguf, the .bin).
    public var file: String
    /// The key (or header field) each value was read from, in that file's vocabulary.
    public var keys: [ConfigField: String]
    /// Whether the head dimension was stated; otherwise it is hidden size / heads, which must divide.
    public var explicitHeadDim: Bool

    public init(file: String, keys: [ConfigField: String], explicitHeadDim: Bool) {
        self.file = file; self.keys = keys; self.explicitHeadDim = explicitHeadDim
    }

    public func key(_ f: ConfigField) -> String { keys[f] ?? Self.hfLlamaKeys[f]! }

    /// Fallback names: HF Llama's config.json keys (the family file's table).
    static let hfLlamaKeys: [ConfigField: String] = LlamaFamily.configKeys

    /// config.json of an HF checkpoint, in the family's keys (its file's `configKeys`).
    public static func hf(file: String, family: ModelFamily, explicitHeadDim: Bool) -> ConfigSource {
        ConfigSource(file: file, keys: family.definition.configKeys, explicitHeadDim: explicitHeadDim)
    }

    /// GGUF `llama` metadata.
    public static func gguf(file: String, explicitHeadDim: Bool, vocabKey: String) -> ConfigSource {
        ConfigSource(file: file, keys: [
            .vocabSize: vocabKey, .dModel: "llama.embedding_length", .nLayers: "llama.block_count",
            .nHeads: "llama.attention.head_count", .nKVHeads: "llama.attention.head_count_kv",
            .headDim: "llama.attention.key_length", .dFF: "llama.feed_forward_length",
            .maxSeqLen: "llama.context_length", .normEps: "llama.attention.layer_norm_rms_epsilon",
            .ropeTheta: "llama.rope.freq_base", .bosTokenId: "tokenizer.ggml.bos_token_id",
            .eosTokenId: "tokenizer.ggml.eos_token_id",
        ], explicitHeadDim: explicitHeadDim)
    }

    /// The 7-field header of a llama2.c `.bin` (ε, θ and BOS/EOS are fixed by the format).
    public static func llama2c(file: String) -> ConfigSource {
        ConfigSource(file: file, keys: [
            .vocabSize: "vocab_size", .dModel: "dim", .nLayers: "n_layers", .nHeads: "n_heads",
            .nKVHeads: "n_kv_heads", .headDim: "n_heads", .dFF: "hidden_dim", .maxSeqLen: "seq_len",
            .normEps: "(fixed rms eps)", .ropeTheta: "(fixed rope theta)", .bosTokenId: "(fixed BOS id)",
            .eosTokenId: "(fixed EOS id)",
        ], explicitHeadDim: false)
    }
}

// MARK: - Limits

extension ModelConfig {
    /// Upper bounds far above any real model (Llama-3-405B: d 16384, 126 layers, ffn 53248,
    /// vocab 128k; contexts up to 10M) and low enough that products of two or three of them
    /// cannot overflow. A value beyond them is a corrupt or hostile file.
    public static let limits: [ConfigField: Int] = [
        .vocabSize: 1 << 24, .dModel: 1 << 20, .nLayers: 1 << 14, .nHeads: 1 << 16, .nKVHeads: 1 << 16,
        .headDim: 1 << 16, .dFF: 1 << 22, .maxSeqLen: 1 << 28,
    ]

    /// Refuses values that would build a degenerate model, fail far from the cause, print
    /// `nan`, or make a size computation overflow; the error names the file and the key.
    public func validate(source: ConfigSource) throws {
        let f = source.file
        func bad(_ field: ConfigField, _ reason: String) -> ModelError {
            ModelError.badConfig(file: f, key: source.key(field), reason: reason)
        }
        let sizes: [(ConfigField, Int)] = [(.vocabSize, vocabSize), (.dModel, dModel), (.nLayers, nLayers), (.nHeads, nHeads),
                                           (.nKVHeads, nKVHeads), (.headDim, headDim), (.dFF, dFF), (.maxSeqLen, maxSeqLen)]
        for (field, v) in sizes {
            guard v > 0 else { throw bad(field, "must be positive, found \(v)") }
            let limit = Self.limits[field]!
            guard v <= limit else { throw bad(field, "\(v) is implausibly large (limit \(limit))") }
        }
        guard nHeads % nKVHeads == 0 else {
            throw bad(.nKVHeads, "\(nKVHeads) key/value heads do not divide \(source.key(.nHeads)) = \(nHeads)")
        }
        if !source.explicitHeadDim && dModel % nHeads != 0 {
            throw bad(.nHeads, "\(nHeads) heads do not divide \(source.key(.dModel)) = \(dModel)")
        }
        if definition.usesRoPE && headDim % 2 != 0 {
            throw bad(.headDim, "head dimension \(headDim) must be even for RoPE")
        }
        guard CheckedSize.product(nHeads, headDim).map({ $0 <= 1 << 22 }) == true else {
            throw bad(.nHeads, "\(nHeads) heads × head dimension \(headDim) is implausibly large")
        }
        guard normEps.isFinite, normEps > 0, normEps < 1 else {
            throw bad(.normEps, "must be a finite number in (0, 1), found \(normEps)")
        }
        if definition.usesRoPE {
            guard ropeTheta.isFinite, ropeTheta > 0 else { throw bad(.ropeTheta, "must be a finite positive number, found \(ropeTheta)") }
        }
        for (field, id) in [(ConfigField.bosTokenId, bosTokenId), (.eosTokenId, eosTokenId)] {
            if let id, id < 0 || id >= vocabSize {
                throw bad(field, "token id \(id) is outside the vocabulary (\(source.key(.vocabSize)) = \(vocabSize))")
            }
        }
    }

    // MARK: Config against the weights

    /// Compares the config with the shapes of the weights it describes (HF names) and names the
    /// config key with both values when they disagree. Without this a wrong `hidden_size` shows
    /// up as "tensor 'model.embed_tokens.weight' has shape [512, 64], expected [512, 7]".
    /// Absent tensors are left to the model builder (which reports them as missing).
    /// `fileOf` names the file holding a tensor and `weights` the weight files as a whole, so a
    /// contradiction caused by a damaged weight file (a renamed tensor) names that file too.
    public func checkWeights(_ shapes: [String: [Int]], source: ConfigSource,
                             fileOf: (String) -> String, weights: String) throws {
        func mismatch(_ field: ConfigField, says: Int, tensor: String, has: Int, what: String) -> ModelError {
            ModelError.badConfig(file: source.file, key: source.key(field),
                                 reason: "the config says \(says), but tensor '\(QuotedName.safe(tensor))' has \(has) \(what)")
        }
        let names = family.names, embed = names.embed, lmHead = names.lmHead, layerPrefix = names.layerPrefix

        if let s = shapes[embed], s.count == 2 {
            if s[1] != dModel { throw mismatch(.dModel, says: dModel, tensor: embed, has: s[1], what: "columns") }
            if s[0] != vocabSize { throw mismatch(.vocabSize, says: vocabSize, tensor: embed, has: s[0], what: "rows") }
        }
        if let s = shapes[lmHead], s.count == 2, s[0] != vocabSize {
            throw mismatch(.vocabSize, says: vocabSize, tensor: lmHead, has: s[0], what: "rows")
        }
        let offset = definition.positionOffset
        if let pos = names.positions, let s = shapes[pos], s.count == 2, s[0] != maxSeqLen + offset {
            throw ModelError.badConfig(file: source.file, key: source.key(.maxSeqLen), reason:
                "the config says \(maxSeqLen), but tensor '\(pos)' has \(s[0]) rows (= context + \(offset))")
        }
        // Layer count: the highest layer index present, against the declared count.
        var present = [Int: String]()     // layer index → its first tensor name
        for name in shapes.keys.sorted() where name.hasPrefix(layerPrefix) {
            let rest = name.dropFirst(layerPrefix.count)
            if let dot = rest.firstIndex(of: "."), let l = Int(rest[..<dot]), l >= 0, present[l] == nil { present[l] = name }
        }
        if let top = present.keys.max(), top >= nLayers, let tensor = present[top] {
            throw ModelError.badConfig(file: source.file, key: source.key(.nLayers), reason:
                "the config says \(nLayers) layers, but the weights have layers up to \(top) (\(present.count) present): "
                + "tensor '\(QuotedName.safe(tensor))' in \(QuotedName.path(fileOf(tensor)))")
        }
        if present.count < nLayers {
            throw ModelError.badConfig(file: source.file, key: source.key(.nLayers),
                                       reason: "the config says \(nLayers) layers, but the weights (\(QuotedName.path(weights))) hold \(present.count)")
        }
        // Per-layer rows are blamed on the config only when the tensor's columns agree with the
        // (already confirmed) hidden size; otherwise the tensor itself is malformed and the
        // model builder reports its shape.
        func rows(_ name: String) -> Int? {
            guard let s = shapes[name], s.count == 2, s[1] == dModel else { return nil }
            return s[0]
        }
        let q = names.query(0), k = names.key(0)
        if let r = rows(q), r != qDim {
            throw ModelError.badConfig(file: source.file, key: source.key(.nHeads), reason:
                "the config says \(nHeads) heads × head dimension \(headDim) = \(qDim) query rows, but tensor '\(q)' has \(r)")
        }
        if let r = rows(k), r != kvDim {
            throw ModelError.badConfig(file: source.file, key: source.key(.nKVHeads), reason:
                "the config says \(nKVHeads) key/value heads × head dimension \(headDim) = \(kvDim) rows, but tensor '\(k)' has \(r)")
        }
        let up = names.mlpIn(0)
        if let r = rows(up), r != dFF { throw mismatch(.dFF, says: dFF, tensor: up, has: r, what: "rows") }
        // Flags that require tensors the file does not have.
        func requires(_ field: ConfigField, _ flag: Bool, _ tensor: String) throws {
            guard flag, shapes[tensor] == nil else { return }
            throw ModelError.badConfig(file: source.file, key: source.key(field),
                                       reason: "the config requires tensor '\(tensor)', which the weights (\(QuotedName.path(weights))) do not have")
        }
        if !tiedEmbeddings && shapes[embed] != nil {
            try requires(.tiedEmbeddings, true, lmHead)
        }
        if shapes[q] != nil { try requires(.attentionBias, attentionBias, Linear.biasName(for: q)) }
        if shapes[up] != nil { try requires(.mlpBias, mlpBias, Linear.biasName(for: up)) }
    }
}
