import Foundation
import XCTest
@testable import Transformer

// MARK: - Closed-form checks of each AttnLRP rule

/// Each rule of the Gradient×Input implementation against its closed form
/// (the way lxt's tests/test_functional.py checks its rules): softmax vs AttnLRP
/// Prop. 3.1, bilinear matmul vs Prop. 3.3 (uniform rule), linear vs LRP-ε
/// (SparC³ Eq. 9), identity rule, RMSNorm/LayerNorm with a constant normaliser;
/// and the plain-gradient variant against central finite differences.
final class LRPRuleTests: XCTestCase {
    typealias K = LRPTestKit

    // MARK: 1. Softmax, AttnLRP Prop. 3.1

    /// Kernel level: P from the Swift softmax kernels, δS = P ⊙ (δP − rowdot(δP, P)) (the
    /// formula in attentionBackward); S ⊙ δS equals x_i (R_i − s_i Σ_j R_j) with R = P ⊙ δP.
    func testSoftmaxGradientTimesInputIsProp31() {
        var rng = SeededRNG(seed: 11)
        // Single rows of several lengths (incl. the SIMD tail), softmaxRow.
        for len in [1, 3, 8, 13, 37] {
            let x = K.floats(len, &rng, scale: 3)
            var p = x
            p.ptr { softmaxRow($0, len) }
            let dP = K.floats(len, &rng, scale: 2).map(Double.init)
            let xd = x.map(Double.init), pd = p.map(Double.init)
            // Reference softmax in Double.
            let m = xd.max()!, e = xd.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
            for j in 0..<len { XCTAssertEqual(pd[j], e[j] / z, accuracy: 1e-6, "softmaxRow len \(len) j \(j)") }
            let R = (0..<len).map { pd[$0] * dP[$0] }, sumR = R.reduce(0, +)
            let rowdot = (0..<len).reduce(0.0) { $0 + pd[$1] * dP[$1] }
            for i in 0..<len {
                let closed = xd[i] * (R[i] - pd[i] * sumR)                       // Prop. 3.1
                let efficient = xd[i] * pd[i] * (dP[i] - rowdot)                   // S ⊙ δS
                XCTAssertEqual(efficient, closed, accuracy: 1e-12 + 1e-9 * abs(closed), "len \(len) i \(i)")
            }
        }
        // Masked block (second query block of a causal attention: firstPos > 0).
        let rows = 4, keys = 9, firstPos = 5
        let raw = K.floats(rows * keys, &rng, scale: 3)
        var s = raw
        s.ptr { maskedSoftmax($0, rows: rows, keys: keys, firstPos: firstPos) }
        for r in 0..<rows {
            let visible = firstPos + r + 1
            let row = Array(s[(r * keys)..<(r * keys + keys)])
            XCTAssertEqual(row.prefix(visible).reduce(0.0) { $0 + Double($1) }, 1, accuracy: 1e-6, "row \(r) sums to 1")
            for j in visible..<keys { XCTAssertEqual(row[j], 0, "masked key \(j) of row \(r) must be exactly 0") }
            var want = Array(raw[(r * keys)..<(r * keys + visible)])
            want.ptr { softmaxRow($0, visible) }
            for j in 0..<visible { XCTAssertEqual(row[j], want[j], accuracy: 1e-7) }
        }
    }

    /// Implementation level: Model.attentionBackward (GQA, two query blocks of 128) against
    /// a Double reference. Per (query, head): Σ_d q ⊙ δq = qkF · Σ_j S_ij(R_ij − P_ij Σ_k R_ik)
    /// with R = P ⊙ δP, δP = δz Vᵀ (Prop. 3.1); per key and kv head the same with the sum over
    /// queries and the heads of the group; per element δq, δk, δv equal the reference.
    func testAttentionBackwardMatchesProp31AndReference() throws {
        let m = try K.randomLlama(seed: 1, layers: 1, bias: false, maxSeq: 160)
        let c = m.config
        for (rules, n) in [(LRPRules.attnLRP, 133), (LRPRules.gradient, 7), (LRPRules.cpLRP, 9)] {
            try checkAttentionBackward(m, rules: rules, n: n)
        }
        XCTAssertEqual(c.nHeads / c.nKVHeads, 2, "test model has GQA")
    }

