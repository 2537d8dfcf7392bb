import Foundation
import XCTest
@testable import Transformer

/// The rules as wired into whole Llama/OPT blocks (ε on every linear, the SiLU identity rule, RMSNorm and
/// LayerNorm with constant normalisers) and the plain-gradient variant against central finite differences;
/// the closed forms of the single rules are in LRPRuleTests.
final class LRPBlockRuleTests: XCTestCase {
    typealias K = LRPTestKit

    /// LRP-ε inside whole blocks: every linear layer must be rescaled with its *own* output z
    /// (for Llama q/k: the projection output before RoPE). A reference assembled from the
    /// separately verified pieces (linearBackward, attentionBackward, norm backwards, identity
    /// rule) with each z recomputed independently by Linear.forward must give the same per-weight
    /// relevance, δ(block input) and bias relevance. ε is large (0.5) so a wrong z shows.
    func testEpsilonRuleWiringInLlamaBlock() throws {
        try checkBlockWiring(K.randomLlama(seed: 8, layers: 1, bias: true), epsilon: 0.5)
        try checkBlockWiring(K.randomLlama(seed: 8, layers: 1, bias: true), epsilon: 0)
    }

    func testEpsilonRuleWiringInOPTBlock() throws {
        try checkBlockWiring(K.randomOPT(seed: 9, layers: 1), epsilon: 0.5)
        try checkBlockWiring(K.randomOPT(seed: 9, layers: 1), epsilon: 0)
    }

