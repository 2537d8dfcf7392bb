import Foundation
import Tokenize

// GGUF `llama` architecture → HF-named, HF-layout checkpoint (names, shapes,
// q/k un-permutation, tokenizer source).

// MARK: - Llama checkpoint from GGUF

/// Load a llama-architecture GGUF as an HF-named, HF-layout F32 checkpoint.
public func loadGGUF(path: String) throws -> Checkpoint { try loadGGUF(GGUFFile(path: path)) }

/// Same, from an opened file (so callers can also read `tokenizerHints` / `summary` without reopening).
public func loadGGUF(_ g: GGUFFile) throws -> Checkpoint {
    let p = g.path
    guard let arch = g.architecture else { throw GGUFError.missingKey(path: p, key: "general.architecture") }
    guard arch == "llama" else { throw GGUFError.unsupportedArchitecture(path: p, architecture: arch) }
    func required(_ k: String) throws -> Int {
        guard let v = try g.int("llama." + k) else { throw GGUFError.missingKey(path: p, key: "llama." + k) }
        guard v > 0, v <= 1 << 24 else { throw GGUFError.badKey(path: p, key: "llama." + k, reason: "value \(v) out of range") }
        return v
    }
    let dModel = try required("embedding_length"), nLayers = try required("block_count")
    let dFF = try required("feed_forward_length"), nHeads = try required("attention.head_count")
    let nKV = try g.int("llama.attention.head_count_kv") ?? nHeads
    guard nKV > 0, nHeads % nKV == 0 else {
        throw GGUFError.badKey(path: p, key: "llama.attention.head_count_kv", reason: "\(nKV) does not divide \(nHeads) heads")
    }
    let headDim = try g.int("llama.attention.key_length") ?? dModel / nHeads
    guard headDim > 0, headDim % 2 == 0, g.metadata["llama.attention.key_length"] != nil || dModel % nHeads == 0 else {
        throw GGUFError.badKey(path: p, key: "llama.attention.head_count", reason: "head dim \(headDim) is invalid for embedding length \(dModel)")
    }
    if let s = g.string("llama.rope.scaling.type"), s != "none" {
        throw ModelError.unsupported(file: p, feature: "RoPE scaling '\(QuotedName.safe(s))'")
    }
    let tokens = try ggufTokenizerKeys(g)
    let vocabKey = tokens != nil ? "tokenizer.ggml.tokens" : g.metadata["llama.vocab_size"] != nil ? "llama.vocab_size" : "token_embd.weight"
    guard let vocab = try tokens?.count ?? g.int("llama.vocab_size") ?? g.tensor(named: "token_embd.weight")?.dims.last else {
        throw GGUFError.missingKey(path: p, key: "tokenizer.ggml.tokens")
    }
    let hints = g.tokenizerHints
    var config = ModelConfig(
        family: .llama, vocabSize: vocab, dModel: dModel, nLayers: nLayers, nHeads: nHeads, nKVHeads: nKV,
        headDim: headDim, dFF: dFF, maxSeqLen: try g.int("llama.context_length") ?? 2048,
        normEps: Float(try g.double("llama.attention.layer_norm_rms_epsilon") ?? 1e-5),
        ropeTheta: Float(try g.double("llama.rope.freq_base") ?? 10000),
        tiedEmbeddings: g.tensor(named: "output.weight") == nil,
        attentionBias: g.tensor(named: "blk.0.attn_q.bias") != nil, mlpBias: g.tensor(named: "blk.0.ffn_gate.bias") != nil,
        bosTokenId: nil, eosTokenId: nil)
    // A BOS/EOS key that is present but not an integer is as wrong as one out of range.
    for (key, id) in [("tokenizer.ggml.bos_token_id", hints.bosId), ("tokenizer.ggml.eos_token_id", hints.eosId)] {
        if let v = g.metadata[key], id == nil { throw GGUFError.badKey(path: p, key: key, reason: "expected a token id, found \(v)") }
    }
    config.bosTokenId = hints.bosId; config.eosTokenId = hints.eosId
    let source = ConfigSource.gguf(file: p, explicitHeadDim: g.metadata["llama.attention.key_length"] != nil, vocabKey: vocabKey)
    try config.validate(source: source)

    // Declared layers against what the file holds, before anything is sized by the count:
    // a llama layer is at least 9 tensors (H1: block_count 999,999 built a 9M-entry table first).
    guard g.tensors.count >= 9 * nLayers + 2 else {
        throw GGUFError.badKey(path: p, key: "llama.block_count",
                               reason: "\(nLayers) layers need at least \(9 * nLayers + 2) tensors; the file holds \(g.tensors.count)")
    }
    // The config against the weights' shapes (names the key with both values), from the
    // tensor infos alone: nothing is dequantized yet.
    var shapes = [String: [Int]]()
    for info in g.tensors {
        if let name = LlamaNames.fromGGUF(info.name, nLayers: Int.max)?.hf { shapes[name] = info.shape }
    }
    try config.checkWeights(shapes, source: source, fileOf: { _ in p }, weights: p)

    // Expected HF shapes double as the "is every required tensor there" check.
    let expected = LlamaNames.expectedShapes(config)

    var tensors = [String: Tensor](), elements = [GGMLType: Int]()
    for info in g.tensors {
        guard let (name, layerTensor) = LlamaNames.fromGGUF(info.name, nLayers: nLayers) else {
            // rope_freqs carries Llama-3 frequency scaling, which ModelConfig cannot express.
            if info.name == "rope_freqs.weight" { throw ModelError.unsupported(file: p, feature: "Llama-3 RoPE frequency factors (rope_freqs)") }
            throw GGUFError.unexpectedTensor(path: p, tensor: info.name)
        }
        guard info.type.canDequantize else { throw GGUFError.unsupportedTensorType(path: p, tensor: info.name, type: info.type.name) }
        if let s = expected[name], s != info.shape {
            throw ModelError.shapeMismatch(name: name, file: p, expected: s, found: info.shape)
        }
        var t = Tensor(shape: info.shape, data: try g.dequantize(info))
        // convert_hf_to_gguf permutes q with n_head and k with n_head_kv (weights and biases alike).
        if let h = layerTensor?.ropeHeads(config) {
            guard t.shape[0] % (2 * h) == 0 else {
                throw ModelError.shapeMismatch(name: name, file: p, expected: [h * headDim] + t.shape.dropFirst(), found: t.shape)
            }
            t = interleavedToRotateHalf(t, heads: h)
        }
        tensors[name] = t
        elements[info.type, default: 0] += info.count
    }
    for name in expected.keys.sorted() where tensors[name] == nil { throw ModelError.missingTensor(name: name, file: p) }

    var tokenizer: TokenizerSource?
    if let tokens, g.string("tokenizer.ggml.model") == "gpt2", let merges = g.strings("tokenizer.ggml.merges") {
        var types = [Int32](repeating: 1, count: tokens.count)   // 1 = NORMAL when the file has no types
        if case .intArray(let a)? = g.metadata["tokenizer.ggml.token_type"], a.count == tokens.count {
            types = a.map { Int32(truncatingIfNeeded: $0) }
        }
        tokenizer = .ggufBPE(tokens: tokens, merges: merges, tokenTypes: types, pre: g.string("tokenizer.ggml.pre"), file: p)
    }
    let dominant = elements.max { $0.value < $1.value }?.key.name ?? "F32"
    var ck = Checkpoint(config: config, tensors: tensors, tokenizer: tokenizer, format: "gguf", sourceDType: dominant, path: p)
    ck.configSource = source
    if tokenizer == nil, let kind = g.string("tokenizer.ggml.model"), kind != "gpt2" {
        // Loaded without a tokenizer so token-id prompts keep working; a text prompt's error
        // must still say why there is none, naming the key (not only the prompt file).
        ck.tokenizerAbsence = "tokenizer.ggml.model is \"\(QuotedName.safe(kind))\", a kind not built in (only \"gpt2\" byte-level BPE is); give token ids"
    }
    return ck
}

