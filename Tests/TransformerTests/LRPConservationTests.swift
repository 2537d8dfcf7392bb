import Foundation
import XCTest
@testable import Transformer
import TestSupport

/// Conservation identities of the AttnLRP pass (Gradient×Input form), per layer and for the
/// whole model, plus the memory-budget recompute path and input validation.
///
/// Per linear layer z = Wx + b with the plain backward (ε = 0):
///   Σ R_W = Σ_{t,j,i} W_ji x_ti δz_tj = Σ x ⊙ δx   (the layer's input relevance, bias or not),
///   Σ R_out = Σ z ⊙ δz = Σ R_W + Σ b ⊙ Σ_t δz_t.
/// From this and the rules:
///   Llama, no biases: ΣR(gate) = ΣR(up) = ½ Σ post⊙δpost = ½ ΣR(down)   (identity rule + uniform ½ on gate⊙up);
///                     ΣR(v) = ½ ΣR(o)                                   (uniform rule on O = P·V);
///                     ΣR(q) = ΣR(k)                                     (uniform rule on S = QKᵀ; RoPE is a rotation).
///   Any model, biases or not: Σ neurons(l) = ΣR(down/fc2.W), Σ heads(l) = ΣR(o/out_proj.W).
///   OPT with biases: softmax is invariant to a shift of all keys, so Σ_t δk_t = 0 and the k bias
///   takes no relevance; b_o and b_fc2 do not enter ΣR(o.W), ΣR(fc2.W). With b_q = b_v = b_fc1 = 0
///   (b_k, b_o, b_fc2, LayerNorm β kept non-zero) the three identities above hold exactly
///   (ReLU: identity rule = gradient, so ΣR(fc1) = ΣR(fc2)).
///   With the q/v/fc1 biases present the bias shares Σ b ⊙ Σ_t δz_t enter, and the sink does not
///   see them individually (only their total, LRPResult.biasRelevance).
/// Whole model: with CP-LRP (softmax held constant) every step is conservative, so
///   Σ input relevance + Σ bias relevance = explained, exactly. With AttnLRP the softmax rule
///   (Prop. 3.1) is not conservative, so the ratio is only reported.
final class LRPConservationTests: XCTestCase {
    typealias K = LRPTestKit

    func tinyOPT() throws -> Model { try Model.build(from: ModelLoader.loadHFDirectory(try Fixtures.path("tiny-opt"))) }
    func tinyLlamaBias() throws -> Model { try Model.build(from: ModelLoader.loadHFDirectory(try Fixtures.path("tiny-llama-bias"))) }

    /// a ≈ b to `rel` of the larger magnitude, with a floor at `rel` · 1e-3 · scale (scale = Σ|R_W| of
    /// the layers involved: signed relevance cancels a lot, and Float32 sums carry ≈1e-7 · Σ|R| of noise).
    func assertSum(_ a: Double, _ b: Double, rel: Double = 1e-4, scale: Double, _ msg: String,
                   file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(K.close(a, b, rel: rel, floor: 1e-3 * scale), "\(msg): \(a) vs \(b) (diff \(a - b), scale \(scale))",
                      file: file, line: line)
    }

    func names(_ blk: Block) -> (q: String, k: String, v: String, o: String, gate: String?, up: String, down: String) {
        (blk.q.name, blk.k.name, blk.v.name, blk.o.name, blk.gate?.name, blk.up.name, blk.down.name)
    }

    // MARK: 6. Per-layer identities