    func checkBlockWiring(_ m: Model, epsilon: Float) throws {
        let c = m.config, n = 6, d = c.dModel, blk = m.blocks[0], llama = c.family == .llama
        let rules = LRPRules(.attnLRP, epsilon: epsilon)
        var rng = SeededRNG(seed: 99)
        let tokens = K.distinctTokens(n, vocab: c.vocabSize, seed: 98)
        let seg = [Segment(rowStart: 0, count: n, pos0: 0, cache: KVCache(config: c, capacity: n))]
        var x = m.embedRows(tokens, segments: seg)
        let b = BlockBuffers(config: c, rows: n)
        m.runBlock(0, &x, segments: seg, buffers: b)
        let dOut = K.floats(n * d, &rng)
        let maxW = max(c.dFF * d, c.qDim * d)
        // Implementation.
        let sink = RecordingSink(), scratch = BackwardScratch(maxWeight: maxW)
        var dIn = dOut
        dIn.ptr { c.definition.blockBackward(m, blk, b, dx: $0, GradBuffers(config: c, rows: n), rules: rules, sink: sink, scratch: scratch) }
        // Reference.
        let ref = RecordingSink(), rs = BackwardScratch(maxWeight: maxW)
        func fwd(_ lin: Linear, _ inp: [Float]) -> [Float] {
            var y = zeros(n * lin.outDim)
            inp.cptr { i in y.ptr { lin.forward(i, $0, rows: n) } }
            return y
        }
        func lb(_ lin: Linear, _ inp: [Float], _ dy: [Float], _ z: [Float]) -> [Float] {
            var dx = zeros(n * lin.inDim)
            inp.cptr { xp in dy.cptr { dyp in z.cptr { zp in dx.ptr {
                m.linearBackward(lin, x: xp, dy: dyp, z: zp, dx: $0, accumulate: false, rows: n, rules: rules, sink: ref, scratch: rs)
            } } } }
            return dx
        }
        func add(_ a: [Float], _ b: [Float]) -> [Float] { zip(a, b).map { $0 + $1 } }
        var betaRel = 0.0
        func normBack(_ norm: Norm, _ dy: [Float], input: [Float]) -> [Float] {
            var y = zeros(n * d), inv = zeros(n), dx = zeros(n * d)
            input.cptr { ip in y.ptr { yp in inv.ptr { iv in
                if llama { rmsNorm(ip, norm.weight, yp, inv: iv, rows: n, d: d, eps: c.normEps) }
                else { layerNorm(ip, norm.weight, norm.bias!, yp, inv: iv, rows: n, d: d, eps: c.normEps) }
            } } }
            if let beta = norm.bias { for t in 0..<n { for j in 0..<d { betaRel += Double(beta[j]) * Double(dy[t * d + j]) } } }
            dy.cptr { dyp in input.cptr { ip in inv.cptr { iv in dx.ptr {
                if llama { rmsNormBackward(dy: dyp, x: ip, inv: iv, g: norm.weight, dx: $0, rows: n, d: d, constantNormaliser: true, accumulate: false) }
                else { layerNormBackward(dy: dyp, x: ip, inv: iv, g: norm.weight, dx: $0, rows: n, d: d, constantNormaliser: true, accumulate: false) }
            } } } }
            return dx
        }
        // MLP half.
        let h2 = Array(b.normed2)
        let dn2: [Float]
        if llama {
            let gateZ = fwd(blk.gate!, h2), upZ = fwd(blk.up, h2)
            let act = gateZ.map { $0 / (1 + Foundation.exp(-$0)) }          // silu, independent of the SIMD kernel
            let post = zip(act, upZ).map { $0 * $1 }
            let dPost = lb(blk.down, post, dOut, fwd(blk.down, post))
            var dGate = zeros(n * c.dFF), dUp = dGate
            for i in dGate.indices {
                dGate[i] = identityRuleGradient(dy: 0.5 * upZ[i] * dPost[i], x: gateZ[i], y: act[i], slopeAtZero: 0.5)
                dUp[i] = 0.5 * act[i] * dPost[i]
            }
            dn2 = add(lb(blk.gate!, h2, dGate, gateZ), lb(blk.up, h2, dUp, upZ))
        } else {
            let fc1Z = fwd(blk.up, h2)
            let post = fc1Z.map { max($0, 0) }
            let dPost = lb(blk.down, post, dOut, fwd(blk.down, post))
            let dPre = (0..<dPost.count).map { fc1Z[$0] > 0 ? dPost[$0] : 0 }
            dn2 = lb(blk.up, h2, dPre, fc1Z)
        }
        let dMid = add(dOut, normBack(blk.mlpNorm, dn2, input: Array(b.mid)))
        // Attention half.
        let z = Array(b.z)
        let dz = lb(blk.o, z, dMid, fwd(blk.o, z))
        var dq = zeros(n * c.qDim), dk = zeros(n * c.kvDim), dv = dk
        dz.cptr { dzp in dq.ptr { a in dk.ptr { bb in dv.ptr { cc in
            m.attentionBackward(b, dz: dzp, dq: a, dk: bb, dv: cc, rules: rules, scratch: BackwardScratch(maxWeight: 1))
        } } } }
        if llama {
            dq.ptr { m.rope!.apply($0, rows: n, nHeads: c.nHeads, pos0: 0, inverse: true) }
            dk.ptr { m.rope!.apply($0, rows: n, nHeads: c.nKVHeads, pos0: 0, inverse: true) }
        }
        let h1 = Array(b.normed1)
        let qZ = fwd(blk.q, h1), kZ = fwd(blk.k, h1), vZ = fwd(blk.v, h1)
        if llama {   // the stored q is post-RoPE: it differs from the projection output
            XCTAssertGreaterThan(zip(qZ, Array(b.q)).map { abs($0 - $1) }.max()!, 1e-2)
        }
        let dn1 = add(add(lb(blk.q, h1, dq, qZ), lb(blk.k, h1, dk, kZ)), lb(blk.v, h1, dv, vZ))
        let want = add(dMid, normBack(blk.attnNorm, dn1, input: Array(b.resid)))
        // Compare.
        let tag = "\(c.family) ε = \(epsilon)"
        XCTAssertEqual(Set(sink.relevance.keys), Set(ref.relevance.keys))
        for (name, r) in ref.relevance {
            let got = try XCTUnwrap(sink.relevance[name]), scale = r.map(abs).max()!
            var worst: Float = 0
            for i in r.indices { worst = max(worst, abs(got[i] - r[i])) }
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(tag) \(name): max |ΔR_W| \(worst) (max |R_W| \(scale))")
        }
        let scaleIn = want.map(abs).max()!
        for i in want.indices { XCTAssertEqual(dIn[i], want[i], accuracy: 1e-4 * scaleIn, "\(tag) δ(block input)[\(i)]") }
        let wantBias = rs.biasRelevance + betaRel
        XCTAssertEqual(scratch.biasRelevance, wantBias, accuracy: 1e-4 * max(abs(wantBias), 1e-2), "\(tag) bias relevance")
    }

