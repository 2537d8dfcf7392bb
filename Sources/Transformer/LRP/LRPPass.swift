import Foundation

// MARK: - Gradient buffers (one set per pass, reused for every layer)

final class GradBuffers {
    let dPost: Buffer     // [N, dFF]  δ at the MLP activation (down/fc2 input); then δ at up_proj out (Llama)
    let dGate: Buffer     // [N, dFF]  δ at gate_proj out (Llama) / fc1 out (OPT)
    let dz: Buffer        // [N, qDim] δ at the attention output z
    let dq: Buffer        // [N, qDim]
    let dk: Buffer        // [N, kvDim]
    let dv: Buffer        // [N, kvDim]
    let dn: Buffer        // [N, d]    δ at a norm output
    init(config c: ModelConfig, rows n: Int) {
        dPost = Buffer(count: n * c.dFF); dGate = Buffer(count: n * c.dFF)
        dz = Buffer(count: n * c.qDim); dq = Buffer(count: n * c.qDim)
        dk = Buffer(count: n * c.kvDim); dv = Buffer(count: n * c.kvDim)
        dn = Buffer(count: n * c.dModel)
    }
}

extension LRPRules {
    /// The optional block copies the backward with these rules reads: the norm
    /// inputs only when the normaliser is differentiated (plain gradient), the
    /// sub-layer outputs only for LRP-ε. The MLP activation is never kept: it is
    /// recomputed from pre (and up) in one element-wise pass.
    var hooks: BlockBuffers.Hooks {
        var h: BlockBuffers.Hooks = []
        if !normIsConstant { h.insert(.residuals) }
        if epsilon > 0 { h.insert(.sublayerOutputs) }
        return h
    }
}

extension BlockBuffers {
    /// Bytes one block's activations take for `rows` tokens when kept for the
    /// backward with `rules` (see `LRPRules.hooks`).
    static func bytes(_ c: ModelConfig, rows n: Int, rules: LRPRules = .attnLRP) -> Int {
        let hooks = rules.hooks
        var floats = 2 * c.dModel + 2 * c.qDim + 2 * c.kvDim + (c.definition.gatedMLP ? 2 : 1) * c.dFF + 2
        if hooks.contains(.residuals) { floats += 2 * c.dModel }        // resid, mid
        if hooks.contains(.sublayerOutputs) { floats += 2 * c.dModel }  // attnOut, mlpOut
        return n * floats * 4
    }

}

extension Model {
    /// The MLP activation of `b` [N, dFF] for the backward: the kept one, or
    /// recomputed into the shared buffer.
    func postForBackward(_ b: BlockBuffers) -> UnsafeMutablePointer<Float> {
        let p = b.postPointer
        if b.sharedPost != nil { config.definition.mlpActivation(self, b, into: p) }
        return p
    }
}

// MARK: - The LRP pass

extension Model {
    /// Resolves what is explained into groups of terms for a sequence.
    func resolve(_ spec: ExplainSpec, tokens: [Int], finalHidden nf: [Float]) throws -> [ExplainGroup] {
        let n = tokens.count, v = config.vocabSize
        switch spec {
        case .nextToken(let from):
            guard n >= 2 else { throw LRPError.tooFewTokens(n) }
            guard from >= 0, from < n - 1 else { throw LRPError.positionOutOfRange(position: from, length: n) }
            return (from..<(n - 1)).map { [ExplainTerm(position: $0, token: tokens[$0 + 1])] }
        case .lastMax:
            let row = nf.cptr { logits($0 + (n - 1) * config.dModel, rows: 1) }
            return [[ExplainTerm(position: n - 1, token: argmax(row))]]
        case .groups(let groups):
            for g in groups { for t in g {
                guard t.position >= 0, t.position < n else { throw LRPError.positionOutOfRange(position: t.position, length: n) }
                guard t.token >= 0, t.token < v else { throw ModelError.invalidToken(id: t.token, vocabSize: v) }
            } }
            return groups
        }
    }

    /// Activation bytes an LRP pass keeps by default: every SmolLM2-135M block at
    /// T=2048 (30 × 47 MB), for a measured peak RSS of 2.47 GB with the relevance
    /// accumulator; longer sequences recompute their lower blocks.
    public static let defaultLRPMemoryBudget = 1536 << 20