    func testLlamaNoBiasPerLayerIdentities() throws {
        let m = try K.randomLlama(seed: 61, layers: 3, bias: false)
        var worst = 0.0
        defer { print(String(format: "[llama, no bias] per-layer identities: worst relative deviation %.2e", worst)) }
        for (k, tokens) in [K.distinctTokens(9, vocab: 64, seed: 1), [3, 3, 7, 3, 60, 7, 1, 1, 2, 33, 3, 9]].enumerated() {
            for seed in [SeedValue.logit, .one] {
                let sink = RecordingSink()
                _ = try m.lrp(tokens: tokens, explain: .nextToken(from: 0), seed: seed, rules: .attnLRP, sink: sink)
                XCTAssertEqual(sink.calls.sorted(), m.linears.map(\.name).sorted(), "each decoder linear reported once")
                for blk in m.blocks {
                    let n = names(blk), T = sink.total, A = sink.absTotal
                    let tag = "seq \(k) seed \(seed) layer \(blk.index)"
                    let g = T[n.gate!]!, u = T[n.up]!, dn = T[n.down]!
                    let mlpScale = A[n.gate!]! + A[n.up]! + A[n.down]!
                    XCTAssertGreaterThan(abs(dn), 5e-6 * mlpScale, "\(tag): non-trivial down relevance")
                    assertSum(g, u, scale: mlpScale, "\(tag) ΣR(gate) = ΣR(up)")
                    assertSum(dn, g + u, scale: mlpScale, "\(tag) ΣR(down) = ΣR(gate) + ΣR(up)")
                    let q = T[n.q]!, kk = T[n.k]!, v = T[n.v]!, o = T[n.o]!
                    let attScale = A[n.q]! + A[n.k]! + A[n.v]! + A[n.o]!
                    assertSum(v, 0.5 * o, scale: attScale, "\(tag) ΣR(v) = ½ ΣR(o)")
                    assertSum(q, kk, scale: attScale, "\(tag) ΣR(q) = ΣR(k)")
                    XCTAssertGreaterThan(abs(q), 5e-6 * attScale, "\(tag): q/k relevance is non-trivial")
                    for (a, b) in [(g, u), (dn, g + u), (v, 0.5 * o), (q, kk)] { worst = max(worst, abs(a - b) / max(abs(a), abs(b))) }
                }
            }
        }
    }

    /// Control: the same identities do NOT hold for the plain gradient (so the checks above can fail).
    func testLlamaPlainGradientBreaksTheIdentities() throws {
        let m = try K.randomLlama(seed: 61, layers: 3, bias: false)
        let sink = RecordingSink()
        _ = try m.lrp(tokens: K.distinctTokens(9, vocab: 64, seed: 1), explain: .nextToken(from: 0), rules: .gradient, sink: sink)
        var broken = 0
        for blk in m.blocks {
            let n = names(blk), T = sink.total
            if !K.close(T[n.gate!]!, T[n.up]!, rel: 1e-3) { broken += 1 }
            if !K.close(T[n.v]!, 0.5 * T[n.o]!, rel: 1e-3) { broken += 1 }
            // Plain gradient: V takes all of z's relevance (z is linear in V).
            XCTAssertTrue(K.close(T[n.v]!, T[n.o]!, rel: 1e-4, floor: 1e-2 * (sink.absTotal[n.v]! + sink.absTotal[n.o]!)),
                          "plain gradient layer \(blk.index): ΣR(v) = ΣR(o): \(T[n.v]!) vs \(T[n.o]!)")
        }
        XCTAssertGreaterThanOrEqual(broken, 2 * m.blocks.count - 1)
    }