    func checkAttentionBackward(_ m: Model, rules: LRPRules, n: Int) throws {
        let c = m.config, hd = c.headDim, group = c.nHeads / c.nKVHeads
        var rng = SeededRNG(seed: UInt64(n))
        let b = BlockBuffers(config: c, rows: n)
        b.q.assign(K.floats(n * c.qDim, &rng, scale: 2))
        b.k.assign(K.floats(n * c.kvDim, &rng, scale: 2))
        b.v.assign(K.floats(n * c.kvDim, &rng, scale: 1))
        let dz = K.floats(n * c.qDim, &rng, scale: 1)
        var dq = [Float](repeating: 7, count: n * c.qDim), dk = [Float](repeating: 7, count: n * c.kvDim), dv = dk
        let scratch = BackwardScratch(maxWeight: 1)
        dz.cptr { dzp in dq.ptr { dqp in dk.ptr { dkp in dv.ptr { dvp in
            m.attentionBackward(b, dz: dzp, dq: dqp, dk: dkp, dv: dvp, rules: rules, scratch: scratch)
        } } } }
        // Double reference.
        let scale = 1 / Double(hd).squareRoot(), qkF = Double(rules.qkFactor), vF = Double(rules.vFactor)
        var rdq = [Double](repeating: 0, count: n * c.qDim), rdk = [Double](repeating: 0, count: n * c.kvDim), rdv = rdk
        var relQ = [Double](repeating: 0, count: n * c.nHeads)     // qkF · Σ_j R_S (closed form) per (i, h)
        var relK = [Double](repeating: 0, count: n * c.nKVHeads)   // qkF · Σ_{i,h∈g} R_S per (j, g)
        var relZ = 0.0, relV = 0.0
        for h in 0..<c.nHeads {
            let g = h / group
            for i in 0..<n {
                let keys = i + 1
                var S = [Double](repeating: 0, count: keys)
                for j in 0..<keys {
                    var dot = 0.0
                    for e in 0..<hd { dot += Double(b.q[i * c.qDim + h * hd + e]) * Double(b.k[j * c.kvDim + g * hd + e]) }
                    S[j] = scale * dot
                }
                let mx = S.max()!, ex = S.map { Foundation.exp($0 - mx) }, zs = ex.reduce(0, +)
                let P = ex.map { $0 / zs }
                var dP = [Double](repeating: 0, count: keys)
                for j in 0..<keys {
                    var dot = 0.0
                    for e in 0..<hd { dot += Double(dz[i * c.qDim + h * hd + e]) * Double(b.v[j * c.kvDim + g * hd + e]) }
                    dP[j] = dot
                }
                let R = (0..<keys).map { P[$0] * dP[$0] }, sumR = R.reduce(0, +)
                let rowdot = (0..<keys).reduce(0.0) { $0 + P[$1] * dP[$1] }
                for j in 0..<keys {
                    let closed = S[j] * (R[j] - P[j] * sumR)                      // Prop. 3.1
                    relQ[i * c.nHeads + h] += qkF * closed
                    relK[j * c.nKVHeads + g] += qkF * closed
                    let dS = P[j] * (dP[j] - rowdot)
                    for e in 0..<hd {
                        rdq[i * c.qDim + h * hd + e] += qkF * scale * dS * Double(b.k[j * c.kvDim + g * hd + e])
                        rdk[j * c.kvDim + g * hd + e] += qkF * scale * dS * Double(b.q[i * c.qDim + h * hd + e])
                        rdv[j * c.kvDim + g * hd + e] += vF * P[j] * Double(dz[i * c.qDim + h * hd + e])
                    }
                }
                for e in 0..<hd {
                    var zie = 0.0
                    for j in 0..<keys { zie += P[j] * Double(b.v[j * c.kvDim + g * hd + e]) }
                    relZ += zie * Double(dz[i * c.qDim + h * hd + e])
                }
            }
        }
        let tag = "\(rules.variant) n=\(n)"
        func maxAbs(_ a: [Double]) -> Double { a.map(abs).max() ?? 0 }
        let tq = 1e-5 * max(maxAbs(rdq), 1e-3), tk = 1e-5 * max(maxAbs(rdk), 1e-3), tv = 1e-5 * max(maxAbs(rdv), 1e-3)
        var worst = (q: 0.0, k: 0.0, v: 0.0)
        for i in rdq.indices { worst.q = max(worst.q, abs(Double(dq[i]) - rdq[i])) }
        for i in rdk.indices { worst.k = max(worst.k, abs(Double(dk[i]) - rdk[i])); worst.v = max(worst.v, abs(Double(dv[i]) - rdv[i])) }
        XCTAssertLessThanOrEqual(worst.q, tq, "\(tag): δq vs reference")
        XCTAssertLessThanOrEqual(worst.k, tk, "\(tag): δk vs reference")
        XCTAssertLessThanOrEqual(worst.v, tv, "\(tag): δv vs reference")
        if rules.variant == .cpLRP { XCTAssertEqual(maxAbs(dq.map(Double.init)), 0, "cp-lrp: no gradient to q") }
        // Prop. 3.1 through the implementation: relevance at q (and k) = qkF · Σ softmax-input relevance.
        let absRel = relQ.map(abs).reduce(0, +)
        for i in 0..<n { for h in 0..<c.nHeads {
            var got = 0.0
            for e in 0..<hd { got += Double(b.q[i * c.qDim + h * hd + e]) * Double(dq[i * c.qDim + h * hd + e]) }
            XCTAssertEqual(got, relQ[i * c.nHeads + h], accuracy: 1e-5 * max(absRel / Double(n), 1e-6), "\(tag) R_q i=\(i) h=\(h)")
        } }
        for j in 0..<n { for g in 0..<c.nKVHeads {
            var got = 0.0
            for e in 0..<hd { got += Double(b.k[j * c.kvDim + g * hd + e]) * Double(dk[j * c.kvDim + g * hd + e]) }
            XCTAssertEqual(got, relK[j * c.nKVHeads + g], accuracy: 1e-5 * max(absRel / Double(n), 1e-6), "\(tag) R_k j=\(j) g=\(g)")
        } }
        // Bilinear O = P·V (Prop. 3.3): V receives vF of the relevance at z.
        for i in b.v.indices { relV += Double(b.v[i]) * Double(dv[i]) }
        XCTAssertEqual(relV, vF * relZ, accuracy: 1e-5 * abs(relZ), "\(tag): Σ R_V = vF · Σ R_z")
    }

