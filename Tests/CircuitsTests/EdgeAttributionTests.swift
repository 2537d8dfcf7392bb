import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Edge scores against independent references
//
// - EAP is a first-order Taylor term: against central finite differences of the
//   split forward with the edge moved by ±ε·(corrupted − clean) (exact derivative).
// - EAP-IG with one step is EAP (the path's only point is the clean input).
// - LRP conserves: x_final · δ_logits (AttnLRP, norm held constant) = the logit difference.
// - Against exact single-edge patching on the tiny model (every edge): correlation floors.
// - The evaluator: full = clean metric, ∅ = corrupted metric, f(100 %) = 1, hand-made areas.

final class EdgeAttributionTests: XCTestCase {
    static func items(vocab: Int) -> [TaskItem] {
        let loc = SourceLocation(file: "inline", line: 1)
        return [
            TaskItem(location: loc, kind: .custom, template: nil, tokens: [3, 17, 40, 9, 81, 5], corruptedTokens: [3, 17, 41, 9, 90, 5],
                     answerIds: [12], distractorIds: [200]),
            TaskItem(location: loc, kind: .custom, template: nil, tokens: [7, 7, 120, 33], corruptedTokens: [8, 7, 121, 33],
                     answerIds: [50], distractorIds: [51]),
        ]
    }

    /// m(clean) − m(edge e patched with clean + a·(corrupted − clean)) for one prompt.
    func effect(_ sf: SplitForward, _ it: TaskItem, edge e: Int, scale a: Float) -> Double {
        let segs = sf.segments([it.tokens])
        let emb = sf.model.embedRows(it.tokens, segments: segs), embC = sf.model.embedRows(it.corruptedTokens!, segments: segs)
        let clean = sf.run(embeddings: emb, segments: segs, record: true)
        let cor = sf.run(embeddings: embC, segments: segs, record: true).outputs!
        var src = clean.outputs!
        for k in 0..<src.count { src[k] += a * (cor[k] - src[k]) }
        var keep = [Bool](repeating: true, count: sf.graph.nBackward * sf.graph.nForward)
        keep[e] = false
        let patched = sf.run(embeddings: emb, segments: segs, keep: keep, source: src)
        func ld(_ final: [Float]) -> Double {
            let z = sf.lastLogits(final, segments: segs)
            return Double(z[it.answerIds[0]]) - Double(z[it.distractorIds[0]])
        }
        return ld(clean.final) - ld(patched.final)
    }