    /// tiny-opt with b_q = b_v = b_fc1 = 0 in every layer (b_k, b_o, b_fc2 and every LayerNorm β kept):
    /// ΣR(q) = ΣR(k) (the k bias takes no relevance), ΣR(v) = ½ ΣR(out_proj), ΣR(fc1) = ΣR(fc2).
    func testOPTBiasInclusivePerLayerIdentities() throws {
        let m = try tinyOPT()
        for blk in m.blocks {
            XCTAssertTrue(blk.k.bias!.contains { $0 != 0 } && blk.o.bias!.contains { $0 != 0 } && blk.down.bias!.contains { $0 != 0 },
                          "fixture has non-zero b_k, b_o, b_fc2")
            blk.q.bias = blk.q.bias!.map { _ in 0 }
            blk.v.bias = blk.v.bias!.map { _ in 0 }
            blk.up.bias = blk.up.bias!.map { _ in 0 }
            // Make the remaining biases clearly non-zero (the fixture's are small).
            blk.k.bias = blk.k.bias!.enumerated().map { Float(($0.offset % 5) - 2) * 0.4 + $0.element }
        }
        let tokens = [2, 45, 17, 200, 9, 9, 31, 128, 77, 5, 250]
        for seed in [SeedValue.logit, .one] {
            let sink = RecordingSink()
            let r = try m.lrp(tokens: tokens, explain: .nextToken(from: 0), seed: seed, rules: .attnLRP, sink: sink)
            XCTAssertNotEqual(r.biasRelevance, 0, "biases (b_o, b_fc2, β) take relevance")
            for blk in m.blocks {
                let n = names(blk), T = sink.total, A = sink.absTotal
                let tag = "tiny-opt seed \(seed) layer \(blk.index)"
                let attScale = A[n.q]! + A[n.k]! + A[n.v]! + A[n.o]!
                assertSum(T[n.q]!, T[n.k]!, scale: attScale, "\(tag) ΣR(q) = ΣR(k) with b_k ≠ 0")
                XCTAssertGreaterThan(abs(T[n.q]!), 1e-4 * attScale, "\(tag): q/k relevance is non-trivial")
                assertSum(T[n.v]!, 0.5 * T[n.o]!, scale: attScale, "\(tag) ΣR(v) = ½ ΣR(out_proj) with b_o ≠ 0")
                let mlpScale = A[n.up]! + A[n.down]!
                assertSum(T[n.up]!, T[n.down]!, scale: mlpScale, "\(tag) ΣR(fc1) = ΣR(fc2) with b_fc2 ≠ 0")
            }
        }
        // Control: with b_fc1 restored, ΣR(fc1.W) + (fc1 bias share) = ΣR(fc2.W) and the share is not 0.
        let m2 = try tinyOPT()
        let sink = RecordingSink()
        _ = try m2.lrp(tokens: tokens, explain: .nextToken(from: 0), rules: .attnLRP, sink: sink)
        let differs = m2.blocks.contains { !K.close(sink.total[$0.up.name]!, sink.total[$0.down.name]!, rel: 1e-3) }
        XCTAssertTrue(differs, "with b_fc1 ≠ 0 the fc1 bias takes a share, so ΣR(fc1.W) ≠ ΣR(fc2.W)")
    }

    // MARK: 7. Neuron and head relevance

    func testNeuronAndHeadRelevanceSumToLayerRelevance() throws {
        let models: [(String, Model)] = [
            ("random llama, no bias", try K.randomLlama(seed: 71, layers: 2, bias: false)),
            ("tiny-llama-bias", try tinyLlamaBias()),
            ("tiny-opt", try tinyOPT()),
        ]
        for (name, m) in models {
            let tokens = Array(K.distinctTokens(10, vocab: m.config.vocabSize, seed: 7))
            // Every position explained (incl. the last, whose rows carry no gradient under .nextToken).
            let groups = (0..<tokens.count).map { [ExplainTerm(position: $0, token: tokens[($0 + 1) % tokens.count])] }
            for rules in [LRPRules.attnLRP, LRPRules(.attnLRP, epsilon: 1e-2), .cpLRP, .gradient] {
                let sink = RecordingSink()
                _ = try m.lrp(tokens: tokens, explain: .groups(groups), seed: .one, rules: rules, sink: sink)
                for blk in m.blocks {
                    let tag = "\(name) \(rules.variant) ε=\(rules.epsilon) layer \(blk.index)"
                    let neurons = try XCTUnwrap(sink.neurons[blk.index]), heads = try XCTUnwrap(sink.heads[blk.index])
                    XCTAssertEqual(neurons.count, m.config.dFF)
                    XCTAssertEqual(heads.count, m.config.nHeads)
                    assertSum(neurons.reduce(0, +), sink.total[blk.down.name]!, scale: sink.absTotal[blk.down.name]!,
                              "\(tag) Σ neurons = ΣR(down.W)")
                    assertSum(heads.reduce(0, +), sink.total[blk.o.name]!, scale: sink.absTotal[blk.o.name]!,
                              "\(tag) Σ heads = ΣR(o.W)")
                    // Per neuron: column j of R(down.W) sums to neuron j's relevance (Σ_t post_j δpost_j).
                    let rw = sink.relevance[blk.down.name]!, d = blk.down.outDim, f = blk.down.inDim
                    let colScale = rw.reduce(0.0) { $0 + abs(Double($1)) } / Double(f)
                    for j in 0..<f {
                        var col = 0.0
                        for i in 0..<d { col += Double(rw[i * f + j]) }
                        XCTAssertEqual(col, neurons[j], accuracy: 1e-4 * max(abs(neurons[j]), colScale), "\(tag) neuron \(j)")
                    }
                    // Per head: the o.W columns of head h sum to the head's relevance.
                    let ro = sink.relevance[blk.o.name]!, hd = m.config.headDim, qd = blk.o.inDim
                    let hScale = ro.reduce(0.0) { $0 + abs(Double($1)) } / Double(m.config.nHeads)
                    for h in 0..<m.config.nHeads {
                        var s = 0.0
                        for i in 0..<blk.o.outDim { for e in 0..<hd { s += Double(ro[i * qd + h * hd + e]) } }
                        XCTAssertEqual(s, heads[h], accuracy: 1e-4 * max(abs(heads[h]), hScale), "\(tag) head \(h)")
                    }
                }
            }
        }
    }