    // MARK: 2. Bilinear matmul, AttnLRP Prop. 3.3 (uniform rule)

    func testMatmulUniformRuleMatchesProp33() {
        var rng = SeededRNG(seed: 22)
        let mDim = 5, kDim = 7, nDim = 4
        let A = K.floats(mDim * kDim, &rng, scale: 1.5), B = K.floats(kDim * nDim, &rng, scale: 1.5)
        let dO = K.floats(mDim * nDim, &rng, scale: 1)
        // Efficient form with the Swift BLAS funnel: δA = ½ δO Bᵀ, δB = ½ Aᵀ δO.
        var dA = [Float](repeating: 0, count: mDim * kDim), dB = [Float](repeating: 0, count: kDim * nDim)
        var O = [Float](repeating: 0, count: mDim * nDim)
        A.cptr { a in B.cptr { bb in O.ptr { BLAS.gemm(transA: false, transB: false, m: mDim, n: nDim, k: kDim, a, lda: kDim, bb, ldb: nDim, $0, ldc: nDim) } } }
        dO.cptr { d in B.cptr { bb in dA.ptr { BLAS.gemm(transA: false, transB: true, m: mDim, n: kDim, k: nDim, alpha: 0.5, d, lda: nDim, bb, ldb: nDim, $0, ldc: kDim) } } }
        A.cptr { a in dO.cptr { d in dB.ptr { BLAS.gemm(transA: true, transB: false, m: kDim, n: nDim, k: mDim, alpha: 0.5, a, lda: kDim, d, ldb: nDim, $0, ldc: nDim) } } }
        // Closed form (AttnLRP Prop. 3.3): R_{A_ij} = Σ_k A_ij B_jk / (2 O_ik) · R_{O_ik}, R_O = O ⊙ δO.
        var Od = [Double](repeating: 0, count: mDim * nDim)
        for i in 0..<mDim { for k in 0..<nDim { for j in 0..<kDim { Od[i * nDim + k] += Double(A[i * kDim + j]) * Double(B[j * nDim + k]) } } }
        for i in Od.indices { XCTAssertEqual(Double(O[i]), Od[i], accuracy: 1e-5) }
        let RO = (0..<(mDim * nDim)).map { Od[$0] * Double(dO[$0]) }
        var sumA = 0.0, sumB = 0.0
        for i in 0..<mDim { for j in 0..<kDim {
            var closed = 0.0
            for k in 0..<nDim { closed += Double(A[i * kDim + j]) * Double(B[j * nDim + k]) / (2 * Od[i * nDim + k]) * RO[i * nDim + k] }
            let eff = Double(A[i * kDim + j]) * Double(dA[i * kDim + j])
            XCTAssertEqual(eff, closed, accuracy: 1e-5 * max(abs(closed), 0.1), "R_A[\(i),\(j)]")
            sumA += eff
        } }
        for j in 0..<kDim { for k in 0..<nDim {
            var closed = 0.0
            for i in 0..<mDim { closed += Double(A[i * kDim + j]) * Double(B[j * nDim + k]) / (2 * Od[i * nDim + k]) * RO[i * nDim + k] }
            let eff = Double(B[j * nDim + k]) * Double(dB[j * nDim + k])
            XCTAssertEqual(eff, closed, accuracy: 1e-5 * max(abs(closed), 0.1), "R_B[\(j),\(k)]")
            sumB += eff
        } }
        // Conservation of the bilinear rule, and the uniform split (each operand gets half).
        let sumO = RO.reduce(0, +)
        XCTAssertEqual(sumA + sumB, sumO, accuracy: 1e-5 * max(abs(sumO), 1), "Σ R_A + Σ R_B = Σ O ⊙ δO")
        XCTAssertEqual(sumA, 0.5 * sumO, accuracy: 1e-5 * max(abs(sumO), 1), "uniform rule: Σ R_A = ½ Σ R_O")
        XCTAssertEqual(sumB, 0.5 * sumO, accuracy: 1e-5 * max(abs(sumO), 1), "uniform rule: Σ R_B = ½ Σ R_O")
    }

