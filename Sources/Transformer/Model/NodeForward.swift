import Foundation

// MARK: - Node-level forward (component graphs)
//
// EAP-IG's graph gives every attention head its own q, k and v input and each MLP
// its own input, each the sum of upstream node outputs (the residual stream of a
// pre-norm model is such a sum). These run one layer's heads, or its MLP, from
// such inputs and return each node's output in the residual basis, so a caller can
// patch single edges exactly. Heads need one k/v head per query head
// (`ungroupedQueryAttention()`), as EAP-IG's `ungroup_grouped_query_attention`.

extension Model {
    /// A copy in which every query head has its own key/value head (k_proj/v_proj rows and biases
    /// repeated per query head): the same function, with k and v separable per query head.
    public func ungroupedQueryAttention() -> Model {
        let c = config
        guard c.nKVHeads != c.nHeads else { return self }
        var u = c
        u.nKVHeads = c.nHeads
        let group = c.nHeads / c.nKVHeads, hd = c.headDim, d = c.dModel
        func repeated(_ lin: Linear) -> Linear {
            var w = [Float](repeating: 0, count: c.qDim * d)        // [qDim, d]
            var b: [Float]? = lin.bias == nil ? nil : [Float](repeating: 0, count: c.qDim)
            for h in 0..<c.nHeads {
                let g = h / group
                w.replaceSubrange((h * hd * d)..<((h + 1) * hd * d), with: lin.weight[(g * hd * d)..<((g + 1) * hd * d)])
                if let lb = lin.bias { b!.replaceSubrange((h * hd)..<((h + 1) * hd), with: lb[(g * hd)..<((g + 1) * hd)]) }
            }
            return Linear(name: lin.name, outDim: c.qDim, inDim: d, weight: w, bias: b)
        }
        let blocks = self.blocks.map { bl in
            Block(index: bl.index, attnNorm: bl.attnNorm, q: bl.q, k: repeated(bl.k), v: repeated(bl.v), o: bl.o,
                  mlpNorm: bl.mlpNorm, gate: bl.gate, up: bl.up, down: bl.down)
        }
        let m = Model(config: u, embed: embed, embedName: embedName, positions: positions, blocks: blocks,
                      finalNorm: finalNorm, lmHead: lmHead)
        m.rope = rope
        m.contextOrigin = contextOrigin
        m.sourcePath = sourcePath
        return m
    }