    // MARK: 8. Whole model

    func testExplainedEqualsForwardLogits() throws {
        for (name, m) in [("random llama", try K.randomLlama(seed: 81, layers: 2, bias: false)), ("tiny-opt", try tinyOPT()),
                          ("tiny-llama-bias", try tinyLlamaBias())] {
            let v = m.config.vocabSize
            let tokens = K.distinctTokens(8, vocab: v, seed: 8)
            let logits = m.forward(tokens)
            // nextToken, seed logit: explained = Σ_t logit[t, x_{t+1}].
            let r = try m.lrp(tokens: tokens, explain: .nextToken(from: 1), seed: .logit, sink: nil)
            XCTAssertEqual(r.terms.count, tokens.count - 2)
            var want = 0.0
            for (i, t) in r.terms.enumerated() {
                XCTAssertEqual(t.term.position, i + 1); XCTAssertEqual(t.term.token, tokens[i + 2])
                let l = logits[t.term.position * v + t.term.token]
                XCTAssertEqual(t.logit, l, accuracy: 1e-4 * max(1, abs(l)), "\(name) term \(i)")
                want += Double(l)
            }
            XCTAssertEqual(r.explained, want, accuracy: 1e-4 * max(1, abs(want)), "\(name): explained = Σ logits")
            // A logit difference (IOI style) at position 5.
            let a = 7, b = 11
            let diff = try m.lrp(tokens: tokens, explain: .groups([[ExplainTerm(position: 5, token: a), ExplainTerm(position: 5, token: b, coefficient: -1)]]),
                                 seed: .logit, sink: nil)
            let wantDiff = Double(logits[5 * v + a]) - Double(logits[5 * v + b])
            XCTAssertEqual(diff.explained, wantDiff, accuracy: 1e-4 * max(1, abs(wantDiff)), "\(name): logit difference")
            // lastMax explains the argmax of the last row.
            let lm = try m.lrp(tokens: tokens, explain: .lastMax, seed: .logit, sink: nil)
            let last = Array(logits[((tokens.count - 1) * v)..<(tokens.count * v)])
            XCTAssertEqual(lm.terms.map(\.term.token), [argmax(last)])
            XCTAssertEqual(lm.explained, Double(last.max()!), accuracy: 1e-4 * max(1, abs(Double(last.max()!))))
            // Seed one: explained = number of explained groups; print the conservation ratio.
            let one = try m.lrp(tokens: tokens, explain: .nextToken(from: 0), seed: .one, sink: nil)
            XCTAssertEqual(one.explained, Double(tokens.count - 1))
            print(String(format: "[%@] AttnLRP seed one: Σ input relevance / explained = %.4f (+ bias %.4f)",
                         name, one.inputTotal / one.explained, one.biasRelevance / one.explained))
        }
    }

