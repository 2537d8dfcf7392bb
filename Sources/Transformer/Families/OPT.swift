import Foundation
import Tokenize

// OPT family (facebook/opt-*), mirroring HF transformers `models/opt/modeling_opt.py`:
// learned positions with offset 2, pre-LayerNorm blocks with biases everywhere,
// ReLU MLP (fc1/fc2), lm_head tied to the token embedding. Everything OPT-specific is
// here: config.json decode and encode, tensor names, build, block forward and backward.

extension ModelFamily {
    public static let opt = ModelFamily(id: "opt")
}

// MARK: - config.json

public struct OPTHFConfig: Codable {
    public var hiddenSize: Int
    public var ffnDim: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int
    public var wordEmbedProjDim: Int?
    public var doLayerNormBefore: Bool?
    public var activationFunction: String?
    public var enableBias: Bool?
    public var layerNormElementwiseAffine: Bool?
    public var tieWordEmbeddings: Bool?
    public var bosTokenId: Int?
    public var eosTokenId: Int?

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case ffnDim = "ffn_dim"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case vocabSize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case wordEmbedProjDim = "word_embed_proj_dim"
        case doLayerNormBefore = "do_layer_norm_before"
        case activationFunction = "activation_function"
        case enableBias = "enable_bias"
        case layerNormElementwiseAffine = "layer_norm_elementwise_affine"
        case tieWordEmbeddings = "tie_word_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
    }

    /// Converts to the family-neutral config. Post-LN (opt-350m) and the
    /// project_in/out variants are refused with a clear error rather than run wrongly.
    public func modelConfig(file: String) throws -> ModelConfig {
        if doLayerNormBefore == false {
            throw ModelError.badConfig(file: file, key: "do_layer_norm_before",
                                       reason: "post-LayerNorm OPT (e.g. opt-350m) is not supported")
        }
        if let p = wordEmbedProjDim, p != hiddenSize {
            throw ModelError.badConfig(file: file, key: "word_embed_proj_dim",
                                       reason: "\(p) ≠ hidden_size \(hiddenSize): project_in/project_out variants are not supported")
        }
        if let a = activationFunction, a != "relu" {
            throw ModelError.badConfig(file: file, key: "activation_function", reason: "'\(QuotedName.safe(a))' is not supported (only relu)")
        }
        if enableBias == false || layerNormElementwiseAffine == false {
            throw ModelError.badConfig(file: file, key: enableBias == false ? "enable_bias" : "layer_norm_elementwise_affine",
                                       reason: "bias-free OPT variants are not supported")
        }
        try requirePositive(file: file, [("hidden_size", hiddenSize), ("ffn_dim", ffnDim), ("num_hidden_layers", numHiddenLayers),
                                         ("num_attention_heads", numAttentionHeads), ("vocab_size", vocabSize),
                                         ("max_position_embeddings", maxPositionEmbeddings)])
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ModelError.badConfig(file: file, key: "num_attention_heads", reason: "must divide hidden_size")
        }
        return ModelConfig(family: .opt, vocabSize: vocabSize, dModel: hiddenSize, nLayers: numHiddenLayers,
                           nHeads: numAttentionHeads, nKVHeads: numAttentionHeads, headDim: hiddenSize / numAttentionHeads,
                           dFF: ffnDim, maxSeqLen: maxPositionEmbeddings, normEps: 1e-5, ropeTheta: 0,
                           tiedEmbeddings: tieWordEmbeddings ?? true, attentionBias: true, mlpBias: true,
                           bosTokenId: bosTokenId ?? 2, eosTokenId: eosTokenId ?? 2)
    }

    /// The config.json fields for a ModelConfig (what transformers' OPTConfig reads back).
    public init(encoding c: ModelConfig) {
        hiddenSize = c.dModel; ffnDim = c.dFF; numHiddenLayers = c.nLayers; numAttentionHeads = c.nHeads
        vocabSize = c.vocabSize; maxPositionEmbeddings = c.maxSeqLen; wordEmbedProjDim = c.dModel
        doLayerNormBefore = true; activationFunction = "relu"; enableBias = true; layerNormElementwiseAffine = true
        tieWordEmbeddings = c.tiedEmbeddings; bosTokenId = c.bosTokenId; eosTokenId = c.eosTokenId
    }

    /// Fields transformers writes that the engine does not read.
    enum WrittenKeys: String, CodingKey {
        case architectures, modelType = "model_type", torchDtype = "torch_dtype", useCache = "use_cache"
        case dropout, attentionDropout = "attention_dropout"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(ffnDim, forKey: .ffnDim)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encodeIfPresent(wordEmbedProjDim, forKey: .wordEmbedProjDim)
        try c.encodeIfPresent(doLayerNormBefore, forKey: .doLayerNormBefore)
        try c.encodeIfPresent(activationFunction, forKey: .activationFunction)
        try c.encodeIfPresent(enableBias, forKey: .enableBias)
        try c.encodeIfPresent(layerNormElementwiseAffine, forKey: .layerNormElementwiseAffine)
        try c.encodeIfPresent(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        try c.encodeIfPresent(eosTokenId, forKey: .eosTokenId)
        var w = encoder.container(keyedBy: WrittenKeys.self)
        try w.encode(["OPTForCausalLM"], forKey: .architectures)
        try w.encode(ModelFamily.opt.rawValue, forKey: .modelType)
        try w.encode("float32", forKey: .torchDtype)
        try w.encode(true, forKey: .useCache)
        try w.encode(0.0, forKey: .dropout)
        try w.encode(0.0, forKey: .attentionDropout)
    }
}

