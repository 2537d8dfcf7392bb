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
    public func headOutputs(layer l: Int, inputs: UnsafePointer<Float>, segments: [Segment], rows n: Int) -> [Float] {
        let nd = n * config.dModel
        var out = zeros(config.nHeads * nd)
        out.ptr { headOutputs(layer: l, inputs: (0..<(3 * config.nHeads)).map { inputs + $0 * nd }, segments: segments, rows: n, into: $0) }
        return out
    }

    /// The same from one pointer per input: `inputs[which · H + h]` [N, d] is head h's q (which 0), k (1) or v (2)
    /// input. Inputs given as the same pointer are normalised once (a sparse circuit feeds most inputs the same
    /// stream). Only heads with `active[h]` (all when nil) are computed: the others' q/k/v are set to 0 and their
    /// rows of `out` are not written (a circuit reads no output of theirs). Writes `out` [H, N, d].
    /// The per-head products are small ([N, d]·[d, hd]): each is one single-threaded sgemm (splitting each
    /// over the worker team cost more in synchronisation than it saved: perf, 23 % in the team's loop), and
    /// the 3H of them are dealt out to the workers whole (disjoint outputs: the result does not depend on
    /// which worker runs which, nor on which inputs share a pointer: the norm of a row is the same either way).
    /// `given[item]`, when set, is an [N, qDim] projection (bias included, before RoPE) of that item's input computed
    /// elsewhere (a circuit run's input that equals the corrupted stream: the source run's q/k/v, `projections` of
    /// `headOutputs(sharedInput:)`): head h's columns are copied from it instead of normalising and projecting again.
    public func headOutputs(layer l: Int, inputs: [UnsafePointer<Float>], active: [Bool]? = nil,
                            given: [UnsafePointer<Float>?]? = nil, segments: [Segment], rows n: Int,
                            into out: UnsafeMutablePointer<Float>) {
        let c = config, d = c.dModel, hd = c.headDim, nh = c.nHeads, qDim = c.qDim
        precondition(c.nKVHeads == nh, "head inputs need one k/v head per query head (ungroupedQueryAttention)")
        precondition(inputs.count == 3 * nh && (active == nil || active!.count == nh) && (given == nil || given!.count == 3 * nh))
        let on = active ?? [Bool](repeating: true, count: nh)
        let blk = blocks[l]
        let b = BlockBuffers(config: c, rows: n, hooks: [], sharedPost: SharedBuffer(count: 0))
        let lins = [(blk.q, b.q.p), (blk.k, b.k.p), (blk.v, b.v.p)]
        let used = (0..<(3 * nh)).filter { on[$0 % nh] }                       // item = which · H + h
        let copied = used.filter { given?[$0] != nil }, items = used.filter { given?[$0] == nil }
        if !copied.isEmpty {                                                    // o[:, h] [N, hd] = given[:, h]
            BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: copied.count)) { _, i in
                let item = copied[i], h = item % nh, o = lins[item / nh].1 + h * hd, g = given![item]! + h * hd
                for r in 0..<n { (o + r * qDim).update(from: g + r * qDim, count: hd) }
            }
        }
        var slot = [Int](repeating: -1, count: 3 * nh), distinct: [UnsafePointer<Float>] = [], seen: [UnsafePointer<Float>: Int] = [:]
        for item in items {
            if let s = seen[inputs[item]] { slot[item] = s; continue }
            seen[inputs[item]] = distinct.count; slot[item] = distinct.count; distinct.append(inputs[item])
        }
        let normed = Buffer(uninitialized: distinct.count * n * d)              // [distinct inputs, N, d]
        BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: distinct.count)) { _, s in
            blk.attnNorm.forward(distinct[s], normed.p + s * n * d, inv: nil, rows: n, d: d, eps: c.normEps)
        }
        BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: items.count)) { _, i in
            let item = items[i], (which, h) = item.quotientAndRemainder(dividingBy: nh), (lin, o) = lins[which]
            let np = normed.p + slot[item] * n * d
            lin.weight.cptr { w in                                              // o[:, h] [N, hd] = normed · W[h]ᵀ
                BLAS.gemmSerial(transA: false, transB: true, m: n, n: hd, k: d, np, lda: d, w + h * hd * d, ldb: d,
                                o + h * hd, ldc: qDim)
            }
            if let bias = lin.bias {
                for r in 0..<n { for e in 0..<hd { o[r * qDim + h * hd + e] += bias[h * hd + e] } }
            }
        }
        for h in 0..<nh where !on[h] {                                          // no output read: q/k/v 0, never NaN
            for (_, o) in lins { for r in 0..<n { (o + r * qDim + h * hd).update(repeating: 0, count: hd) } }
        }
        headOutputs(layer: l, projected: b, segments: segments, active: on, into: out)
    }

    /// Layer l's heads [H, N, d] when every q/k/v input is the same residual stream `input` [N, d] (an
    /// unpatched run): the norm once and one full-width product per projection instead of 3H slices.
    public func headOutputs(layer l: Int, sharedInput input: UnsafePointer<Float>, segments: [Segment], rows n: Int) -> [Float] {
        var out = zeros(config.nHeads * n * config.dModel)
        out.ptr { headOutputs(layer: l, sharedInput: input, segments: segments, rows: n, into: $0) }
        return out
    }

    /// The same, written to `out` [H, N, d]. `projections`, when given, receives q, k and v [3, N, qDim] (bias included,
    /// before RoPE) for circuit runs whose inputs equal this stream (`given` above).
    public func headOutputs(layer l: Int, sharedInput input: UnsafePointer<Float>, segments: [Segment], rows n: Int,
                            into out: UnsafeMutablePointer<Float>, projections: UnsafeMutablePointer<Float>? = nil) {
        let c = config, d = c.dModel, qDim = c.qDim
        precondition(c.nKVHeads == c.nHeads, "head inputs need one k/v head per query head (ungroupedQueryAttention)")
        let blk = blocks[l]
        let b = BlockBuffers(config: c, rows: n, hooks: [], sharedPost: SharedBuffer(count: 0))
        let np = b.normed1.p                                                    // [N, d]
        blk.attnNorm.forward(input, np, inv: nil, rows: n, d: d, eps: c.normEps)
        for (lin, out) in [(blk.q, b.q.p), (blk.k, b.k.p), (blk.v, b.v.p)] {   // [N, qDim] each, as the per-head slices
            lin.weight.cptr { w in BLAS.linear(np, w, out, m: n, k: d, n: qDim) }
            if let bias = lin.bias { addRowBias(out, bias, rows: n, cols: qDim) }
        }
        if let projections {
            for (i, p) in [b.q.p, b.k.p, b.v.p].enumerated() { copyParallel(projections + i * n * qDim, p, n * qDim) }
        }
        headOutputs(layer: l, projected: b, segments: segments, active: [Bool](repeating: true, count: c.nHeads), into: out)
    }

    /// Attention from projected q/k/v in `b`, then the o_proj columns of each active head into out [H, N, d].
    private func headOutputs(layer l: Int, projected b: BlockBuffers, segments: [Segment], active: [Bool], into op: UnsafeMutablePointer<Float>) {
        let c = config, d = c.dModel, hd = c.headDim, qDim = c.qDim, n = b.rows
        attend(b, layer: l, segments: segments, rope: rope)                     // b.z [N, qDim]
        let heads = active.indices.filter { active[$0] }
        blocks[l].o.weight.cptr { w in
            BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: heads.count)) { _, i in   // o_proj columns of head h
                let h = heads[i]
                BLAS.gemmSerial(transA: false, transB: true, m: n, n: d, k: hd, b.z.p + h * hd, lda: qDim, w + h * hd, ldb: qDim,
                                op + h * n * d, ldc: d)
            }
        }
    }

    /// Layer l's MLP output [N, d] (down bias included) from its residual-stream input [N, d].
    public func mlpOutput(layer l: Int, input: UnsafePointer<Float>, rows n: Int) -> [Float] {
        var out = zeros(n * config.dModel)
        out.ptr { mlpOutput(layer: l, input: input, rows: n, into: $0) }
        return out
    }

    /// The same, written to `out` [N, d].
    public func mlpOutput(layer l: Int, input: UnsafePointer<Float>, rows n: Int, into out: UnsafeMutablePointer<Float>) {
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
        blk.down.forward(b.post.p, out, rows: n)
    }
}