    /// CP-LRP holds the softmax constant, which makes every remaining step conservative:
    /// Σ token (+ position) relevance + Σ bias/β relevance = explained, for seed logit and seed one.
    func testWholeModelConservationWithConstantSoftmax() throws {
        let models: [(String, Model)] = [
            ("random llama, no bias", try K.randomLlama(seed: 82, layers: 3, bias: false)),
            ("random llama, biases", try K.randomLlama(seed: 83, layers: 2, bias: true)),
            ("tiny-llama-bias", try tinyLlamaBias()),
            ("tiny-opt", try tinyOPT()),
            ("random opt", try K.randomOPT(seed: 84, layers: 3)),
        ]
        for (name, m) in models {
            let tokens = K.distinctTokens(12, vocab: m.config.vocabSize, seed: 9)
            for seed in [SeedValue.logit, .one] {
                let r = try m.lrp(tokens: tokens, explain: .nextToken(from: 0), seed: seed, rules: .cpLRP, sink: nil)
                let total = r.inputTotal + r.biasRelevance
                let absIn = r.tokenRelevance.reduce(0.0) { $0 + abs(Double($1)) } + abs(r.biasRelevance)
                XCTAssertTrue(K.close(total, r.explained, rel: 1e-4, floor: 1e-2 * absIn),
                              "\(name) seed \(seed): Σ input \(r.inputTotal) + bias \(r.biasRelevance) = \(total) vs explained \(r.explained)")
                if !m.config.attentionBias && !m.config.mlpBias && m.config.family == .llama {
                    XCTAssertEqual(r.biasRelevance, 0, "\(name): no biases, nothing absorbed")
                } else {
                    XCTAssertNotEqual(r.biasRelevance, 0, "\(name): biases absorb relevance")
                }
            }
            // AttnLRP (softmax rule not conservative): report the gap.
            let a = try m.lrp(tokens: tokens, explain: .nextToken(from: 0), seed: .one, rules: .attnLRP, sink: nil)
            print(String(format: "[%@] AttnLRP seed one: (Σ input + bias) / explained = %.4f; CP-LRP = 1",
                         name, (a.inputTotal + a.biasRelevance) / a.explained))
        }
    }

    // MARK: 9. Memory budget (recompute path)

    func testMemoryBudgetDoesNotChangeRelevance() throws {
        let cases: [(String, Model)] = [("random llama", try K.randomLlama(seed: 91, layers: 3, bias: true)),
                                        ("random opt", try K.randomOPT(seed: 92, layers: 3))]
        for (name, m) in cases {
            let tokens = K.distinctTokens(14, vocab: m.config.vocabSize, seed: 10)
            let oneBlock = BlockBuffers.bytes(m.config, rows: tokens.count)
            let groups = (0..<tokens.count).map { [ExplainTerm(position: $0, token: tokens[($0 + 3) % tokens.count])] }
            func run(_ budget: Int) throws -> (LRPResult, RecordingSink) {
                let sink = RecordingSink()
                let r = try m.lrp(tokens: tokens, explain: .groups(groups), seed: .logit, rules: .attnLRP, sink: sink, memoryBudget: budget)
                return (r, sink)
            }
            let (ref, refSink) = try run(1 << 30)
            var bitwise = true
            for budget in [0, oneBlock, 2 * oneBlock + 1] {
                let (r, sink) = try run(budget)
                let tag = "\(name) budget \(budget) (\(budget / oneBlock) of 3 blocks kept)"
                XCTAssertEqual(r.explained, ref.explained, "\(tag) explained")
                XCTAssertEqual(r.biasRelevance, ref.biasRelevance, accuracy: 1e-6 * max(abs(ref.biasRelevance), 1), tag)
                for t in tokens.indices {
                    XCTAssertEqual(r.tokenRelevance[t], ref.tokenRelevance[t], accuracy: 1e-6 * max(abs(ref.tokenRelevance[t]), 1e-3), "\(tag) token \(t)")
                }
                if let p = ref.positionRelevance {
                    for t in tokens.indices { XCTAssertEqual(r.positionRelevance![t], p[t], accuracy: 1e-6 * max(abs(p[t]), 1e-3)) }
                }
                for (lname, want) in refSink.relevance {
                    let got = try XCTUnwrap(sink.relevance[lname])
                    let maxAbs = want.map(abs).max()!
                    for i in want.indices {
                        XCTAssertEqual(got[i], want[i], accuracy: 1e-6 * maxAbs, "\(tag) \(lname)[\(i)]")
                        if got[i] != want[i] { bitwise = false }
                    }
                }
                for (l, nr) in refSink.neurons {
                    let got = try XCTUnwrap(sink.neurons[l]), scale = nr.map(abs).max()!
                    for j in nr.indices { XCTAssertEqual(got[j], nr[j], accuracy: 1e-6 * scale, "\(tag) neuron \(j) layer \(l)") }
                }
                if r.tokenRelevance != ref.tokenRelevance { bitwise = false }
            }
            print("[\(name)] memoryBudget 0 / 1 block / 2 blocks vs all kept: \(bitwise ? "bitwise identical" : "equal to 1e-6")")
        }
    }

    // MARK: 10. Bad input