    // MARK: 4. Identity rule, RMSNorm and LayerNorm rules

    func testIdentityRuleForSiLU() {
        var rng = SeededRNG(seed: 44)
        var x = K.floats(64, &rng, scale: 6)
        x[0] = 0; x[1] = 1e-13; x[2] = -1e-13; x[3] = 1e-6; x[4] = -20
        var y = x
        let ones = [Float](repeating: 1, count: x.count)
        x.cptr { xp in ones.cptr { op in y.ptr { swiGLU(xp, op, $0, x.count) } } }   // silu(x) ⊙ 1
        for i in x.indices { XCTAssertEqual(Double(y[i]), Double(x[i]) / (1 + exp(-Double(x[i]))), accuracy: 1e-6 * (1 + abs(Double(x[i])))) }
        let dy = K.floats(64, &rng, scale: 2)
        for i in x.indices {
            let dx = identityRuleGradient(dy: dy[i], x: x[i], y: y[i], slopeAtZero: 0.5)
            XCTAssertFalse(dx.isNaN || dx.isInfinite, "x = \(x[i])")
            // R_in = x ⊙ δx equals R_out = y ⊙ δy per element.
            XCTAssertEqual(Double(x[i]) * Double(dx), Double(y[i]) * Double(dy[i]),
                           accuracy: 1e-6 * max(abs(Double(y[i]) * Double(dy[i])), 1e-6), "x = \(x[i])")
        }
        // The x = 0 guard uses SiLU'(0) = ½ (the limit of silu(x)/x).
        XCTAssertEqual(identityRuleGradient(dy: 3, x: 0, y: 0, slopeAtZero: 0.5), 1.5)
        XCTAssertEqual(identityRuleGradient(dy: 3, x: 1e-13, y: 5e-14, slopeAtZero: 0.5), 1.5)
        XCTAssertEqual(identityRuleGradient(dy: 2, x: 1e-3, y: 0.0005, slopeAtZero: 0.5), 1, accuracy: 1e-6)
        // The vectorised SwiGLU backward (up = 1): the identity rule gives R_gate = R_silu
        // per element, including x = 0; the plain gradient equals SiLU' in Double.
        let n = x.count                                             // 64: eight SIMD blocks, no tail
        for count in [n, n - 3] {                                   // and with a scalar tail
            var dUp = dy, dGate = zeros(n)
            x.cptr { xp in ones.cptr { op in dUp.ptr { dp in dGate.ptr {
                swiGLUBackward(gate: xp, up: op, dPost: dp, dGate: $0, count: count, gateFactor: 1, upFactor: 1, plainGradient: false)
            } } } }
            for i in 0..<count {
                XCTAssertEqual(Double(x[i]) * Double(dGate[i]), Double(y[i]) * Double(dy[i]),
                               accuracy: 1e-6 * max(abs(Double(y[i]) * Double(dy[i])), 1e-6), "x = \(x[i])")
                XCTAssertEqual(dUp[i], y[i] * dy[i], accuracy: 1e-5 * (1 + abs(y[i] * dy[i])), "δup = silu(x)·δpost")
            }
            XCTAssertEqual(dGate[0], 0.5 * dy[0], accuracy: 1e-7, "slope ½ at x = 0")
            var dPlain = dy, dGradient = zeros(n)
            x.cptr { xp in ones.cptr { op in dPlain.ptr { dp in dGradient.ptr {
                swiGLUBackward(gate: xp, up: op, dPost: dp, dGate: $0, count: count, gateFactor: 1, upFactor: 1, plainGradient: true)
            } } } }
            for i in 0..<count {
                let sg = 1 / (1 + Foundation.exp(-Double(x[i])))
                XCTAssertEqual(Double(dGradient[i]), Double(dy[i]) * sg * (1 + Double(x[i]) * (1 - sg)),
                               accuracy: 1e-5 * (1 + abs(Double(dy[i]))), "silu'(\(x[i]))")
            }
        }
    }