extension ModelConfig {
    /// OPT's learned position table is indexed with `position + 2` (fairseq legacy).
    public static let optPositionOffset = 2
}

// MARK: - Tensor names

enum OPTNames {
    static let embed = "model.decoder.embed_tokens.weight"
    static let positions = "model.decoder.embed_positions.weight"
    static let finalNorm = "model.decoder.final_layer_norm.weight"
    static let lmHead = "lm_head.weight"
    static func layer(_ i: Int, _ s: String) -> String { "model.decoder.layers.\(i).\(s)" }

    static let table = FamilyNames(embed: embed, positions: positions, lmHead: lmHead, layerPrefix: "model.decoder.layers.",
                                   query: { layer($0, "self_attn.q_proj.weight") }, key: { layer($0, "self_attn.k_proj.weight") },
                                   mlpIn: { layer($0, "fc1.weight") },
                                   neurons: { layer($0, "fc1.neurons") }, heads: { layer($0, "self_attn.heads") })
}

// MARK: - The family

enum OPTFamily: TransformerFamily {
    static var family: ModelFamily { .opt }
    static var names: FamilyNames { OPTNames.table }
    static var gatedMLP: Bool { false }
    static var usesRoPE: Bool { false }
    static var positionOffset: Int { ModelConfig.optPositionOffset }

    /// OPT has no kv-head or head-dim keys (both follow num_attention_heads) and one bias switch.
    static let configKeys: [ConfigField: String] = LlamaFamily.configKeys.merging([
        .dFF: "ffn_dim", .nKVHeads: "num_attention_heads", .headDim: "num_attention_heads",
        .normEps: "layer_norm_eps", .attentionBias: "enable_bias", .mlpBias: "enable_bias",
    ]) { $1 }
    static let integerKeys = ["hidden_size", "ffn_dim", "num_hidden_layers", "num_attention_heads", "vocab_size",
                              "max_position_embeddings", "word_embed_proj_dim", "bos_token_id", "eos_token_id"]
    static var headDimKey: String? { nil }

    static func decodeConfig(_ data: Data, file: String) throws -> ModelConfig {
        try JSONDecoder().decode(OPTHFConfig.self, from: data).modelConfig(file: file)
    }

