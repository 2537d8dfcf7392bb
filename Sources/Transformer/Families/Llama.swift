import Foundation

// Llama family (Llama 1/2/3, TinyLlama, SmolLM2, stories260K), mirroring HF
// transformers `models/llama/modeling_llama.py`: RMSNorm, rotate-half RoPE with
// rope_theta, GQA, SwiGLU MLP, optional attention/MLP biases, tied or untied lm_head.

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
            throw ModelError.badConfig(file: file, key: "hidden_act", reason: "'\(act)' is not supported (only silu)")
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
}

// MARK: - Tensor names

enum LlamaNames {
    static let embed = "model.embed_tokens.weight"
    static let norm = "model.norm.weight"
    static func layer(_ i: Int, _ s: String) -> String { "model.layers.\(i).\(s)" }
}

extension Model {
    static func buildLlama(_ ck: Checkpoint) throws -> Model {
        let c = ck.config
        var t = TensorTaker(tensors: ck.tensors, file: ck.path)
        let embed = try t.take(LlamaNames.embed, [c.vocabSize, c.dModel])
        var blocks: [Block] = []
        for i in 0..<c.nLayers {
            func n(_ s: String) -> String { LlamaNames.layer(i, s) }
            func norm(_ s: String) throws -> Norm { Norm(name: n(s), weight: try t.take(n(s), [c.dModel]), bias: nil) }
            let ab = c.attentionBias, mb = c.mlpBias
            blocks.append(Block(
                index: i,
                attnNorm: try norm("input_layernorm.weight"),
                q: try t.linear(n("self_attn.q_proj.weight"), out: c.qDim, in: c.dModel, bias: ab),
                k: try t.linear(n("self_attn.k_proj.weight"), out: c.kvDim, in: c.dModel, bias: ab),
                v: try t.linear(n("self_attn.v_proj.weight"), out: c.kvDim, in: c.dModel, bias: ab),
                o: try t.linear(n("self_attn.o_proj.weight"), out: c.dModel, in: c.qDim, bias: false),
                mlpNorm: try norm("post_attention_layernorm.weight"),
                gate: try t.linear(n("mlp.gate_proj.weight"), out: c.dFF, in: c.dModel, bias: mb),
                up: try t.linear(n("mlp.up_proj.weight"), out: c.dFF, in: c.dModel, bias: mb),
                down: try t.linear(n("mlp.down_proj.weight"), out: c.dModel, in: c.dFF, bias: mb)))
        }
        let finalNorm = Norm(name: LlamaNames.norm, weight: try t.take(LlamaNames.norm, [c.dModel]), bias: nil)
        // Tied checkpoints sometimes still carry a copy of lm_head: drop it when tied.
        let head = try t.takeIfPresent("lm_head.weight", [c.vocabSize, c.dModel])
        if !c.tiedEmbeddings && head == nil { throw ModelError.missingTensor(name: "lm_head.weight", file: ck.path) }
        let model = Model(config: c, embed: embed, embedName: LlamaNames.embed, positions: nil, blocks: blocks,
                          finalNorm: finalNorm, lmHead: c.tiedEmbeddings ? nil : head)
        model.rope = RopeTable(headDim: c.headDim, maxPos: max(c.maxSeqLen, 1), theta: c.ropeTheta)
        return model
    }

    // MARK: - Block forward

    /// One Llama block on the residual stream x [N, d], top to bottom:
    /// x += o_proj(attn(rope(q), rope(k), v)) on RMSNorm(x); x += down(silu(gate)⊙up) on RMSNorm(x).
    func llamaBlock(_ blk: Block, _ x: inout [Float], segments: [Segment], _ b: BlockBuffers) {
        let c = config, n = b.rows
        b.keep(x, &b.resid)                                              // [N, d] hook_resid_pre
        // Attention half.
        x.cptr { xp in b.normed1.ptr { y in b.inv1.ptr { rmsNorm(xp, blk.attnNorm.weight, y, inv: $0, rows: n, d: c.dModel, eps: c.normEps) } } }
        b.normed1.cptr { h in                                            // [N, d]
            b.q.ptr { blk.q.forward(h, $0, rows: n) }                    // [N, qDim]
            b.k.ptr { blk.k.forward(h, $0, rows: n) }                    // [N, kvDim]
            b.v.ptr { blk.v.forward(h, $0, rows: n) }                    // [N, kvDim]
        }
        attend(b, layer: blk.index, segments: segments, rope: rope)      // b.z [N, qDim]
        addSublayer(blk.o, input: b.z, to: &x, keep: &b.attnOut, rows: n) // x += o_proj(z)
        b.keep(x, &b.mid)                                                // [N, d] hook_resid_mid
        // MLP half.
        x.cptr { xp in b.normed2.ptr { y in b.inv2.ptr { rmsNorm(xp, blk.mlpNorm.weight, y, inv: $0, rows: n, d: c.dModel, eps: c.normEps) } } }
        b.normed2.cptr { h in
            b.pre.ptr { blk.gate!.forward(h, $0, rows: n) }              // [N, dFF] gate
            b.up.ptr { blk.up.forward(h, $0, rows: n) }                  // [N, dFF] up
        }
        b.withPost { post in                                             // [N, dFF] silu(gate) ⊙ up
            mlpActivation(b, into: post)
            addSublayer(blk.down, input: post, to: &x, keep: &b.mlpOut, rows: n) // x += down(post)
        }
    }
}