    func testBadInputErrors() throws {
        let m = try K.randomLlama(seed: 101, layers: 1, bias: false)
        let v = m.config.vocabSize
        func expect<E: Error & Equatable>(_ want: E, _ body: () throws -> Void, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { err in
                XCTAssertEqual(err as? E, want, "got \(err)", line: line)
            }
        }
        expect(ModelError.invalidToken(id: v, vocabSize: v)) { _ = try m.lrp(tokens: [1, v, 2], explain: .nextToken(from: 0), sink: nil) }
        expect(ModelError.invalidToken(id: -1, vocabSize: v)) { _ = try m.lrp(tokens: [1, -1], explain: .lastMax, sink: nil) }
        expect(LRPError.tooFewTokens(1)) { _ = try m.lrp(tokens: [5], explain: .nextToken(from: 0), sink: nil) }
        expect(LRPError.positionOutOfRange(position: 3, length: 3)) {
            _ = try m.lrp(tokens: [1, 2, 3], explain: .groups([[ExplainTerm(position: 3, token: 4)]]), sink: nil)
        }
        expect(LRPError.positionOutOfRange(position: -1, length: 3)) {
            _ = try m.lrp(tokens: [1, 2, 3], explain: .groups([[ExplainTerm(position: -1, token: 4)]]), sink: nil)
        }
        expect(LRPError.positionOutOfRange(position: 2, length: 3)) { _ = try m.lrp(tokens: [1, 2, 3], explain: .nextToken(from: 2), sink: nil) }
        expect(ModelError.invalidToken(id: v + 5, vocabSize: v)) {
            _ = try m.lrp(tokens: [1, 2, 3], explain: .groups([[ExplainTerm(position: 1, token: v + 5)]]), sink: nil)
        }
        expect(ModelError.emptyPrompt) { _ = try m.lrp(tokens: [], explain: .lastMax, sink: nil) }
        expect(ModelError.promptTooLong(tokens: m.config.maxSeqLen + 1, limit: m.config.maxSeqLen, origin: m.contextOrigin)) {
            _ = try m.lrp(tokens: Array(repeating: 1, count: m.config.maxSeqLen + 1), explain: .lastMax, sink: nil)
        }
        expect(LRPError.nothingToExplain) { _ = try m.lrp(tokens: [1, 2, 3], explain: .groups([]), sink: nil) }
        // Seed one with a zero-valued quantity: nothing to normalise by.
        expect(LRPError.nothingToExplain) {
            _ = try m.lrp(tokens: [1, 2, 3], explain: .groups([[ExplainTerm(position: 1, token: 4, coefficient: 0)]]), seed: .one, sink: nil)
        }
        // A single token is fine for explicit groups and lastMax.
        let r = try m.lrp(tokens: [5], explain: .lastMax, sink: nil)
        XCTAssertEqual(r.tokenRelevance.count, 1)
    }
}

/// A huge but finite weight overflows the forward: the pass refuses before the backward, naming the
/// checkpoint, and the sink receives nothing (a resumable run's sums stay clean).
final class LRPOverflowTests: XCTestCase {
    final class CountingSink: RelevanceSink {
        var calls = 0
        func weightGradient(_ linear: Linear, _ dW: UnsafePointer<Float>) { calls += 1 }
        func neurons(layer: Int, _ relevance: [Float]) { calls += 1 }
        func heads(layer: Int, _ relevance: [Float]) { calls += 1 }
    }

    func testOverflowingForwardNamesTheCheckpointAndLeavesTheSinkUntouched() throws {
        let path = try Fixtures.path("tiny-llama-bias")
        let m = try ModelLoader.load(path).model
        XCTAssertEqual(m.sourcePath, path)
        m.finalNorm.weight = m.finalNorm.weight.map { _ in 3e38 }      // finite, but the logits overflow
        let sink = CountingSink()
        XCTAssertThrowsError(try m.lrp(tokens: [1, 2, 3], explain: .nextToken(from: 1), sink: sink)) { e in
            guard case .nonFiniteLogit(let v, let p, _, let model)? = e as? LRPError else { return XCTFail("\(e)") }
            XCTAssertFalse(v.isFinite)
            XCTAssertEqual(p, 1)
            XCTAssertEqual(model, path)
            XCTAssertTrue(e.localizedDescription.contains("check the weights of --model \(path)"), e.localizedDescription)
        }
        XCTAssertEqual(sink.calls, 0)
    }
}