    func testRMSNormRule() {
        var rng = SeededRNG(seed: 55)
        let rows = 4, d = 12, eps: Float = 1e-6
        let x = K.floats(rows * d, &rng, scale: 2, offset: 0.3)
        let g = K.floats(d, &rng, scale: 0.5, offset: 1)
        let dy = K.floats(rows * d, &rng, scale: 1)
        var y = zeros(rows * d), inv = zeros(rows)
        x.cptr { xp in y.ptr { yp in inv.ptr { rmsNorm(xp, g, yp, inv: $0, rows: rows, d: d, eps: eps) } } }
        for constant in [true, false] {
            var dx = zeros(rows * d)
            dy.cptr { dyp in x.cptr { xp in inv.cptr { ip in dx.ptr {
                rmsNormBackward(dy: dyp, x: xp, inv: ip, g: g, dx: $0, rows: rows, d: d, constantNormaliser: constant, accumulate: false)
            } } } }
            for r in 0..<rows {
                let o = r * d
                if constant {
                    // Constant normaliser: δx = δy · s · g, and Σ R_in = Σ R_out per row (no bias).
                    var rin = 0.0, rout = 0.0
                    for j in 0..<d {
                        XCTAssertEqual(dx[o + j], dy[o + j] * inv[r] * g[j], accuracy: 1e-6)
                        rin += Double(x[o + j]) * Double(dx[o + j]); rout += Double(y[o + j]) * Double(dy[o + j])
                    }
                    XCTAssertEqual(rin, rout, accuracy: 1e-5 * max(abs(rout), 0.01), "RMSNorm row \(r): Σ R_in = Σ R_out")
                } else {
                    // Plain gradient = central finite differences of Σ δy ⊙ RMSNorm(x) in Double.
                    func f(_ xr: [Double]) -> Double {
                        let ms = xr.reduce(0) { $0 + $1 * $1 } / Double(d)
                        let s = 1 / (ms + Double(eps)).squareRoot()
                        return (0..<d).reduce(0.0) { $0 + Double(dy[o + $1]) * xr[$1] * s * Double(g[$1]) }
                    }
                    let xr = (0..<d).map { Double(x[o + $0]) }
                    for j in 0..<d {
                        var p = xr, mm = xr
                        p[j] += 1e-6; mm[j] -= 1e-6
                        XCTAssertEqual(Double(dx[o + j]), (f(p) - f(mm)) / 2e-6, accuracy: 1e-4, "RMSNorm plain grad row \(r) j \(j)")
                    }
                }
            }
        }
        // accumulate adds.
        var acc = [Float](repeating: 2, count: rows * d)
        dy.cptr { dyp in x.cptr { xp in inv.cptr { ip in acc.ptr {
            rmsNormBackward(dy: dyp, x: xp, inv: ip, g: g, dx: $0, rows: rows, d: d, constantNormaliser: true, accumulate: true)
        } } } }
        for i in acc.indices { XCTAssertEqual(acc[i], 2 + dy[i] * inv[i / d] * g[i % d], accuracy: 1e-6) }
    }