/// The vocabulary (`tokenizer.ggml.tokens`), after checking the tokenizer keys: a file with none
/// of them has no tokenizer (token-id prompts still work), but one whose keys are present and
/// unreadable — a non-string `tokenizer.ggml.model`, tokens or merges that are not string arrays,
/// a `gpt2` tokenizer without its tokens or merges, tokens without a model — is refused here,
/// naming the key. Otherwise it would load as "no tokenizer" and fail later with an error
/// that names neither.
private func ggufTokenizerKeys(_ g: GGUFFile) throws -> [String]? {
    let p = g.path, modelKey = "tokenizer.ggml.model", tokensKey = "tokenizer.ggml.tokens", mergesKey = "tokenizer.ggml.merges"
    for key in [tokensKey, mergesKey] {
        if let v = g.metadata[key], g.strings(key) == nil {
            throw GGUFError.badKey(path: p, key: key, reason: "expected an array of strings, found \(v)")
        }
    }
    if let v = g.metadata[modelKey], g.string(modelKey) == nil {
        throw GGUFError.badKey(path: p, key: modelKey, reason: "expected a tokenizer name such as \"gpt2\", found \(v)")
    }
    let tokens = g.strings(tokensKey)
    switch g.string(modelKey) {
    case "gpt2"?:
        for key in [tokensKey, mergesKey] where g.metadata[key] == nil {
            throw GGUFError.badKey(path: p, key: key, reason: "is missing, but \(modelKey) is \"gpt2\" (a byte-level BPE needs tokens and merges)")
        }
    case nil:
        if g.metadata[tokensKey] != nil || g.metadata[mergesKey] != nil { throw GGUFError.missingKey(path: p, key: modelKey) }
    default: break      // another tokenizer kind (e.g. SentencePiece "llama"): not built in; token ids still work
    }
    return tokens
}