// MARK: - Loose JSON values (for fields whose type varies across checkpoints)

public enum JSONValue: Codable, Equatable {
    case int(Int), double(Double), string(String), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .bool(let b): try c.encode(b)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        case .null: try c.encodeNil()
        }
    }

    /// An int, or the first int of an array (eos_token_id may be a list).
    public var firstInt: Int? {
        switch self {
        case .int(let i): return i
        case .array(let a): return a.first?.firstInt
        default: return nil
        }
    }
}

// MARK: - LRP backward (one function per block, llm.c style)

extension Model {
    /// Backward through one Llama block with the AttnLRP rules. `dx` [N, d] holds
    /// δ(block output) on entry and δ(block input) on return.
    func llamaBlockBackward(_ blk: Block, _ b: BlockBuffers, dx: UnsafeMutablePointer<Float>, _ g: GradBuffers,
                            rules: LRPRules, sink: RelevanceSink?, scratch: BackwardScratch) {
        let c = config, n = b.rows, m = n * c.dFF
        // MLP half: out = mid + down(silu(gate) ⊙ up).
        postForBackward(b) { post in b.mlpOut.cptr { z in g.dPost.ptr { dPost in
            linearBackward(blk.down, x: post, dy: dx, z: z, dx: dPost, accumulate: false, rows: n, rules: rules, sink: sink, scratch: scratch)
            sink?.neurons(layer: blk.index, columnRelevance(post, dPost, rows: n, cols: c.dFF, abs: sink?.wantsAbsPerToken ?? false))
        } } }
        let (fg, fu) = rules.gateUpFactors
        let plain = rules.variant == .gradient
        // δ(up) overwrites δ(post) in place.
        b.pre.cptr { gate in b.up.cptr { up in g.dPost.ptr { dPost in g.dGate.ptr { dGate in
            parallelRows(n, work: m) { range in
                let lo = range.lowerBound * c.dFF
                swiGLUBackward(gate: gate + lo, up: up + lo, dPost: dPost + lo, dGate: dGate + lo, count: range.count * c.dFF,
                               gateFactor: fg, upFactor: fu, plainGradient: plain)
            }
        } } } }
        b.normed2.cptr { h in g.dn.ptr { dn in
            g.dGate.cptr { dGate in b.pre.cptr { z in
                linearBackward(blk.gate!, x: h, dy: dGate, z: z, dx: dn, accumulate: false, rows: n, rules: rules, sink: sink, scratch: scratch)
            } }
            g.dPost.cptr { dUp in b.up.cptr { z in
                linearBackward(blk.up, x: h, dy: dUp, z: z, dx: dn, accumulate: true, rows: n, rules: rules, sink: sink, scratch: scratch)
            } }
        } }
        g.dn.cptr { dn in b.mid.cptr { mid in b.inv2.cptr { inv in
            rmsNormBackward(dy: dn, x: mid, inv: inv, g: blk.mlpNorm.weight, dx: dx, rows: n, d: c.dModel,
                            constantNormaliser: rules.normIsConstant, accumulate: true)
        } } }
        // Attention half: mid = resid + o_proj(attn(rope(q), rope(k), v)).
        attentionHalfBackward(blk, b, dx: dx, g, rules: rules, sink: sink, scratch: scratch) { dq, dk in
            // RoPE is linear: δ before the rotation is Rᵀ δ.
            rope?.apply(dq, rows: n, nHeads: c.nHeads, pos0: 0, inverse: true)
            rope?.apply(dk, rows: n, nHeads: c.nKVHeads, pos0: 0, inverse: true)
        }
        g.dn.cptr { dn in b.resid.cptr { x in b.inv1.cptr { inv in
            rmsNormBackward(dy: dn, x: x, inv: inv, g: blk.attnNorm.weight, dx: dx, rows: n, d: c.dModel,
                            constantNormaliser: rules.normIsConstant, accumulate: true)
        } } }
    }
}
