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
        XCTAssertEqual(absCurve.edgeCounts[5], 6, "5 % of 110 edges, rounded")
        let top10 = try ev.metrics([sg.inGraph])[0]
        XCTAssertEqual(inGraph[0], top10, accuracy: 1e-12, "the extra circuit is measured in the same sweep")
        XCTAssertEqual(curve.full, clean, accuracy: 1e-3)
        // Hand-made areas: f = x on [0, 1] → ∫f = ½, ∫|1 − f| = ½.
        XCTAssertEqual(FaithfulnessCurve.trapezoid([0, 0.5, 1], [0, 0.5, 1]), 0.5, accuracy: 1e-12)
        let c = FaithfulnessCurve(absolute: false, fractions: [0, 1], edgeCounts: [0, 4], metrics: [1, 3], full: 3, empty: 1)
        XCTAssertEqual(c.area, 0.5, accuracy: 1e-12)
        XCTAssertEqual(c.areaFromOne, 0.5, accuracy: 1e-12)
        for iv in [GraphIntervention.zero, .mean] {
            let z = try GraphEvaluator(sf, items, intervention: iv).metrics([nil, [Bool](repeating: true, count: size)])
            XCTAssertEqual(z[0], z[1], "\(iv): every edge kept = the full model")
        }
    }

    func testPackedPassesEqualOnePromptPerPass() throws {
        // The clean/corrupted forwards run several prompts per pass; one prompt per pass is the unpacked path.
        // Same products in other GEMM shapes: equal to rounding.
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let ea = EdgeAttribution(SplitForward(model))
        var items = Self.items(vocab: model.config.vocabSize)
        items.append(items[0])
        for method in GraphMethod.allCases {
            let packed = try ea.scores(items, method: method, steps: 2)
            let single = try ea.scores(items, method: method, steps: 2, maxRows: 1)
            let scale = packed.map { abs($0) }.max() ?? 0
            XCTAssertGreaterThan(scale, 1e-3, "\(method): scores are not all zero")
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(packed, single), 1e-5 * scale, "\(method)")
            let tiny = try ea.scores(items, method: method, steps: 2, passBudget: 1)   // budget below one row: one prompt per pass
            XCTAssertEqual(tiny, single, "\(method): the pass budget bounds the rows")
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
