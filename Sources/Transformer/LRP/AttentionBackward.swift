import Foundation

// MARK: - Attention backward

extension Model {
    /// Shared attention half of a block backward: o_proj, heads, attention, then
    /// q/k/v projections; leaves δ(ln1 output) in g.dn. `ropeBackward` undoes
    /// the rotation on δq/δk (RoPE families) before the projections.
    func attentionHalfBackward(_ blk: Block, _ b: BlockBuffers, dx: UnsafeMutablePointer<Float>, _ g: GradBuffers,
                               rules: LRPRules, sink: RelevanceSink?, scratch: BackwardScratch,
                               ropeBackward: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let c = config, n = b.rows, abs = sink?.wantsAbsPerToken ?? false
        linearBackward(blk.o, x: b.z.p, dy: dx, z: b.attnOut.p, dx: g.dz.p, accumulate: false,
                       rows: n, rules: rules, sink: sink, scratch: scratch)     // δz = oᵀδmid
        sink?.heads(layer: blk.index, headRelevance(z: b.z.p, dz: g.dz.p, rows: n, abs: abs))
        attentionBackward(b, dz: g.dz.p, dq: g.dq.p, dk: g.dk.p, dv: g.dv.p, rules: rules, scratch: scratch)
        ropeBackward(g.dq.p, g.dk.p)
        tapHeadInputs(blk, b, dq: g.dq.p, dk: g.dk.p, dv: g.dv.p, rules: rules, sink: sink)
        // LRP-ε needs the projections' outputs before RoPE.
        var qPre: Buffer?, kPre: Buffer?
        if rules.epsilon > 0 {
            qPre = b.q.copy(); kPre = b.k.copy()
            for sp in b.spans {
                rope?.apply(qPre!.p + sp.lowerBound * c.qDim, rows: sp.count, nHeads: c.nHeads, pos0: 0, inverse: true)
                rope?.apply(kPre!.p + sp.lowerBound * c.kvDim, rows: sp.count, nHeads: c.nKVHeads, pos0: 0, inverse: true)
            }
        }
        linearBackward(blk.q, x: b.normed1.p, dy: g.dq.p, z: qPre?.p, dx: g.dn.p, accumulate: false,
                       rows: n, rules: rules, sink: sink, scratch: scratch)     // δln1 = qᵀδq
        linearBackward(blk.k, x: b.normed1.p, dy: g.dk.p, z: kPre?.p, dx: g.dn.p, accumulate: true,
                       rows: n, rules: rules, sink: sink, scratch: scratch)     //      + kᵀδk
        linearBackward(blk.v, x: b.normed1.p, dy: g.dv.p, z: b.v.p, dx: g.dn.p, accumulate: true,
                       rows: n, rules: rules, sink: sink, scratch: scratch)     //      + vᵀδv
        withExtendedLifetime((qPre, kPre)) {}
    }