    /// The two bilinear products inside attentionBackward with the AttnLRP factors:
    /// O = P·V gives V half of R_z; S = Q Kᵀ splits what reaches S equally between Q and K
    /// (Σ q ⊙ δq = Σ k ⊙ δk); and the ½·½ nesting gives qkF = ¼ relative to the plain gradient.
    func testAttentionBilinearSplits() throws {
        let m = try K.randomLlama(seed: 2, layers: 1, bias: false)
        let c = m.config, n = 11
        var rng = SeededRNG(seed: 23)
        let b = BlockBuffers(config: c, rows: n)
        b.q.assign(K.floats(n * c.qDim, &rng, scale: 2)); b.k.assign(K.floats(n * c.kvDim, &rng, scale: 2)); b.v.assign(K.floats(n * c.kvDim, &rng))
        let dz = K.floats(n * c.qDim, &rng)
        func run(_ rules: LRPRules) -> (q: Double, k: Double, v: Double, dq: [Float]) {
            var dq = zeros(n * c.qDim), dk = zeros(n * c.kvDim), dv = dk
            dz.cptr { d in dq.ptr { a in dk.ptr { bb in dv.ptr { cc in
                m.attentionBackward(b, dz: d, dq: a, dk: bb, dv: cc, rules: rules, scratch: BackwardScratch(maxWeight: 1))
            } } } }
            func dot(_ x: [Float], _ y: [Float]) -> Double { zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
            return (dot(Array(b.q), dq), dot(Array(b.k), dk), dot(Array(b.v), dv), dq)
        }
        // Σ z ⊙ δz with z recomputed by the forward kernel.
        let cache = KVCache(config: c, capacity: n)
        var z = zeros(n * c.qDim), scr: [Float] = []
        cache.k.ptr { $0.update(from: b.k.p, count: n * c.kvDim) }
        cache.v.ptr { $0.update(from: b.v.p, count: n * c.kvDim) }
        z.ptr { causalAttention(q: b.q.p, cache: cache, layer: 0, out: $0, tq: n, pos0: 0, config: c, scratch: &scr) }
        let relZ = zip(z, dz).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let lrp = run(.attnLRP), grad = run(.gradient)
        XCTAssertEqual(lrp.v, 0.5 * relZ, accuracy: 1e-5 * abs(relZ), "Σ R_V = ½ Σ R_z")
        XCTAssertEqual(grad.v, relZ, accuracy: 1e-5 * abs(relZ), "plain gradient: Σ v ⊙ δv = Σ z ⊙ δz (z is linear in V)")
        XCTAssertEqual(lrp.q, lrp.k, accuracy: 1e-5 * max(abs(lrp.q), 1e-4), "Σ R_Q = Σ R_K")
        XCTAssertNotEqual(lrp.q, 0, "the q/k relevance must be non-trivial")
        for i in lrp.dq.indices { XCTAssertEqual(lrp.dq[i], 0.25 * grad.dq[i], accuracy: 1e-6 * max(abs(grad.dq[i]), 1e-3)) }
    }

    // MARK: 3. Linear layer, LRP-ε (SparC³ Eq. 9)

    func testEpsilonRuleScaleSignHandling() {
        let eps: Float = 1e-6
        XCTAssertEqual(epsilonRuleScale(z: 0, epsilon: eps), 0, "z = 0: sign(0) = +1 → 0 / ε = 0, not NaN")
        XCTAssertEqual(epsilonRuleScale(z: -0.0, epsilon: eps), 0)
        XCTAssertFalse(epsilonRuleScale(z: -0.0, epsilon: eps).isNaN)
        XCTAssertEqual(epsilonRuleScale(z: eps, epsilon: eps), 0.5, accuracy: 1e-7, "z = ε → ε / 2ε")
        XCTAssertEqual(epsilonRuleScale(z: -eps, epsilon: eps), 0.5, accuracy: 1e-7, "z = −ε → −ε / −2ε (sign(z) = −1)")
        XCTAssertEqual(epsilonRuleScale(z: -3, epsilon: 1), 0.75, accuracy: 1e-7, "−3 / (−3 − 1)")
        XCTAssertEqual(epsilonRuleScale(z: 3, epsilon: 1), 0.75, accuracy: 1e-7, "3 / (3 + 1)")
        XCTAssertEqual(epsilonRuleScale(z: 2.5, epsilon: 0), 1)
        XCTAssertEqual(epsilonRuleScale(z: -2.5, epsilon: 0), 1)
    }

    /// Model.linearBackward with LRP-ε: x ⊙ δx, W ⊙ δW and the bias share equal the closed form
    /// R_{i←j} = z_ij / (z_j + ε·sign z_j) · R_j (R_j = z_j δy_j, z_ij = x_i W_ji) per element.
    func testLinearBackwardEpsilonRuleClosedForm() throws {
        let m = try K.randomLlama(seed: 3, layers: 1, bias: false)
        var rng = SeededRNG(seed: 33)
        let nOut = 6, nIn = 7, rows = 5
        var bias = K.floats(nOut, &rng, scale: 0.5)
        bias[2] = 0
        let lin = Linear(name: "test.weight", outDim: nOut, inDim: nIn, weight: K.floats(nOut * nIn, &rng, scale: 0.8), bias: bias)
        var x = K.floats(rows * nIn, &rng, scale: 1)
        for i in 0..<nIn { x[3 * nIn + i] = 0 }                       // row 3: x = 0 → z = b (z = 0 exactly at j = 2)
        let dy = K.floats(rows * nOut, &rng, scale: 1)
        var z = zeros(rows * nOut)
        x.cptr { xp in z.ptr { lin.forward(xp, $0, rows: rows) } }
        XCTAssertEqual(z[3 * nOut + 2], 0, "a z that is exactly 0 is covered")
        XCTAssertTrue(z.contains { $0 < 0 } && z.contains { $0 > 0 })
        for eps: Float in [0, 1e-6, 0.3, 2] {
            let sink = RecordingSink(), scratch = BackwardScratch(maxWeight: nOut * nIn)
            var dx = zeros(rows * nIn)
            x.cptr { xp in dy.cptr { dyp in z.cptr { zp in dx.ptr { dxp in
                m.linearBackward(lin, x: xp, dy: dyp, z: zp, dx: dxp, accumulate: false, rows: rows,
                                 rules: LRPRules(.attnLRP, epsilon: eps), sink: sink, scratch: scratch)
            } } } }
            XCTAssertEqual(sink.calls, ["test.weight"])
            // Closed form in Double.
            var Rx = [Double](repeating: 0, count: rows * nIn), RW = [Double](repeating: 0, count: nOut * nIn)
            var Rb = 0.0, Rout = 0.0, RoutNoBias = 0.0
            for t in 0..<rows { for j in 0..<nOut {
                let zj = Double(z[t * nOut + j]), Rj = zj * Double(dy[t * nOut + j])
                let den = zj + Double(eps) * (zj >= 0 ? 1 : -1)
                Rout += Rj
                guard den != 0 else { continue }                       // ε = 0 and z = 0: R_j = 0, nothing to share
                for i in 0..<nIn {
                    let r = Double(x[t * nIn + i]) * Double(lin.weight[j * nIn + i]) / den * Rj
                    Rx[t * nIn + i] += r; RW[j * nIn + i] += r
                }
                Rb += Double(bias[j]) / den * Rj
                RoutNoBias += Rj * (zj - Double(bias[j])) / den
            } }
            let tag = "ε = \(eps)"
            for i in Rx.indices {
                XCTAssertEqual(Double(x[i]) * Double(dx[i]), Rx[i], accuracy: 1e-5 * max(abs(Rx[i]), 0.1), "\(tag) R_x[\(i)]")
            }
            let rw = try XCTUnwrap(sink.relevance["test.weight"])
            for i in RW.indices { XCTAssertEqual(Double(rw[i]), RW[i], accuracy: 1e-5 * max(abs(RW[i]), 0.1), "\(tag) R_W[\(i)]") }
            XCTAssertEqual(scratch.biasRelevance, Rb, accuracy: 1e-5 * max(abs(Rb), 0.1), "\(tag) bias share")
            // Σ R_x = Σ R_W = Σ_j R_j (z_j − b_j)/(z_j + ε sign z_j); with the bias: = Σ_j R_j z_j/(z_j + ε sign z_j).
            let sumX = zip(x, dx).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertEqual(sumX, RoutNoBias, accuracy: 1e-5 * max(abs(RoutNoBias), 0.1), "\(tag) Σ R_x")
            XCTAssertEqual(sink.total["test.weight"]!, sumX, accuracy: 1e-5 * max(abs(sumX), 0.1), "\(tag) Σ R_W = Σ R_x")
            if eps == 0 {
                XCTAssertEqual(sumX + scratch.biasRelevance, Rout, accuracy: 1e-5 * max(abs(Rout), 0.1), "ε = 0 conserves: Σ R_x + Σ R_b = Σ R_out")
                // ε = 0 is the plain gradient: δx = δy W, δW = δyᵀ x.
                for t in 0..<rows { for i in 0..<nIn {
                    var want = 0.0
                    for j in 0..<nOut { want += Double(dy[t * nOut + j]) * Double(lin.weight[j * nIn + i]) }
                    XCTAssertEqual(Double(dx[t * nIn + i]), want, accuracy: 1e-5)
                } }
                let g = sink.grad["test.weight"]!
                for j in 0..<nOut { for i in 0..<nIn {
                    var want = 0.0
                    for t in 0..<rows { want += Double(dy[t * nOut + j]) * Double(x[t * nIn + i]) }
                    XCTAssertEqual(Double(g[j * nIn + i]), want, accuracy: 1e-5)
                } }
            } else {
                // With ε the layer is no longer conservative: Σ R_x + Σ R_b = Σ_j R_j z_j/(z_j + ε sign z_j) ≠ Σ_j R_j.
                let kept = RoutNoBias + Rb
                XCTAssertEqual(sumX + scratch.biasRelevance, kept, accuracy: 1e-5 * max(abs(kept), 0.1), "\(tag) Σ R_x + Σ R_b")
                if eps >= 0.3 { XCTAssertGreaterThan(abs(kept - Rout), 1e-3, "\(tag): ε absorbs a visible share") }
            }
        }
        // accumulate: true adds to δx.
        var dxAcc = [Float](repeating: 1, count: rows * nIn), dxPlain = zeros(rows * nIn)
        let scratch = BackwardScratch(maxWeight: nOut * nIn)
        x.cptr { xp in dy.cptr { dyp in z.cptr { zp in
            dxAcc.ptr { m.linearBackward(lin, x: xp, dy: dyp, z: zp, dx: $0, accumulate: true, rows: rows, rules: .attnLRP, sink: nil, scratch: scratch) }
            dxPlain.ptr { m.linearBackward(lin, x: xp, dy: dyp, z: zp, dx: $0, accumulate: false, rows: rows, rules: .attnLRP, sink: nil, scratch: scratch) }
        } } }
        for i in dxAcc.indices { XCTAssertEqual(dxAcc[i], dxPlain[i] + 1, accuracy: 1e-6) }
    }
}