    static func encodeConfig(_ c: ModelConfig) throws -> Data {
        try JSONEncoder().encode(OPTHFConfig(encoding: c))
    }

    /// OPT prepends `</s>` = 2 (fairseq's BOS) whatever the tokenizer files say.
    static func tokenizerHints(config: ModelConfig, tokenizer: TokenizerSource?, addBOS: Bool?) -> TokenizerHints {
        TokenizerHints(bosId: config.bosTokenId ?? 2, eosId: config.eosTokenId ?? 2, addBOS: true)
    }

    static func build(_ ck: Checkpoint) throws -> Model {
        let c = ck.config
        var t = TensorTaker(tensors: ck.tensors, file: ck.path)
        let embed = try t.take(OPTNames.embed, [c.vocabSize, c.dModel])
        let positions = try t.take(OPTNames.positions, [c.maxSeqLen + ModelConfig.optPositionOffset, c.dModel])
        func layerNorm(_ name: String) throws -> Norm {
            Norm(kind: .layer, name: name, weight: try t.take(name, [c.dModel]), bias: try t.take(Linear.biasName(for: name), [c.dModel]))
        }
        var blocks: [Block] = []
        for i in 0..<c.nLayers {
            func n(_ s: String) -> String { OPTNames.layer(i, s) }
            blocks.append(Block(
                index: i,
                attnNorm: try layerNorm(n("self_attn_layer_norm.weight")),
                q: try t.linear(n("self_attn.q_proj.weight"), out: c.dModel, in: c.dModel, bias: true),
                k: try t.linear(n("self_attn.k_proj.weight"), out: c.dModel, in: c.dModel, bias: true),
                v: try t.linear(n("self_attn.v_proj.weight"), out: c.dModel, in: c.dModel, bias: true),
                o: try t.linear(n("self_attn.out_proj.weight"), out: c.dModel, in: c.dModel, bias: true),
                mlpNorm: try layerNorm(n("final_layer_norm.weight")),
                gate: nil,
                up: try t.linear(n("fc1.weight"), out: c.dFF, in: c.dModel, bias: true),
                down: try t.linear(n("fc2.weight"), out: c.dModel, in: c.dFF, bias: true)))
        }
        let finalNorm = try layerNorm(OPTNames.finalNorm)
        let head = try t.takeIfPresent(OPTNames.lmHead, [c.vocabSize, c.dModel])
        if !c.tiedEmbeddings && head == nil { throw ModelError.missingTensor(name: OPTNames.lmHead, file: ck.path) }
        return Model(config: c, embed: embed, embedName: OPTNames.embed, positions: positions, blocks: blocks,
                     finalNorm: finalNorm, lmHead: c.tiedEmbeddings ? nil : head)
    }

    // MARK: - Block forward

    /// One pre-LN OPT block on x [N, d], top to bottom:
    /// x += out_proj(attn(q, k, v)) on LN(x); x += fc2(relu(fc1(LN(x)))).
    /// HF scales q by 1/√hd inside the projection; we scale the scores instead (same product).
    static func block(_ m: Model, _ blk: Block, _ x: UnsafeMutablePointer<Float>, segments: [Segment], _ b: BlockBuffers) {
        let c = m.config, n = b.rows
        b.resid.keep(x)                                                         // [N, d] hook_resid_pre
        // Attention half.
        blk.attnNorm.forward(x, b.normed1.p, inv: b.inv1.p, rows: n, d: c.dModel, eps: c.normEps)  // [N, d]
        blk.q.forward(b.normed1.p, b.q.p, rows: n)                              // [N, d]
        blk.k.forward(b.normed1.p, b.k.p, rows: n)                              // [N, d]
        blk.v.forward(b.normed1.p, b.v.p, rows: n)                              // [N, d]
        m.attend(b, layer: blk.index, segments: segments, rope: nil)            // b.z [N, d]
        m.addSublayer(blk.o, input: b.z.p, to: x, keep: b.attnOut, rows: n)     // x += out_proj(z)
        b.mid.keep(x)                                                           // [N, d] hook_resid_mid
        // MLP half.
        blk.mlpNorm.forward(x, b.normed2.p, inv: b.inv2.p, rows: n, d: c.dModel, eps: c.normEps)  // [N, d]
        blk.up.forward(b.normed2.p, b.pre.p, rows: n)                           // [N, dFF] fc1
        let post = b.postPointer                                                // [N, dFF] relu(fc1)
        mlpActivation(m, b, into: post)
        m.addSublayer(blk.down, input: post, to: x, keep: b.mlpOut, rows: n)    // x += fc2(post)
    }