    /// LayerNorm with constant σ: δx = s(γδy − mean(γδy)). Because the mean subtraction stays
    /// differentiable, Σ_j x_j δx_j = s Σ_j (x_j − μ) γ_j δy_j = Σ_j (y_j − β_j) δy_j exactly, i.e.
    /// Σ R_in + Σ R_β = Σ R_out per row (β ⊙ δy is β's share). Holding μ constant as well would
    /// be off by μ·s·Σ γδy, which this data makes non-zero.
    func testLayerNormRule() {
        var rng = SeededRNG(seed: 66)
        let rows = 4, d = 12, eps: Float = 1e-5
        let x = K.floats(rows * d, &rng, scale: 2, offset: 0.8)
        let g = K.floats(d, &rng, scale: 0.5, offset: 1), beta = K.floats(d, &rng, scale: 0.5)
        let dy = K.floats(rows * d, &rng, scale: 1)
        var y = zeros(rows * d), inv = zeros(rows)
        x.cptr { xp in y.ptr { yp in inv.ptr { layerNorm(xp, g, beta, yp, inv: $0, rows: rows, d: d, eps: eps) } } }
        for constant in [true, false] {
            var dx = zeros(rows * d)
            dy.cptr { dyp in x.cptr { xp in inv.cptr { ip in dx.ptr {
                layerNormBackward(dy: dyp, x: xp, inv: ip, g: g, dx: $0, rows: rows, d: d, constantNormaliser: constant, accumulate: false)
            } } } }
            for r in 0..<rows {
                let o = r * d
                let xr = (0..<d).map { Double(x[o + $0]) }, mu = xr.reduce(0, +) / Double(d)
                if constant {
                    var rin = 0.0, rout = 0.0, rbeta = 0.0, sumDx = 0.0, gdy = 0.0
                    for j in 0..<d {
                        rin += xr[j] * Double(dx[o + j]); rout += Double(y[o + j]) * Double(dy[o + j])
                        rbeta += Double(beta[j]) * Double(dy[o + j]); sumDx += Double(dx[o + j])
                        gdy += Double(g[j]) * Double(dy[o + j])
                    }
                    XCTAssertEqual(rin + rbeta, rout, accuracy: 1e-5 * max(abs(rout), 0.01), "LayerNorm row \(r): Σ R_in + Σ R_β = Σ R_out")
                    XCTAssertEqual(sumDx, 0, accuracy: 1e-5, "Σ δx = 0 (R_in is invariant to shifting x)")
                    let meanHeldTerm = mu * Double(inv[r]) * gdy
                    XCTAssertGreaterThan(abs(meanHeldTerm), 1e-3 * max(abs(rout), 0.01), "data discriminates the mean term")
                } else {
                    func f(_ v: [Double]) -> Double {
                        let m = v.reduce(0, +) / Double(d)
                        let va = v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(d)
                        let s = 1 / (va + Double(eps)).squareRoot()
                        return (0..<d).reduce(0.0) { $0 + Double(dy[o + $1]) * ((v[$1] - m) * s * Double(g[$1]) + Double(beta[$1])) }
                    }
                    for j in 0..<d {
                        var p = xr, mm = xr
                        p[j] += 1e-6; mm[j] -= 1e-6
                        XCTAssertEqual(Double(dx[o + j]), (f(p) - f(mm)) / 2e-6, accuracy: 1e-4, "LayerNorm plain grad row \(r) j \(j)")
                    }
                }
            }
        }
    }

    // MARK: 5. Plain gradient = finite differences (whole model)

    func testPlainGradientMatchesFiniteDifferencesLlama() throws {
        let m = try K.randomLlama(seed: 5, layers: 2, bias: true)
        try checkFiniteDifferences(m, seed: 505, name: "llama")
    }

    func testPlainGradientMatchesFiniteDifferencesOPT() throws {
        let m = try K.randomOPT(seed: 6, layers: 2)
        try checkFiniteDifferences(m, seed: 606, name: "opt")
    }