    /// One AttnLRP (or plain-gradient) pass over a sequence: forward, seed the
    /// explained logits, backward block by block. Per-weight gradients go to
    /// `sink` as each layer finishes; per-token input relevance is returned.
    ///
    /// Memory: a block's activations are kept from the forward when the total
    /// fits `memoryBudget` bytes; otherwise only the residual input of the other
    /// blocks is kept and they are recomputed during the backward.
    ///
    /// `embeddings` [N, d] replaces the token embeddings (integrated gradients along a path of
    /// input embeddings, EAP-IG-inputs); `tokens` still name the explained next tokens.
    ///
    /// `packed` lengths split the N rows into independent sequences, each from position 0 (several
    /// prompts, or several points of one integrated-gradients path, in one pass: larger matrix products,
    /// fewer fork-join regions). Every row's δ equals that of its sequence's own pass; explain terms then
    /// name packed rows (`.groups` only), and the token/position relevance is per packed row.
    public func lrp(tokens: [Int], explain: ExplainSpec, seed: SeedValue = .logit, rules: LRPRules = .attnLRP,
                    sink: RelevanceSink?, memoryBudget: Int = Model.defaultLRPMemoryBudget,
                    embeddings: [Float]? = nil, packed: [Int]? = nil) throws -> LRPResult {
        let c = config, n = tokens.count, d = c.dModel
        guard n >= 1 else { throw ModelError.emptyPrompt }
        let lengths = packed ?? [n]
        precondition(lengths.reduce(0, +) == n && lengths.allSatisfy { $0 >= 1 }, "packed lengths must cover the rows")
        precondition(packed == nil || { if case .groups = explain { return true }; return false }(), "packed passes explain .groups")
        for len in lengths where len > c.maxSeqLen {
            throw ModelError.promptTooLong(tokens: len, limit: c.maxSeqLen, origin: contextOrigin)
        }
        for t in tokens where t < 0 || t >= c.vocabSize { throw ModelError.invalidToken(id: t, vocabSize: c.vocabSize) }
        releaseDecodeLayout()   // the pass never reads the decode copies; their memory is better spent here
        var seg: [Segment] = [], spans: [Range<Int>] = []
        for len in lengths {
            let r0 = spans.last?.upperBound ?? 0
            seg.append(Segment(rowStart: r0, count: len, pos0: 0, cache: KVCache(config: c, capacity: len, singleLayer: true)))
            spans.append(r0..<(r0 + len))
        }
        // Forward, keeping what the backward needs.
        precondition(embeddings == nil || embeddings!.count == n * d, "embeddings must be [N, d]")
        var x = embeddings ?? embedRows(tokens, segments: seg)           // [N, d]
        let storable = min(c.nLayers, memoryBudget / max(BlockBuffers.bytes(c, rows: n, rules: rules), 1))
        var kept: [BlockBuffers?] = Array(repeating: nil, count: c.nLayers)
        var inputs: [[Float]?] = Array(repeating: nil, count: c.nLayers)
        let post = SharedBuffer(count: n * c.dFF)                        // [N, dFF] for every block in turn
        let shared = storable < c.nLayers ? BlockBuffers(config: c, rows: n, hooks: rules.hooks, sharedPost: post) : nil
        shared?.spans = spans
        for l in 0..<c.nLayers {
            if l >= c.nLayers - storable {
                let bb = BlockBuffers(config: c, rows: n, hooks: rules.hooks, sharedPost: post)
                bb.spans = spans
                runBlock(l, &x, segments: seg, buffers: bb)
                kept[l] = bb
            } else {
                inputs[l] = x
                runBlock(l, &x, segments: seg, buffers: shared!)
            }
        }
        let invF = Buffer(count: n)                                     // [N] final norm 1/rms or 1/σ
        let nf = finalNormRows(x, rows: n, inv: invF.p)                   // [N, d]
        let groups = try resolve(explain, tokens: tokens, finalHidden: nf)
        let dnf = Buffer(count: n * d)                                    // [N, d] δ(final hidden)
        let (terms, explained) = seedExplained(groups, finalHidden: nf, seed: seed, into: dnf)
        guard explained != 0 || seed == .logit, !terms.isEmpty else { throw LRPError.nothingToExplain }
        // Checked before the backward touches the sink: an overflowing forward (a huge but finite
        // weight) would otherwise turn every accumulated score into NaN, far from its cause.
        if let bad = terms.first(where: { !$0.logit.isFinite }) {
            throw LRPError.nonFiniteLogit(value: bad.logit, position: bad.term.position, token: bad.term.token, model: sourcePath)
        }
        // Backward: final norm, then blocks last to first.
        let scratch = BackwardScratch(maxWeight: max(c.dFF * d, c.qDim * d, c.kvDim * d))
        let dx = Buffer(count: n * d)                                     // [N, d] δ residual stream
        finalNorm.backward(dy: dnf.p, x: x, inv: invF.p, dx: dx.p, rows: n, d: d, constantNormaliser: rules.normIsConstant,
                           accumulate: false, biasRelevance: &scratch.biasRelevance)
        if let sink, sink.wantsNodeInputs { sink.logitsInput(dx.p, rows: n) }
        let grads = GradBuffers(config: c, rows: n)
        for l in stride(from: c.nLayers - 1, through: 0, by: -1) {
            let bb: BlockBuffers
            if let k = kept[l] { bb = k } else {
                var xi = inputs[l]!                                      // recompute this block's activations
                runBlock(l, &xi, segments: seg, buffers: shared!)
                bb = shared!
            }
            c.definition.blockBackward(self, blocks[l], bb, dx: dx.p, grads, rules: rules, sink: sink, scratch: scratch)
            kept[l] = nil; inputs[l] = nil                               // free as we go
        }
        // Input relevance: embedding ⊙ δ, summed over the hidden dimension.
        let tokRel = rowRelevance(embed, rows: tokens, dx)
        let posRel = positions.map { rowRelevance($0, rows: lengths.flatMap { (0..<$0).map { $0 + c.definition.positionOffset } }, dx) }
        return LRPResult(terms: terms, explained: explained, tokenRelevance: tokRel, positionRelevance: posRel,
                         biasRelevance: scratch.biasRelevance)
    }

