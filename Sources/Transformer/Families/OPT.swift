import Foundation

// OPT family (facebook/opt-*), mirroring HF transformers `models/opt/modeling_opt.py`:
// learned positions with offset 2, pre-LayerNorm blocks with biases everywhere,
// ReLU MLP (fc1/fc2), lm_head tied to the token embedding.

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
            throw ModelError.badConfig(file: file, key: "activation_function", reason: "'\(a)' is not supported (only relu)")
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
}

// MARK: - Tensor names

enum OPTNames {
    static let embed = "model.decoder.embed_tokens.weight"
    static let positions = "model.decoder.embed_positions.weight"
    static let finalNorm = "model.decoder.final_layer_norm.weight"
    static func layer(_ i: Int, _ s: String) -> String { "model.decoder.layers.\(i).\(s)" }
}

extension Model {
    static func buildOPT(_ ck: Checkpoint) throws -> Model {
        let c = ck.config
        var t = TensorTaker(tensors: ck.tensors, file: ck.path)
        let embed = try t.take(OPTNames.embed, [c.vocabSize, c.dModel])
        let positions = try t.take(OPTNames.positions, [c.maxSeqLen + ModelConfig.optPositionOffset, c.dModel])
        func layerNorm(_ name: String) throws -> Norm {
            Norm(name: name, weight: try t.take(name, [c.dModel]), bias: try t.take(Linear.biasName(for: name), [c.dModel]))
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
        let head = try t.takeIfPresent("lm_head.weight", [c.vocabSize, c.dModel])
        if !c.tiedEmbeddings && head == nil { throw ModelError.missingTensor(name: "lm_head.weight", file: ck.path) }
        return Model(config: c, embed: embed, embedName: OPTNames.embed, positions: positions, blocks: blocks,
                     finalNorm: finalNorm, lmHead: c.tiedEmbeddings ? nil : head)
    }

    // MARK: - Block forward

    /// One pre-LN OPT block on x [N, d], top to bottom:
    /// x += out_proj(attn(q, k, v)) on LN(x); x += fc2(relu(fc1(LN(x)))).
    /// HF scales q by 1/√hd inside the projection; we scale the scores instead (same product).
    func optBlock(_ blk: Block, _ x: inout [Float], segments: [Segment], _ b: BlockBuffers) {
        let c = config, n = b.rows
        // buildOPT always loads both LayerNorm biases; the fallback only keeps this total.
        let beta1 = blk.attnNorm.bias ?? zeros(c.dModel), beta2 = blk.mlpNorm.bias ?? zeros(c.dModel)
        b.keep(x, &b.resid)                                              // [N, d] hook_resid_pre
        // Attention half.
        x.cptr { xp in b.normed1.ptr { y in b.inv1.ptr {
            layerNorm(xp, blk.attnNorm.weight, beta1, y, inv: $0, rows: n, d: c.dModel, eps: c.normEps)
        } } }
        b.normed1.cptr { h in                                            // [N, d]
            b.q.ptr { blk.q.forward(h, $0, rows: n) }                    // [N, d]
            b.k.ptr { blk.k.forward(h, $0, rows: n) }                    // [N, d]
            b.v.ptr { blk.v.forward(h, $0, rows: n) }                    // [N, d]
        }
        attend(b, layer: blk.index, segments: segments, rope: nil)       // b.z [N, d]
        addSublayer(blk.o, input: b.z, to: &x, keep: &b.attnOut, rows: n) // x += out_proj(z)
        b.keep(x, &b.mid)                                                // [N, d] hook_resid_mid
        // MLP half.
        x.cptr { xp in b.normed2.ptr { y in b.inv2.ptr {
            layerNorm(xp, blk.mlpNorm.weight, beta2, y, inv: $0, rows: n, d: c.dModel, eps: c.normEps)
        } } }
        b.normed2.cptr { h in b.pre.ptr { blk.up.forward(h, $0, rows: n) } }   // [N, dFF] fc1
        b.withPost { post in                                             // [N, dFF] relu(fc1)
            mlpActivation(b, into: post)
            addSublayer(blk.down, input: post, to: &x, keep: &b.mlpOut, rows: n) // x += fc2(post)
        }
    }
}

// MARK: - LRP backward (one function per block, llm.c style)

extension Model {
    /// Backward through one OPT block (lxt GPT-2 patch equivalents: LayerNorm
    /// with constant σ, ReLU unchanged, q/k ÷4 and v ÷2). `dx` [N, d] holds
    /// δ(block output) on entry and δ(block input) on return.
    func optBlockBackward(_ blk: Block, _ b: BlockBuffers, dx: UnsafeMutablePointer<Float>, _ g: GradBuffers,
                          rules: LRPRules, sink: RelevanceSink?, scratch: BackwardScratch) {
        let c = config, n = b.rows, m = n * c.dFF
        // MLP half: out = mid + fc2(relu(fc1(LN(mid)))).
        postForBackward(b) { post in b.mlpOut.cptr { z in g.dPost.ptr { dPost in
            linearBackward(blk.down, x: post, dy: dx, z: z, dx: dPost, accumulate: false, rows: n, rules: rules, sink: sink, scratch: scratch)
            sink?.neurons(layer: blk.index, columnRelevance(post, dPost, rows: n, cols: c.dFF, abs: sink?.wantsAbsPerToken ?? false))
        } } }
        // ReLU: the identity rule's f(x)/x equals ReLU's gradient, so no change.
        b.pre.cptr { pre in g.dPost.cptr { dPost in g.dGate.ptr { dPre in
            parallelRows(m, work: m) { r in for i in r { dPre[i] = pre[i] > 0 ? dPost[i] : 0 } }
        } } }
        b.normed2.cptr { h in g.dn.ptr { dn in g.dGate.cptr { dPre in b.pre.cptr { z in
            linearBackward(blk.up, x: h, dy: dPre, z: z, dx: dn, accumulate: false, rows: n, rules: rules, sink: sink, scratch: scratch)
        } } } }
        layerNormBlockBackward(blk.mlpNorm, input: b.mid, inv: b.inv2, g: g, dx: dx, rows: n, rules: rules, scratch: scratch)
        // Attention half: mid = resid + out_proj(attn(q, k, v)).
        attentionHalfBackward(blk, b, dx: dx, g, rules: rules, sink: sink, scratch: scratch) { _, _ in }
        layerNormBlockBackward(blk.attnNorm, input: b.resid, inv: b.inv1, g: g, dx: dx, rows: n, rules: rules, scratch: scratch)
    }

    /// δx += LayerNorm backward of g.dn; β ⊙ Σ_t δy is the relevance β absorbs.
    func layerNormBlockBackward(_ norm: Norm, input: [Float], inv: [Float], g: GradBuffers, dx: UnsafeMutablePointer<Float>,
                                rows n: Int, rules: LRPRules, scratch: BackwardScratch) {
        let d = config.dModel
        g.dn.cptr { dn in input.cptr { x in inv.cptr { s in
            if let beta = norm.bias {
                var r = 0.0
                for t in 0..<n { for j in 0..<d { r += Double(beta[j] * dn[t * d + j]) } }
                scratch.biasRelevance += r
            }
            layerNormBackward(dy: dn, x: x, inv: s, g: norm.weight, dx: dx, rows: n, d: d,
                              constantNormaliser: rules.normIsConstant, accumulate: true)
        } } }
    }
}