    func checkFiniteDifferences(_ m: Model, seed: UInt64, name: String) throws {
        let n = 7, c = m.config
        let tokens = K.distinctTokens(n, vocab: c.vocabSize, seed: seed)
        let sink = RecordingSink()
        let r = try m.lrp(tokens: tokens, explain: .nextToken(from: 0), seed: .logit, rules: .gradient, sink: sink)
        let terms = r.terms.map(\.term)
        let F0 = K.explainedFromForward(m, tokens, terms)
        XCTAssertEqual(r.explained, F0, accuracy: 1e-4 * max(abs(F0), 1), "\(name): explained = Σ forward logits")
        let h: Float = 1e-3
        func F() -> Double { K.explainedFromForward(m, tokens, terms) }
        var rng = SeededRNG(seed: seed)
        var checked = 0, worst = 0.0, report: [String] = []
        func check(_ what: String, analytic: Double, fd: Double) {
            let err = abs(fd - analytic) / max(abs(analytic), 1e-12)
            worst = max(worst, err); checked += 1
            report.append(String(format: "%@ analytic %.6f fd %.6f", what, analytic, fd))
            XCTAssertLessThanOrEqual(abs(fd - analytic), 2e-2 * abs(analytic) + 1e-3, "\(name) \(what): analytic \(analytic) fd \(fd)")
        }
        // Two weights per decoder linear (q, k, v, o, gate, up, down / fc1, fc2) in every layer, taken
        // at random among the entries with the larger gradients (FD in Float32 needs |g| ≫ 1e-3).
        for lin in m.linears {
            let g = try XCTUnwrap(sink.grad[lin.name], "no gradient for \(lin.name)")
            let order = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }
            let top = Array(order.prefix(max(4, g.count / 4)))
            for _ in 0..<2 {
                let idx = top[Int(rng.next() % UInt64(top.count))]
                let w0 = lin.weight[idx]
                lin.weight[idx] = w0 + h; let fp = F()
                lin.weight[idx] = w0 - h; let fm = F()
                lin.weight[idx] = w0
                check("\(lin.name)[\(idx)]", analytic: Double(g[idx]), fd: (fp - fm) / (2 * Double(h)))
            }
        }
        XCTAssertEqual(F(), F0, "weights restored")
        // Input embedding: d F / dα of scaling the embedding row of the token at position 0 equals
        // tokenRelevance[0] = e ⊙ δe (the token occurs once and is not an explained target, so the
        // tied OPT unembedding does not move).
        let d = c.dModel, tok = tokens[0]
        XCTAssertFalse(terms.contains { $0.token == tok })
        let e0 = Array(m.embed[(tok * d)..<(tok * d + d)])
        func scaleEmbed(_ a: Float) { for j in 0..<d { m.embed[tok * d + j] = e0[j] * (1 + a) } }
        scaleEmbed(h); let ep = F(); scaleEmbed(-h); let em = F(); scaleEmbed(0)
        check("embedding row of token \(tok) (position 0)", analytic: Double(r.tokenRelevance[0]), fd: (ep - em) / (2 * Double(h)))
        if c.family == .llama {
            // Untied: any position works; take the last one too.
            let t = n - 1, tk = tokens[t]
            let e1 = Array(m.embed[(tk * d)..<(tk * d + d)])
            func scaleE(_ a: Float) { for j in 0..<d { m.embed[tk * d + j] = e1[j] * (1 + a) } }
            scaleE(h); let p = F(); scaleE(-h); let q = F(); scaleE(0)
            check("embedding row of token \(tk) (position \(t))", analytic: Double(r.tokenRelevance[t]), fd: (p - q) / (2 * Double(h)))
            XCTAssertNil(r.positionRelevance)
        } else {
            let posRel = try XCTUnwrap(r.positionRelevance)
            for t in [0, 3] {
                let row = (t + ModelConfig.optPositionOffset) * d
                let p0 = Array(m.positions![row..<(row + d)])
                func scaleP(_ a: Float) { for j in 0..<d { m.positions![row + j] = p0[j] * (1 + a) } }
                scaleP(h); let p = F(); scaleP(-h); let q = F(); scaleP(0)
                check("position row \(t)", analytic: Double(posRel[t]), fd: (p - q) / (2 * Double(h)))
            }
        }
        // Biases (and OPT LayerNorm β): d F / dα of scaling all of them equals LRPResult.biasRelevance.
        let biasLinears = m.linears.filter { $0.bias != nil }
        XCTAssertFalse(biasLinears.isEmpty, "\(name): the test model has biases")
        let saved = biasLinears.map { $0.bias! }
        let savedNorms = m.blocks.map { ($0.attnNorm.bias, $0.mlpNorm.bias) }, savedFinal = m.finalNorm.bias
        func scaleBiases(_ a: Float) {
            for (l, b) in zip(biasLinears, saved) { l.bias = b.map { $0 * (1 + a) } }
            for (blk, nb) in zip(m.blocks, savedNorms) {
                blk.attnNorm.bias = nb.0.map { $0.map { $0 * (1 + a) } }; blk.mlpNorm.bias = nb.1.map { $0.map { $0 * (1 + a) } }
            }
            m.finalNorm.bias = savedFinal.map { $0.map { $0 * (1 + a) } }
        }
        scaleBiases(h); let bp = F(); scaleBiases(-h); let bm = F(); scaleBiases(0)
        check("all biases (+β)", analytic: r.biasRelevance, fd: (bp - bm) / (2 * Double(h)))
        XCTAssertEqual(F(), F0, "parameters restored")
        print("[\(name)] plain gradient vs central FD (h = \(h)): \(checked) checks, worst relative error \(String(format: "%.2e", worst))")
        XCTAssertGreaterThanOrEqual(checked, 20)
    }
}
