import Foundation

// MARK: - δ at the component graph's node inputs
//
// In EAP-IG's graph each head reads its own q, k and v input and each MLP its
// own input; in the unpatched model they all equal the residual stream, so the
// δ at one node input is that node's share of the block backward: head h's
// slice of δq (after RoPE's inverse), δk or δv through its projection rows, then
// through the norm with the pass's rules. Edge scores are (upstream output
// difference) · (this δ); under AttnLRP rules this is relevance patching (RelP).

extension Model {
    /// Sends δ at every head's q/k/v input [3, H, N, d] to `sink`, when it asks.
    func tapHeadInputs(_ blk: Block, _ b: BlockBuffers, dq: UnsafePointer<Float>, dk: UnsafePointer<Float>,
                       dv: UnsafePointer<Float>, rules: LRPRules, sink: RelevanceSink?) {
        guard let sink, sink.wantsNodeInputs else { return }
        let c = config, n = b.rows, d = c.dModel, hd = c.headDim, nh = c.nHeads, qDim = c.qDim
        precondition(c.nKVHeads == nh, "node inputs need one k/v head per query head (ungroupedQueryAttention)")
        var out = zeros(3 * nh * n * d)                                       // [3, H, N, d]
        var t = zeros(BLAS.ways * n * d)                                      // [ways, N, d] one scratch per worker
        let dys = [(blk.q, dq), (blk.k, dk), (blk.v, dv)]
        out.ptr { op in t.ptr { scratch in
            // 3H independent items (which · H + h) with disjoint outputs, each single-threaded: dealt to the workers.
            BLAS.dynamicWorkers(costs: [Int](repeating: 1, count: 3 * nh)) { worker, item in
                let (which, h) = item.quotientAndRemainder(dividingBy: nh), (lin, dy) = dys[which]
                let tp = scratch + worker * n * d
                var unused = 0.0
                lin.weight.cptr { w in
                    BLAS.gemmSerial(transA: false, transB: false, m: n, n: d, k: hd, dy + h * hd, lda: qDim, w + h * hd * d, ldb: d,
                              tp, ldc: d)                                     // δ(normed input) = δy_h · W_h
                }
                blk.attnNorm.backward(dy: tp, x: b.resid.p, inv: b.inv1.p, dx: op + item * n * d,
                                      rows: n, d: d, constantNormaliser: rules.normIsConstant, accumulate: false,
                                      biasRelevance: &unused)
            }
            sink.headInputs(layer: blk.index, op, rows: n)
        } }
    }

    /// Sends δ at the MLP input [N, d] (δ at the MLP norm's output `dn` taken back through the norm).
    func tapMLPInput(_ blk: Block, _ b: BlockBuffers, dn: UnsafePointer<Float>, rules: LRPRules, sink: RelevanceSink?) {
        guard let sink, sink.wantsNodeInputs else { return }
        let c = config, n = b.rows
        var out = zeros(n * c.dModel)                                         // [N, d]
        var unused = 0.0
        out.ptr { op in
            blk.mlpNorm.backward(dy: dn, x: b.mid.p, inv: b.inv2.p, dx: op, rows: n, d: c.dModel,
                                 constantNormaliser: rules.normIsConstant, accumulate: false, biasRelevance: &unused)
            sink.mlpInput(layer: blk.index, op, rows: n)
        }
    }
}