    /// post [N, dFF] = relu(fc1).
    static func mlpActivation(_ m: Model, _ b: BlockBuffers, into p: UnsafeMutablePointer<Float>) {
        let n = b.rows, f = m.config.dFF, g = b.pre.p
        parallelRows(n, work: n * f) { r in
            for i in (r.lowerBound * f)..<(r.upperBound * f) { p[i] = max(g[i], 0) }
        }
    }

    // MARK: - LRP backward (one function per block, llm.c style)

    /// Backward through one OPT block (lxt GPT-2 patch equivalents: LayerNorm
    /// with constant σ, ReLU unchanged, q/k ÷4 and v ÷2). `dx` [N, d] holds
    /// δ(block output) on entry and δ(block input) on return.
    static func blockBackward(_ m: Model, _ blk: Block, _ b: BlockBuffers, dx: UnsafeMutablePointer<Float>, _ g: GradBuffers,
                              rules: LRPRules, sink: RelevanceSink?, scratch: BackwardScratch) {
        let c = m.config, n = b.rows, count = n * c.dFF, abs = sink?.wantsAbsPerToken ?? false
        let constant = rules.normIsConstant
        // MLP half: out = mid + fc2(relu(fc1(LN(mid)))).
        let post = m.postForBackward(b)                                         // [N, dFF]
        m.linearBackward(blk.down, x: post, dy: dx, z: b.mlpOut.p, dx: g.dPost.p, accumulate: false,
                         rows: n, rules: rules, sink: sink, scratch: scratch)   // δpost
        sink?.neurons(layer: blk.index, m.columnRelevance(post, g.dPost.p, rows: n, cols: c.dFF, abs: abs))
        // ReLU: the identity rule's f(x)/x equals ReLU's gradient, so no change.
        let pre = b.pre.p, dPost = g.dPost.p, dPre = g.dGate.p
        parallelRows(count, work: count) { r in for i in r { dPre[i] = pre[i] > 0 ? dPost[i] : 0 } }
        m.linearBackward(blk.up, x: b.normed2.p, dy: dPre, z: pre, dx: g.dn.p, accumulate: false,
                         rows: n, rules: rules, sink: sink, scratch: scratch)   // δln2 = fc1ᵀδpre
        m.tapMLPInput(blk, b, dn: g.dn.p, rules: rules, sink: sink)
        blk.mlpNorm.backward(dy: g.dn.p, x: b.mid.p, inv: b.inv2.p, dx: dx, rows: n, d: c.dModel,
                             constantNormaliser: constant, accumulate: true, biasRelevance: &scratch.biasRelevance)
        // Attention half: mid = resid + out_proj(attn(q, k, v)).
        m.attentionHalfBackward(blk, b, dx: dx, g, rules: rules, sink: sink, scratch: scratch) { _, _ in }
        blk.attnNorm.backward(dy: g.dn.p, x: b.resid.p, inv: b.inv1.p, dx: dx, rows: n, d: c.dModel,
                              constantNormaliser: constant, accumulate: true, biasRelevance: &scratch.biasRelevance)
    }
}