    /// Seeds δ(final hidden) [N, d] with Σ coef · scale · W_U[token] per explained group — the
    /// unembedding is linear, so no [T, vocab] logits matrix is ever formed. Returns the
    /// resolved terms with their logits and the explained total.
    func seedExplained(_ groups: [ExplainGroup], finalHidden h: [Float], seed: SeedValue,
                       into dh: Buffer) -> (terms: [(term: ExplainTerm, logit: Float)], explained: Double) {
        let d = config.dModel, w = unembedding
        var terms: [(term: ExplainTerm, logit: Float)] = []
        var explained = 0.0
        for g in groups {
            let logitsOfGroup = g.map { t -> Float in
                var s: Float = 0
                for j in 0..<d { s += h[t.position * d + j] * w[t.token * d + j] }
                return s
            }
            let y = zip(g, logitsOfGroup).reduce(0.0) { $0 + Double($1.0.coefficient * $1.1) }
            terms += zip(g, logitsOfGroup).map { ($0, $1) }
            let scale: Float
            switch seed {
            case .logit: scale = 1; explained += y
            case .one:
                guard abs(y) > 1e-12 else { continue }
                scale = Float(1 / y); explained += 1
            }
            for t in g {
                let k = t.coefficient * scale
                for j in 0..<d { dh[t.position * d + j] += k * w[t.token * d + j] }
            }
        }
        return (terms, explained)
    }

    /// r[t] = Σ_j table[rows[t], j] · δ[t, j]: relevance of an embedding-table input (tokens, positions) [T].
    func rowRelevance(_ table: [Float], rows: [Int], _ g: Buffer) -> [Float] {
        let d = config.dModel
        return table.withUnsafeBufferPointer { e in
            rows.indices.map { t in
                var s: Float = 0
                for j in 0..<d { s += e[rows[t] * d + j] * g.p[t * d + j] }
                return s
            }
        }
    }
}