    /// Layer l's heads from per-head residual-stream inputs `inputs` [3, H, N, d] (the q input of
    /// every head, then the k inputs, then the v inputs). Returns each head's output
    /// o_proj[:, h]·z_h [H, N, d]; o_proj's bias (none in Llama) is no head's output and is left out.
    /// `segments` carry caches of this (ungrouped) model's shape.
    /// The per-head products are small ([N, d]·[d, hd]): each is one single-threaded sgemm (splitting each
    /// over the worker team cost more in synchronisation than it saved: perf, 23 % in the team's loop), and
    /// the 3H of them are dealt out to the workers whole (disjoint outputs: the result does not depend on
    /// which worker runs which).
    public func headOutputs(layer l: Int, inputs: UnsafePointer<Float>, segments: [Segment], rows n: Int) -> [Float] {
        let c = config, d = c.dModel, hd = c.headDim, nh = c.nHeads, qDim = c.qDim
        precondition(c.nKVHeads == nh, "head inputs need one k/v head per query head (ungroupedQueryAttention)")
        let blk = blocks[l]
        let b = BlockBuffers(config: c, rows: n, hooks: [], sharedPost: SharedBuffer(count: 0))
        let lins = [(blk.q, b.q.p), (blk.k, b.k.p), (blk.v, b.v.p)]
        var normed = zeros(BLAS.ways * n * d)                                   // [ways, N, d] one scratch per worker
        normed.ptr { scratch in
            BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: 3 * nh)) { worker, item in   // item = which · H + h
                let (which, h) = item.quotientAndRemainder(dividingBy: nh), (lin, out) = lins[which]
                let np = scratch + worker * n * d
                blk.attnNorm.forward(inputs + item * n * d, np, inv: nil, rows: n, d: d, eps: c.normEps)
                lin.weight.cptr { w in                                          // out[:, h] [N, hd] = normed · W[h]ᵀ
                    BLAS.gemmSerial(transA: false, transB: true, m: n, n: hd, k: d, np, lda: d, w + h * hd * d, ldb: d,
                                    out + h * hd, ldc: qDim)
                }
                if let bias = lin.bias {
                    for r in 0..<n { for e in 0..<hd { out[r * qDim + h * hd + e] += bias[h * hd + e] } }
                }
            }
        }
        return headOutputs(layer: l, projected: b, segments: segments)
    }

    /// Layer l's heads [H, N, d] when every q/k/v input is the same residual stream `input` [N, d] (an
    /// unpatched run): the norm once and one full-width product per projection instead of 3H slices.
    public func headOutputs(layer l: Int, sharedInput input: UnsafePointer<Float>, segments: [Segment], rows n: Int) -> [Float] {
        let c = config
        precondition(c.nKVHeads == c.nHeads, "head inputs need one k/v head per query head (ungroupedQueryAttention)")
        let blk = blocks[l]
        let b = BlockBuffers(config: c, rows: n, hooks: [], sharedPost: SharedBuffer(count: 0))
        let np = b.normed1.p                                                    // [N, d]
        blk.attnNorm.forward(input, np, inv: nil, rows: n, d: c.dModel, eps: c.normEps)
        for (lin, out) in [(blk.q, b.q.p), (blk.k, b.k.p), (blk.v, b.v.p)] {   // [N, qDim] each, as the per-head slices
            lin.weight.cptr { w in BLAS.linear(np, w, out, m: n, k: c.dModel, n: c.qDim) }
            if let bias = lin.bias { addRowBias(out, bias, rows: n, cols: c.qDim) }
        }
        return headOutputs(layer: l, projected: b, segments: segments)
    }

    /// Attention from projected q/k/v in `b`, then each head's o_proj columns: [H, N, d].
    private func headOutputs(layer l: Int, projected b: BlockBuffers, segments: [Segment]) -> [Float] {
        let c = config, d = c.dModel, hd = c.headDim, nh = c.nHeads, qDim = c.qDim, n = b.rows
        attend(b, layer: l, segments: segments, rope: rope)                     // b.z [N, qDim]
        var out = zeros(nh * n * d)                                             // [H, N, d]
        out.ptr { op in
            blocks[l].o.weight.cptr { w in
                BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: nh)) { _, h in   // o_proj columns of head h
                    BLAS.gemmSerial(transA: false, transB: true, m: n, n: d, k: hd, b.z.p + h * hd, lda: qDim, w + h * hd, ldb: qDim,
                              op + h * n * d, ldc: d)
                }
            }
        }
        return out
    }

    /// Layer l's MLP output [N, d] (down bias included) from its residual-stream input [N, d].
    public func mlpOutput(layer l: Int, input: UnsafePointer<Float>, rows n: Int) -> [Float] {
        let c = config, blk = blocks[l]
        let b = BlockBuffers(config: c, rows: n, hooks: .mlpPost, sharedPost: nil)
        blk.mlpNorm.forward(input, b.normed2.p, inv: nil, rows: n, d: c.dModel, eps: c.normEps)
        if let gate = blk.gate {                                                // gated: pre = gate, up = up
            gate.forward(b.normed2.p, b.pre.p, rows: n)
            blk.up.forward(b.normed2.p, b.up.p, rows: n)
        } else {                                                                // pre = fc1
            blk.up.forward(b.normed2.p, b.pre.p, rows: n)
        }
        config.definition.mlpActivation(self, b, into: b.post.p)
        var out = zeros(n * c.dModel)
        out.ptr { blk.down.forward(b.post.p, $0, rows: n) }
        return out
    }
}
