import Foundation
import Tokenize

// Llama family (Llama 1/2/3, TinyLlama, SmolLM2, stories260K), mirroring HF
// transformers `models/llama/modeling_llama.py`: RMSNorm, rotate-half RoPE with
// rope_theta, GQA, SwiGLU MLP, optional attention/MLP biases, tied or untied lm_head.
// Everything Llama-specific is here: config.json decode and encode, the HF / GGUF /
// llama2.c tensor names, build, block forward and block backward.

extension ModelFamily {
    public static let llama = ModelFamily(id: "llama")
}

// MARK: - config.json

public struct LlamaHFConfig: Codable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int?
    public var rmsNormEps: Float?
    public var ropeTheta: Float?
    public var ropeScaling: [String: JSONValue]?
    public var tieWordEmbeddings: Bool?
    public var attentionBias: Bool?
    public var mlpBias: Bool?
    public var hiddenAct: String?
    public var bosTokenId: JSONValue?
    public var eosTokenId: JSONValue?

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case vocabSize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case hiddenAct = "hidden_act"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
    }

    /// Converts to the family-neutral config; rejects what the engine does not implement.
    public func modelConfig(file: String) throws -> ModelConfig {
        if let act = hiddenAct, act != "silu" {
            throw ModelError.badConfig(file: file, key: "hidden_act", reason: "'\(QuotedName.safe(act))' is not supported (only silu)")
        }
        if let rs = ropeScaling, !rs.isEmpty {
            throw ModelError.badConfig(file: file, key: "rope_scaling", reason: "RoPE scaling is not supported yet")
        }
        try requirePositive(file: file, [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                                         ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                                         ("vocab_size", vocabSize), ("max_position_embeddings", maxPositionEmbeddings ?? 1)])
        let kv = numKeyValueHeads ?? numAttentionHeads
        guard kv > 0, numAttentionHeads % kv == 0 else {
            throw ModelError.badConfig(file: file, key: "num_key_value_heads",
                                       reason: "\(numAttentionHeads) heads are not a multiple of \(kv) kv heads")
        }
        let hd = headDim ?? hiddenSize / numAttentionHeads
        guard hd % 2 == 0 else { throw ModelError.badConfig(file: file, key: "head_dim", reason: "must be even for RoPE") }
        return ModelConfig(family: .llama, vocabSize: vocabSize, dModel: hiddenSize, nLayers: numHiddenLayers,
                           nHeads: numAttentionHeads, nKVHeads: kv, headDim: hd, dFF: intermediateSize,
                           maxSeqLen: maxPositionEmbeddings ?? 2048, normEps: rmsNormEps ?? 1e-6,
                           ropeTheta: ropeTheta ?? 10000, tiedEmbeddings: tieWordEmbeddings ?? false,
                           attentionBias: attentionBias ?? false, mlpBias: mlpBias ?? false,
                           bosTokenId: bosTokenId?.firstInt, eosTokenId: eosTokenId?.firstInt)
    }

    /// The config.json fields for a ModelConfig (what transformers' LlamaConfig reads back).
    public init(encoding c: ModelConfig) {
        hiddenSize = c.dModel; intermediateSize = c.dFF; numHiddenLayers = c.nLayers
        numAttentionHeads = c.nHeads; numKeyValueHeads = c.nKVHeads; headDim = c.headDim
        vocabSize = c.vocabSize; maxPositionEmbeddings = c.maxSeqLen
        rmsNormEps = c.normEps; ropeTheta = c.ropeTheta; ropeScaling = nil
        tieWordEmbeddings = c.tiedEmbeddings; attentionBias = c.attentionBias; mlpBias = c.mlpBias
        hiddenAct = "silu"; bosTokenId = c.bosTokenId.map(JSONValue.int); eosTokenId = c.eosTokenId.map(JSONValue.int)
    }

    /// Fields transformers writes that the engine does not read.
    enum WrittenKeys: String, CodingKey {
        case architectures, modelType = "model_type", torchDtype = "torch_dtype", useCache = "use_cache"
        case attentionDropout = "attention_dropout", pretrainingTp = "pretraining_tp"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encodeIfPresent(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encodeIfPresent(headDim, forKey: .headDim)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encodeIfPresent(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encodeIfPresent(rmsNormEps.map(shortestDecimal), forKey: .rmsNormEps)
        try c.encodeIfPresent(ropeTheta.map(shortestDecimal), forKey: .ropeTheta)
        try c.encodeIfPresent(ropeScaling, forKey: .ropeScaling)
        try c.encodeIfPresent(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encodeIfPresent(attentionBias, forKey: .attentionBias)
        try c.encodeIfPresent(mlpBias, forKey: .mlpBias)
        try c.encodeIfPresent(hiddenAct, forKey: .hiddenAct)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        try c.encodeIfPresent(eosTokenId, forKey: .eosTokenId)
        var w = encoder.container(keyedBy: WrittenKeys.self)
        try w.encode(["LlamaForCausalLM"], forKey: .architectures)
        try w.encode(ModelFamily.llama.rawValue, forKey: .modelType)
        try w.encode("float32", forKey: .torchDtype)
        try w.encode(true, forKey: .useCache)
        try w.encode(0.0, forKey: .attentionDropout)
        try w.encode(1, forKey: .pretrainingTp)
    }
}

// MARK: - Tensor names (HF, GGUF, llama2.c)

enum LlamaNames {
    static let embed = "model.embed_tokens.weight"
    static let norm = "model.norm.weight"
    static let lmHead = "lm_head.weight"
    static func layer(_ i: Int, _ s: String) -> String { "model.layers.\(i).\(s)" }

    /// Per-layer tensors: HF suffix, GGUF block name (llama.cpp `blk.N.<name>`), llama2.c section
    /// (in the .bin's file order), and which head count permutes its rows for RoPE (q: query heads,
    /// k: kv heads; convert_hf_to_gguf and llama2.c's export both store Meta's interleaved order).
    enum LayerTensor: CaseIterable {
        case attnNorm, q, k, v, o, mlpNorm, gate, down, up
        var hf: String {
            switch self {
            case .attnNorm: return "input_layernorm"
            case .q: return "self_attn.q_proj"
            case .k: return "self_attn.k_proj"
            case .v: return "self_attn.v_proj"
            case .o: return "self_attn.o_proj"
            case .mlpNorm: return "post_attention_layernorm"
            case .gate: return "mlp.gate_proj"
            case .up: return "mlp.up_proj"
            case .down: return "mlp.down_proj"
            }
        }
        var gguf: String {
            switch self {
            case .attnNorm: return "attn_norm"
            case .q: return "attn_q"
            case .k: return "attn_k"
            case .v: return "attn_v"
            case .o: return "attn_output"
            case .mlpNorm: return "ffn_norm"
            case .gate: return "ffn_gate"
            case .up: return "ffn_up"
            case .down: return "ffn_down"
            }
        }
        var llama2c: String {
            switch self {
            case .attnNorm: return "rms_att"
            case .q: return "wq"
            case .k: return "wk"
            case .v: return "wv"
            case .o: return "wo"
            case .mlpNorm: return "rms_ffn"
            case .gate: return "w1"
            case .down: return "w2"
            case .up: return "w3"
            }
        }
        /// HF shape [out, in] (or [d] for norms) under `c`.
        func shape(_ c: ModelConfig) -> [Int] {
            switch self {
            case .attnNorm, .mlpNorm: return [c.dModel]
            case .q: return [c.qDim, c.dModel]
            case .k, .v: return [c.kvDim, c.dModel]
            case .o: return [c.dModel, c.qDim]
            case .gate, .up: return [c.dFF, c.dModel]
            case .down: return [c.dModel, c.dFF]
            }
        }
        /// Heads whose rows a Meta/llama.cpp file stores interleaved (nil: no RoPE permutation).
        func ropeHeads(_ c: ModelConfig) -> Int? { self == .q ? c.nHeads : self == .k ? c.nKVHeads : nil }
        /// The HF weight (or bias) name in layer l.
        func name(_ l: Int, _ kind: String = "weight") -> String { LlamaNames.layer(l, hf + "." + kind) }
    }

    /// GGUF names outside the blocks → HF.
    static let ggufGlobals = ["token_embd.weight": embed, "output_norm.weight": norm, "output.weight": lmHead]
    /// llama2.c sections outside the blocks → HF.
    static let llama2cEmbed = "tok_embeddings", llama2cNorm = "rms_final", llama2cClassifier = "wcls"
    /// The per-layer sections in the order a llama2.c .bin stores them.
    static let llama2cLayerOrder: [LayerTensor] = [.attnNorm, .q, .k, .v, .o, .mlpNorm, .gate, .down, .up]

    /// A GGUF tensor name → (HF name, the layer tensor it is, or nil outside the blocks); nil if unknown.
    static func fromGGUF(_ name: String, nLayers: Int) -> (hf: String, tensor: LayerTensor?)? {
        if let hf = ggufGlobals[name] { return (hf, nil) }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "blk", let l = Int(parts[1]), l >= 0, l < nLayers,
              parts[3] == "weight" || parts[3] == "bias",
              let w = LayerTensor.allCases.first(where: { $0.gguf == parts[2] }) else { return nil }
        return (w.name(l, String(parts[3])), w)
    }

    /// Every HF tensor a Llama checkpoint must hold, with its shape (biases are optional).
    static func expectedShapes(_ c: ModelConfig) -> [String: [Int]] {
        var out = [embed: [c.vocabSize, c.dModel], norm: [c.dModel]]
        if !c.tiedEmbeddings { out[lmHead] = [c.vocabSize, c.dModel] }
        for l in 0..<c.nLayers { for t in LayerTensor.allCases { out[t.name(l)] = t.shape(c) } }
        return out
    }

    static let table = FamilyNames(embed: embed, positions: nil, lmHead: lmHead, layerPrefix: "model.layers.",
                                   query: { LayerTensor.q.name($0) }, key: { LayerTensor.k.name($0) },
                                   mlpIn: { LayerTensor.up.name($0) },
                                   neurons: { "model.layers.\($0).mlp.neurons" }, heads: { "model.layers.\($0).self_attn.heads" })
}

// MARK: - The family

enum LlamaFamily: TransformerFamily {
    static var family: ModelFamily { .llama }
    static var names: FamilyNames { LlamaNames.table }
    static var gatedMLP: Bool { true }
    static var usesRoPE: Bool { true }
    static var positionOffset: Int { 0 }   // no position table (RoPE)

    static let configKeys: [ConfigField: String] = [
        .vocabSize: "vocab_size", .dModel: "hidden_size", .nLayers: "num_hidden_layers",
        .nHeads: "num_attention_heads", .nKVHeads: "num_key_value_heads", .headDim: "head_dim",
        .dFF: "intermediate_size", .maxSeqLen: "max_position_embeddings", .normEps: "rms_norm_eps",
        .ropeTheta: "rope_theta", .bosTokenId: "bos_token_id", .eosTokenId: "eos_token_id",
        .tiedEmbeddings: "tie_word_embeddings", .attentionBias: "attention_bias", .mlpBias: "mlp_bias",
    ]
    static let integerKeys = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                              "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings"]
    static var headDimKey: String? { "head_dim" }

    static func decodeConfig(_ data: Data, file: String) throws -> ModelConfig {
        try JSONDecoder().decode(LlamaHFConfig.self, from: data).modelConfig(file: file)
    }

    static func encodeConfig(_ c: ModelConfig) throws -> Data {
        try JSONEncoder().encode(LlamaHFConfig(encoding: c))
    }

    /// GGUF byte-level BPE adds BOS only when the file says so (SmolLM2: no);
    /// otherwise the checkpoint's `add_bos_token`, when stated.
    static func tokenizerHints(config: ModelConfig, tokenizer: TokenizerSource?, addBOS: Bool?) -> TokenizerHints {
        if case .ggufBPE? = tokenizer {
            return TokenizerHints(bosId: config.bosTokenId, eosId: config.eosTokenId, addBOS: addBOS ?? false)
        }
        return TokenizerHints(bosId: config.bosTokenId, eosId: config.eosTokenId, addBOS: addBOS)
    }

    static func build(_ ck: Checkpoint) throws -> Model {
        let c = ck.config
        var t = TensorTaker(tensors: ck.tensors, file: ck.path)
        let embed = try t.take(LlamaNames.embed, [c.vocabSize, c.dModel])
        func norm(_ name: String) throws -> Norm { Norm(kind: .rms, name: name, weight: try t.take(name, [c.dModel]), bias: nil) }
        var blocks: [Block] = []
        for i in 0..<c.nLayers {
            func linear(_ w: LlamaNames.LayerTensor, bias: Bool) throws -> Linear {
                let s = w.shape(c)
                return try t.linear(w.name(i), out: s[0], in: s[1], bias: bias)
            }
            let ab = c.attentionBias, mb = c.mlpBias
            blocks.append(Block(
                index: i,
                attnNorm: try norm(LlamaNames.LayerTensor.attnNorm.name(i)),
                q: try linear(.q, bias: ab), k: try linear(.k, bias: ab), v: try linear(.v, bias: ab),
                o: try linear(.o, bias: false),
                mlpNorm: try norm(LlamaNames.LayerTensor.mlpNorm.name(i)),
                gate: try linear(.gate, bias: mb), up: try linear(.up, bias: mb), down: try linear(.down, bias: mb)))
        }
        let finalNorm = try norm(LlamaNames.norm)
        // Tied checkpoints sometimes still carry a copy of lm_head: drop it when tied.
        let head = try t.takeIfPresent(LlamaNames.lmHead, [c.vocabSize, c.dModel])
        if !c.tiedEmbeddings && head == nil { throw ModelError.missingTensor(name: LlamaNames.lmHead, file: ck.path) }
        let model = Model(config: c, embed: embed, embedName: LlamaNames.embed, positions: nil, blocks: blocks,
                          finalNorm: finalNorm, lmHead: c.tiedEmbeddings ? nil : head)
        model.rope = RopeTable(headDim: c.headDim, maxPos: max(c.maxSeqLen, 1), theta: c.ropeTheta)
        return model
    }

    // MARK: - Block forward

    /// One Llama block on the residual stream x [N, d], top to bottom:
    /// x += o_proj(attn(rope(q), rope(k), v)) on RMSNorm(x); x += down(silu(gate)⊙up) on RMSNorm(x).
    static func block(_ m: Model, _ blk: Block, _ x: UnsafeMutablePointer<Float>, segments: [Segment], _ b: BlockBuffers) {
        let c = m.config, n = b.rows
        b.resid.keep(x)                                                         // [N, d] hook_resid_pre
        // Attention half.
        blk.attnNorm.forward(x, b.normed1.p, inv: b.inv1.p, rows: n, d: c.dModel, eps: c.normEps)  // [N, d]
        blk.q.forward(b.normed1.p, b.q.p, rows: n)                              // [N, qDim]
        blk.k.forward(b.normed1.p, b.k.p, rows: n)                              // [N, kvDim]
        blk.v.forward(b.normed1.p, b.v.p, rows: n)                              // [N, kvDim]
        m.attend(b, layer: blk.index, segments: segments, rope: m.rope)         // b.z [N, qDim]
        m.addSublayer(blk.o, input: b.z.p, to: x, keep: b.attnOut, rows: n)     // x += o_proj(z)
        b.mid.keep(x)                                                           // [N, d] hook_resid_mid
        // MLP half.
        blk.mlpNorm.forward(x, b.normed2.p, inv: b.inv2.p, rows: n, d: c.dModel, eps: c.normEps)  // [N, d]
        blk.gate!.forward(b.normed2.p, b.pre.p, rows: n)                        // [N, dFF] gate
        blk.up.forward(b.normed2.p, b.up.p, rows: n)                            // [N, dFF] up
        let post = b.postPointer                                                // [N, dFF] silu(gate) ⊙ up
        mlpActivation(m, b, into: post)
        m.addSublayer(blk.down, input: post, to: x, keep: b.mlpOut, rows: n)    // x += down(post)
    }

    /// post [N, dFF] = silu(gate) ⊙ up.
    static func mlpActivation(_ m: Model, _ b: BlockBuffers, into p: UnsafeMutablePointer<Float>) {
        let n = b.rows, f = m.config.dFF, g = b.pre.p, u = b.up.p
        parallelRows(n, work: n * f) { r in
            let lo = r.lowerBound * f
            swiGLU(g + lo, u + lo, p + lo, r.count * f)
        }
    }

    // MARK: - LRP backward (one function per block, llm.c style)

    /// Backward through one Llama block with the AttnLRP rules. `dx` [N, d] holds
    /// δ(block output) on entry and δ(block input) on return.
    static func blockBackward(_ m: Model, _ blk: Block, _ b: BlockBuffers, dx: UnsafeMutablePointer<Float>, _ g: GradBuffers,
                              rules: LRPRules, sink: RelevanceSink?, scratch: BackwardScratch) {
        let c = m.config, n = b.rows, f = c.dFF, abs = sink?.wantsAbsPerToken ?? false
        let constant = rules.normIsConstant
        // MLP half: out = mid + down(silu(gate) ⊙ up).
        let post = m.postForBackward(b)                                         // [N, dFF]
        m.linearBackward(blk.down, x: post, dy: dx, z: b.mlpOut.p, dx: g.dPost.p, accumulate: false,
                         rows: n, rules: rules, sink: sink, scratch: scratch)   // δpost
        sink?.neurons(layer: blk.index, m.columnRelevance(post, g.dPost.p, rows: n, cols: f, abs: abs))
        let (fg, fu) = rules.gateUpFactors, plain = rules.variant == .gradient
        parallelRows(n, work: n * f) { r in                                     // δgate; δup overwrites δpost
            let lo = r.lowerBound * f
            swiGLUBackward(gate: b.pre.p + lo, up: b.up.p + lo, dPost: g.dPost.p + lo, dGate: g.dGate.p + lo,
                           count: r.count * f, gateFactor: fg, upFactor: fu, plainGradient: plain)
        }
        m.linearBackward(blk.gate!, x: b.normed2.p, dy: g.dGate.p, z: b.pre.p, dx: g.dn.p, accumulate: false,
                         rows: n, rules: rules, sink: sink, scratch: scratch)   // δln2 = gateᵀδgate
        m.linearBackward(blk.up, x: b.normed2.p, dy: g.dPost.p, z: b.up.p, dx: g.dn.p, accumulate: true,
                         rows: n, rules: rules, sink: sink, scratch: scratch)   //      + upᵀδup
        m.tapMLPInput(blk, b, dn: g.dn.p, rules: rules, sink: sink)
        blk.mlpNorm.backward(dy: g.dn.p, x: b.mid.p, inv: b.inv2.p, dx: dx, rows: n, d: c.dModel,
                             constantNormaliser: constant, accumulate: true, biasRelevance: &scratch.biasRelevance)
        // Attention half: mid = resid + o_proj(attn(rope(q), rope(k), v)).
        m.attentionHalfBackward(blk, b, dx: dx, g, rules: rules, sink: sink, scratch: scratch) { dq, dk in
            // RoPE is linear: δ before the rotation is Rᵀ δ.
            for sp in b.spans {                                                 // each packed sequence from position 0
                m.rope?.apply(dq + sp.lowerBound * c.qDim, rows: sp.count, nHeads: c.nHeads, pos0: 0, inverse: true)
                m.rope?.apply(dk + sp.lowerBound * c.kvDim, rows: sp.count, nHeads: c.nKVHeads, pos0: 0, inverse: true)
            }
        }
        blk.attnNorm.backward(dy: g.dn.p, x: b.resid.p, inv: b.inv1.p, dx: dx, rows: n, d: c.dModel,
                              constantNormaliser: constant, accumulate: true, biasRelevance: &scratch.biasRelevance)
    }
}