    func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count), ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices { sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) * (a[i] - ma); sbb += (b[i] - mb) * (b[i] - mb) }
        return sab / (saa * sbb).squareRoot()
    }

    func testEAPIsTheDerivativeOfPatchingEachEdge() throws {
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let sf = SplitForward(model), ea = EdgeAttribution(sf)
        let it = Self.items(vocab: model.config.vocabSize)[0]
        let s = try ea.scores([it], method: .eap)
        let edges = sf.graph.edgeIndices
        var checked = 0
        for e in stride(from: 0, to: edges.count, by: max(1, edges.count / 60)).map({ edges[$0] }) {
            let eps: Float = 1e-2
            let fd = (effect(sf, it, edge: e, scale: eps) - effect(sf, it, edge: e, scale: -eps)) / (2 * Double(eps))
            XCTAssertEqual(Double(s[e]), fd, accuracy: 2e-3 + 2e-2 * abs(fd),
                           sf.graph.edgeName(e % sf.graph.nForward, e / sf.graph.nForward))
            checked += 1
        }
        XCTAssertGreaterThan(checked, 50)
        XCTAssertGreaterThan(s.map { abs($0) }.max()!, 1e-2, "scores are not all zero")
    }

    /// tiny-opt made linear in its node outputs: q and k zero (every attention pattern uniform, whatever the input),
    /// fc1 biased so that ReLU never clips and fc2's bias cancelling the constant it then passes, and the residual
    /// stream scaled to ~1e-7 so that every LayerNorm's variance is ≪ its eps (1e-5): 1/σ is then the constant
    /// 1/√eps to ~1e-8 (norm scales frozen), with γ scaled up to keep the node outputs near 0.1. The
    /// unembedding is untied and left as it was.
    func linearOPT() throws -> Model {
        let m = try AttributionFixtures.tiny("tiny-opt")
        // Weights of tiny-opt are ~0.2: embeddings and every sublayer output into the stream ~2e-7 (variance ~1e-13 ≪ eps),
        // LayerNorm outputs ~0.1 after the gain.
        let s: Float = 1e-6, gain: Float = 1e3
        m.lmHead = m.embed
        m.embed = m.embed.map { $0 * s }
        m.positions = m.positions?.map { $0 * s }
        for b in m.blocks {
            b.attnNorm.weight = b.attnNorm.weight.map { $0 * gain }
            b.mlpNorm.weight = b.mlpNorm.weight.map { $0 * gain }
            for lin in [b.q, b.k] { lin.weight = lin.weight.map { _ in 0 }; lin.bias = lin.bias?.map { _ in 0 } }
            b.o.weight = b.o.weight.map { $0 * s }; b.o.bias = b.o.bias?.map { $0 * s }
            b.up.bias = b.up.bias!.map { $0 + 4 }                            // pre-activations stay > 0 (checked below)
            b.down.weight = b.down.weight.map { $0 * s }
            let (w, b1, out, inn) = (b.down.weight, b.up.bias!, b.down.outDim, b.down.inDim)
            b.down.bias = (0..<out).map { i in -(0..<inn).reduce(Float(0)) { $0 + w[i * inn + $1] * b1[$1] } }
        }
        m.finalNorm.weight = m.finalNorm.weight.map { $0 * gain }
        return m
    }

    func testLinearModelEAPEqualsExactPatchingAndLogitEdgesSumToTheEffect() throws {
        // The linear check: when m is affine in every node output, EAP is exact — each edge's score is the
        // exact effect of patching that edge alone, and the edges into the logits carry m(clean) − m(corrupted).
        let model = try linearOPT()
        let sf = SplitForward(model), g = sf.graph
        let it = Self.items(vocab: model.config.vocabSize)[0]
        // ReLU never clips: every fc1 pre-activation of the clean and corrupted runs is positive.
        for toks in [it.tokens, it.corruptedTokens!] {
            let bb = model.blocks.indices.map { _ in BlockBuffers(config: model.config, rows: toks.count) }
            var x = model.embedRows(toks, segments: sf.segments([toks]))
            for l in model.blocks.indices { model.runBlock(l, &x, segments: sf.segments([toks]), buffers: bb[l]) }
            for b in bb { XCTAssertGreaterThan((0..<(toks.count * model.config.dFF)).map { b.pre.p[$0] }.min()!, 0.5) }
        }
        let s = try EdgeAttribution(sf).scores([it], method: .eap)
        let edges = g.edgeIndices
        let exact = edges.map { effect(sf, it, edge: $0, scale: 1) }
        let scale = exact.map(abs).max()!
        XCTAssertGreaterThan(scale, 1e-4, "patching moves the metric")
        for (k, e) in edges.enumerated() {
            XCTAssertEqual(Double(s[e]), exact[k], accuracy: 1e-4 * scale, g.edgeName(e % g.nForward, e / g.nForward))
        }
        // The edges into the logits sum to m(clean) − m(corrupted).
        let segs = sf.segments([it.tokens])
        func ld(_ toks: [Int]) -> Double {
            let z = sf.lastLogits(sf.run(embeddings: model.embedRows(toks, segments: segs), segments: segs).final, segments: segs)
            return Double(z[it.answerIds[0]]) - Double(z[it.distractorIds[0]])
        }
        let into = (0..<g.nForward).reduce(0.0) { $0 + Double(s[g.logitsInput * g.nForward + $1]) }
        let total = ld(it.tokens) - ld(it.corruptedTokens!)
        XCTAssertGreaterThan(abs(total), 1e-4)
        XCTAssertEqual(into, total, accuracy: 1e-4 * abs(total))
        // The same model without the linearising changes is not exact (the check can fail).
        let plain = try AttributionFixtures.tiny("tiny-opt"), psf = SplitForward(plain)
        let ps = try EdgeAttribution(psf).scores([it], method: .eap)
        let pe = edges.map { effect(psf, it, edge: $0, scale: 1) }
        let worst = zip(edges, pe).map { abs(Double(ps[$0.0]) - $0.1) }.max()!
        XCTAssertGreaterThan(worst, 1e-2 * pe.map(abs).max()!, "tiny-opt as trained is nonlinear")
    }

    func testEAPIGWithOneStepIsEAP() throws {
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let ea = EdgeAttribution(SplitForward(model))
        let items = Self.items(vocab: model.config.vocabSize)
        let eap = try ea.scores(items, method: .eap), ig1 = try ea.scores(items, method: .eapIG, steps: 1)
        XCTAssertLessThan(PruneTestKit.maxAbsDiff(eap, ig1), 1e-5)
        let ig5 = try ea.scores(items, method: .eapIG, steps: 5)
        XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(eap, ig5), 1e-4, "more steps move along the path")
    }

    func testLRPLogitsInputConservesTheLogitDifference() throws {
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let sf = SplitForward(model), g = sf.graph
        let it = Self.items(vocab: model.config.vocabSize)[0]
        let segs = sf.segments([it.tokens])
        let clean = sf.run(embeddings: sf.model.embedRows(it.tokens, segments: segs), segments: segs)
        let z = sf.lastLogits(clean.final, segments: segs)
        let ld = Double(z[12]) - Double(z[200])
        let sink = NodeInputGradients(graph: g, rows: it.tokens.count, dModel: model.config.dModel)
        let terms = [ExplainTerm(position: it.tokens.count - 1, token: 12, coefficient: 1),
                     ExplainTerm(position: it.tokens.count - 1, token: 200, coefficient: -1)]
        _ = try sf.model.lrp(tokens: it.tokens, explain: .groups([terms]), seed: .logit, rules: .attnLRP, sink: sink)
        let nd = clean.final.count
        var r = 0.0
        for k in 0..<nd { r += Double(clean.final[k]) * Double(sink.g[g.logitsInput * nd + k]) }
        XCTAssertEqual(r, ld, accuracy: 1e-3 * max(1, abs(ld)))
        XCTAssertGreaterThan(abs(ld), 1e-2)
    }

    func testScoresTrackExactSingleEdgePatching() throws {
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let sf = SplitForward(model), ea = EdgeAttribution(sf)
        let it = Self.items(vocab: model.config.vocabSize)[0]
        let edges = sf.graph.edgeIndices
        let exact = edges.map { effect(sf, it, edge: $0, scale: 1) }
        var r: [String: Double] = [:]
        for m in GraphMethod.allCases {
            let s = try ea.scores([it], method: m)
            r[m.rawValue] = pearson(edges.map { Double(s[$0]) }, exact)
        }
        print("Pearson r with exact single-edge patching on tiny-llama-bias (\(edges.count) edges):", r.sorted { $0.key < $1.key })
        XCTAssertGreaterThan(r["eap"]!, 0.75)   // measured 0.83
        XCTAssertGreaterThan(r["eap-ig"]!, 0.7)  // measured 0.80
        XCTAssertGreaterThan(r["lrp"]!, 0.75)   // measured 0.89
    }

    func testEvaluatorEndsAndAreas() throws {
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let sf = SplitForward(model)
        let items = Self.items(vocab: model.config.vocabSize)
        let ev = try GraphEvaluator(sf, items, intervention: .patch, maxRows: 5)   // one prompt per pass
        let size = sf.graph.nBackward * sf.graph.nForward
        let m = try ev.metrics([nil, [Bool](repeating: false, count: size), [Bool](repeating: true, count: size)])
        let e = TaskEvaluator.evaluate(model, items)
        let clean = e.clean.map { $0.logitDiff! }.reduce(0, +) / 2, corr = e.corrupted!.map { $0.logitDiff! }.reduce(0, +) / 2
        XCTAssertEqual(m[0], clean, accuracy: 1e-3)
        XCTAssertEqual(m[1], corr, accuracy: 1e-3)
        XCTAssertEqual(m[2], m[0], "every edge kept = the full model")
        var sg = ScoredGraph(graph: sf.graph, scores: try EdgeAttribution(sf).scores(items, method: .eap))
        sg.applyTopN(10, absolute: true)
        let (curve, absCurve, inGraph) = try FaithfulnessCurve.measure(sg, evaluator: ev, extra: [sg.inGraph])
        XCTAssertEqual(curve.faithfulness.last!, 1, accuracy: 1e-9, "f(100 %) = 1")
        XCTAssertEqual(absCurve.faithfulness.last!, 1, accuracy: 1e-9)
        XCTAssertEqual(absCurve.edgeCounts[5], 5, "5 % of 110 edges: int(5.5) as MIB")
        XCTAssertEqual(FaithfulnessCurve.edgeCount(0.1, total: 32_491), 3249, "int(0.1 * 32491) = int(3249.1000000000004)")
        let top10 = try ev.metrics([sg.inGraph])[0]
        XCTAssertEqual(inGraph[0], top10, accuracy: 1e-12, "the extra circuit is measured in the same sweep")
        XCTAssertEqual(curve.full, clean, accuracy: 1e-3)
        // Hand-made areas: f = x on [0, 1] → ∫f = ½, ∫|1 − f| = ½.
        XCTAssertEqual(FaithfulnessCurve.trapezoid([0, 0.5, 1], [0, 0.5, 1]), 0.5, accuracy: 1e-12)
        let c = FaithfulnessCurve(absolute: false, fractions: [0, 1], edgeCounts: [0, 4], keptCounts: [0, 4], metrics: [1, 3],
                                  full: 3, empty: 1)
        XCTAssertEqual(c.area, 0.5, accuracy: 1e-12)
        XCTAssertEqual(c.areaFromOne, 0.5, accuracy: 1e-12)
        for iv in [GraphIntervention.zero, .mean] {
            let z = try GraphEvaluator(sf, items, intervention: iv).metrics([nil, [Bool](repeating: true, count: size)])
            XCTAssertEqual(z[0], z[1], "\(iv): every edge kept = the full model")
        }
    }

    func testPruningChangesNoPatchedMetricButZeroAblation() throws {
        // A node whose inputs are all patched outputs its corrupted value, so EAP-IG's pruning is invisible under
        // patching; under zero ablation a pruned node's output f(0) is replaced by 0, which is not.
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let sf = SplitForward(model), g = sf.graph
        let items = Self.items(vocab: model.config.vocabSize)
        var sg = ScoredGraph(graph: g, scores: try EdgeAttribution(sf).scores(items, method: .eap))
        sg.applyTopN(12, absolute: true, prune: false)
        let pruned = ScoredGraph.pruned(sg.inGraph, g).edges
        XCTAssertLessThan(pruned.filter { $0 }.count, 12, "the top 12 by |score| hold dangling edges")
        let patch = try GraphEvaluator(sf, items, intervention: .patch)
        let p = try patch.metrics([sg.inGraph], prune: false)[0], q = try patch.metrics([pruned], prune: false)[0]
        XCTAssertEqual(p, q, accuracy: 1e-4 * max(1, abs(p)))
        XCTAssertEqual(try patch.metrics([sg.inGraph])[0], q, accuracy: 1e-12, "metrics prunes by default")
        let zero = try GraphEvaluator(sf, items, intervention: .zero)
        let z = try zero.metrics([sg.inGraph], prune: false)[0], zp = try zero.metrics([pruned], prune: false)[0]
        XCTAssertGreaterThan(abs(z - zp), 1e-3, "zero ablation: pruning removes f(0) of unfed nodes")
    }

    func testPackedPassesEqualOnePromptPerPass() throws {
        // The clean/corrupted forwards run several prompts per pass; one prompt per pass is the unpacked path.
        // Same products in other GEMM shapes: equal to rounding.
        // The backward packs prompts (eap, lrp) or path points (eap-ig) into one LRP pass: each sequence's causal
        // attention, RoPE (Llama) and learned positions (OPT) stay its own, so δ is that of one pass per sequence.
        for fixture in ["tiny-llama-bias", "tiny-opt"] {
            let model = try AttributionFixtures.tiny(fixture)
            let ea = EdgeAttribution(SplitForward(model))
            var items = Self.items(vocab: model.config.vocabSize)
            items.append(items[0])
            for method in GraphMethod.allCases {
                let tag = "\(fixture) \(method)"
                let packed = try ea.scores(items, method: method, steps: 3)
                let single = try ea.scores(items, method: method, steps: 3, maxRows: 1, backwardRows: 1)
                let scale = packed.map { abs($0) }.max() ?? 0
                XCTAssertGreaterThan(scale, 1e-3, "\(tag): scores are not all zero")
                XCTAssertLessThan(PruneTestKit.maxAbsDiff(packed, single), 1e-5 * scale, tag)
                let split = try ea.scores(items, method: method, steps: 3, backwardRows: 10)   // prompts 6 + 4 | 6 rows; path points 1+1+1 | 1+2
                XCTAssertLessThan(PruneTestKit.maxAbsDiff(split, single), 1e-5 * scale, tag)
                let tiny = try ea.scores(items, method: method, steps: 3, passBudget: 1, backwardBudget: 1)   // below one row: one prompt per pass
                XCTAssertEqual(tiny, single, "\(tag): the budgets bound the rows")
            }
        }
    }

    func testScoreProductsCoverEveryEdgeWithHalfTheMatrix() {
        // 12 × 12: layer l's 37 inputs against mlp(l) = 13 + 13 l columns, logits against all 157:
        // 37 · 13 · (12 + 66) + 157 = 37,675 products for 32,491 edges, of 445 · 157 = 69,865 entries.
        let g = ComponentGraph(GraphShape(nLayers: 12, nHeads: 12, dModel: 768))
        XCTAssertEqual(EdgeAttribution.scoreProducts(g), 37_675)
        for b in 0..<g.nBackward { XCTAssertLessThanOrEqual(g.upstream(b), g.upstream(b == g.logitsInput ? b : g.mlpInput(b / 37))) }
    }
}