    /// Backward through causal attention for each sequence of `b.spans` (each from pos0 = 0) with the
    /// AttnLRP factors: δv = vF·Pᵀδz; δS = P ⊙ (δP − rowdot(δP, P)) (plain softmax
    /// gradient); δq = qkF·scale·δS·K; δk = qkF·scale·δSᵀ·Q. Probabilities are
    /// recomputed per head and query block, never stored for all heads. A packed pass
    /// (several spans) runs exactly the work items each span would run alone.
    func attentionBackward(_ b: BlockBuffers, dz: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>,
                           dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>, rules: LRPRules,
                           scratch: BackwardScratch) {
        let c = config, n = b.rows, hd = c.headDim, qDim = c.qDim, kvDim = c.kvDim
        let group = c.nHeads / c.nKVHeads, scale = 1 / Float(hd).squareRoot()
        let qkF = rules.qkFactor, vF = rules.vFactor
        dq.update(repeating: 0, count: n * qDim)
        dk.update(repeating: 0, count: n * kvDim)
        dv.update(repeating: 0, count: n * kvDim)
        // (query block × head) work items over the cores, single-threaded BLAS
        // inside. δq slices are disjoint; δk/δv of a kv head collect from many
        // items, so worker w > 0 accumulates into its own buffer, added in
        // worker order afterwards — the result does not depend on timing.
        let ways = max(BLAS.ways, 1), parallel = ways > 1
        let spans = b.spans, longest = spans.map(\.count).max() ?? 0
        let need = min(queryBlock, longest) * longest
        if scratch.s.count < need * ways { scratch.s = zeros(need * ways); scratch.dP = zeros(need * ways) }
        var extra = zeros((ways - 1) * 2 * n * kvDim)                  // [ways-1][dk | dv]
        // (span, query block) pairs; each with every head is one work item.
        let pairs = spans.indices.flatMap { si in (0..<((spans[si].count + queryBlock - 1) / queryBlock)).map { (si, $0) } }
        let costs = (0..<(pairs.count * c.nHeads)).map { min((pairs[$0 / c.nHeads].1 + 1) * queryBlock, spans[pairs[$0 / c.nHeads].0].count) }
        let q = b.q.p, k = b.k.p, v = b.v.p
        scratch.s.ptr { sAll in scratch.dP.ptr { dPAll in extra.ptr { ex in
            BLAS.workers(costs: costs) { worker, item in
                let s = sAll + worker * need, dP = dPAll + worker * need
                let dkW = worker == 0 ? dk : ex + (worker - 1) * 2 * n * kvDim
                let dvW = worker == 0 ? dv : dkW + n * kvDim
                let gemm = parallel ? BLAS.gemmSerial : BLAS.gemm
                let h = item % c.nHeads, (si, blk) = pairs[item / c.nHeads]
                let base = spans[si].lowerBound, i0 = blk * queryBlock    // rows base + i0 …; positions i0 … within the span
                let i1 = min(i0 + queryBlock, spans[si].count), rows = i1 - i0, keys = i1
                let g = h / group
                let qh = q + (base + i0) * qDim + h * hd, kg = k + base * kvDim + g * hd, vg = v + base * kvDim + g * hd
                let dzh = dz + (base + i0) * qDim + h * hd
                // Row strips stop at their own last key, as in the forward (`diagonalStrips`);
                // maskedSoftmax zeroes every masked entry, so P is exact for the transposed products.
                diagonalStrips(rows: rows, keys: keys, height: scoreStripRows) { r0, r1, kEnd in
                    gemm(false, true, r1 - r0, kEnd, hd, scale, qh + r0 * qDim, qDim, kg, kvDim, 0, s + r0 * keys, keys)
                }
                maskedSoftmax(s, rows: rows, keys: keys, firstPos: i0, parallel: !parallel)
                // δv_g += vF · Pᵀ δz_h
                diagonalKeyStrips(rows: rows, keys: keys, height: scoreStripRows) { k0, k1, rStart in
                    gemm(true, false, k1 - k0, hd, rows - rStart, vF, s + rStart * keys + k0, keys, dzh + rStart * qDim, qDim,
                         1, dvW + (base + k0) * kvDim + g * hd, kvDim)
                }
                guard qkF != 0 else { return }
                // δP = δz_h V_gᵀ, then δS = P ⊙ (δP − Σ_j δP·P) in place in dP.
                diagonalStrips(rows: rows, keys: keys, height: scoreStripRows) { r0, r1, kEnd in
                    gemm(false, true, r1 - r0, kEnd, hd, 1, dzh + r0 * qDim, qDim, vg, kvDim, 0, dP + r0 * keys, keys)
                }
                parallelRows(rows, work: parallel ? 0 : rows * keys) { range in
                    for r in range {
                        let pr = s + r * keys, dr = dP + r * keys, visible = i0 + r + 1
                        let dot = dotSIMD(pr, dr, visible)
                        for j in 0..<visible { dr[j] = pr[j] * (dr[j] - dot) }
                        for j in visible..<keys { dr[j] = 0 }
                    }
                }
                diagonalStrips(rows: rows, keys: keys, height: valueStripRows) { r0, r1, kEnd in
                    gemm(false, false, r1 - r0, hd, kEnd, qkF * scale, dP + r0 * keys, keys, kg, kvDim, 0,
                         dq + (base + i0 + r0) * qDim + h * hd, qDim)
                }
                diagonalKeyStrips(rows: rows, keys: keys, height: scoreStripRows) { k0, k1, rStart in
                    gemm(true, false, k1 - k0, hd, rows - rStart, qkF * scale, dP + rStart * keys + k0, keys, qh + rStart * qDim, qDim,
                         1, dkW + (base + k0) * kvDim + g * hd, kvDim)
                }
            }
            for w in 1..<ways {
                let base = ex + (w - 1) * 2 * n * kvDim
                addInPlace(dk, base, n * kvDim)
                addInPlace(dv, base + n * kvDim, n * kvDim)
            }
        } } }
    }

    /// Σ_t z_h ⊙ δz_h per head: the relevance that passes through each head.
    func headRelevance(z: UnsafePointer<Float>, dz: UnsafePointer<Float>, rows n: Int, abs: Bool = false) -> [Float] {
        let c = config
        var r = [Float](repeating: 0, count: c.nHeads)
        for t in 0..<n { for h in 0..<c.nHeads {
            let o = t * c.qDim + h * c.headDim
            let s = dotSIMD(z + o, dz + o, c.headDim)
            r[h] += abs ? Swift.abs(s) : s
        } }
        return r
    }
}
