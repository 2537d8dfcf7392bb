import Foundation
import XCTest
@testable import Circuits
import TestSupport
@testable import Transformer

/// `correct --aggregation signed|abs-per-sample|abs-per-token` against a hand computation that shares nothing with
/// the attribution engine but the prompt preparation: with `--method gradient` a neuron's relevance at position t is
/// a_{t,i} · ∂y/∂a_{t,i}, measured here by central finite differences of y with that one activation scaled by
/// (1 ± ε) at that one position (the forward is split at t through the KV cache, and only for row t is the neuron's
/// down_proj column scaled). The per-position values r_{s,t,i} are then aggregated by hand:
///   signed = mean_s Σ_t r,  abs-per-sample = mean_s |Σ_t r|,  abs-per-token = mean_s Σ_t |r|,
/// and the k lowest R̄_general − R̄_undesired of one layer must be the neurons `correct` removed.
final class CorrectionAggregationTests: XCTestCase {
    let layer = 1, k = 5, maxNew = 5
    let eps: Float = 1e-2

    /// y = Σ_{p ≥ from} logit[p, x_{p+1}] with neuron i of `layer` scaled by (1 + e) at position t only.
    func explained(_ m: Model, _ tokens: [Int], from: Int, neuron i: Int, position t: Int, scale e: Float,
                   prefix: (cache: KVCache, logits: [Float])) -> Double {
        let v = m.config.vocabSize, n = tokens.count
        let cache = prefix.cache
        cache.length = t
        let down = m.blocks[layer].down
        var logits = prefix.logits                                             // [t, vocab]
        func run(_ lo: Int, _ hi: Int) {
            let h = m.hidden(tokens: Array(tokens[lo..<hi]), segments: [Segment(rowStart: 0, count: hi - lo, pos0: lo, cache: cache)])
            logits += h.withUnsafeBufferPointer { m.logits($0.baseAddress!, rows: hi - lo) }
        }
        let column = (0..<down.outDim).map { down.weight[$0 * down.inDim + i] }
        for r in 0..<down.outDim { down.weight[r * down.inDim + i] = column[r] * (1 + e) }
        run(t, t + 1)
        for r in 0..<down.outDim { down.weight[r * down.inDim + i] = column[r] }
        if t + 1 < n { run(t + 1, n) }
        var y = 0.0
        for p in from..<(n - 1) { y += Double(logits[p * v + tokens[p + 1]]) }
        return y
    }

    /// r[s][t][i] for every sample of a set.
    func perPosition(_ m: Model, _ samples: [AttributionSample]) throws -> [[[Double]]] {
        let f = m.config.dFF
        return try samples.map { s in
            guard case .nextToken(let from) = s.explain else { throw XCTSkip("unexpected target \(s.explain)") }
            let n = s.tokens.count
            return (0..<n).map { t in
                // The unperturbed prefix [0, t) once per position (its cache rows are reused by every neuron).
                let cache = KVCache(config: m.config, capacity: n)
                var pre: [Float] = []
                if t > 0 {
                    let h = m.hidden(tokens: Array(s.tokens[0..<t]), segments: [Segment(rowStart: 0, count: t, pos0: 0, cache: cache)])
                    pre = h.withUnsafeBufferPointer { m.logits($0.baseAddress!, rows: t) }
                }
                let a = (0..<f).map { i -> Double in
                    let up = explained(m, s.tokens, from: from, neuron: i, position: t, scale: eps, prefix: (cache, pre))
                    let dn = explained(m, s.tokens, from: from, neuron: i, position: t, scale: -eps, prefix: (cache, pre))
                    return (up - dn) / (2 * Double(eps))                        // d y / d(scale) = a · ∂y/∂a
                }
                return a
            }
        }
    }

    func aggregate(_ r: [[[Double]]], _ agg: RelevanceAccumulator.Aggregation) -> [Double] {
        let f = r[0][0].count
        return (0..<f).map { i in
            r.map { s -> Double in
                let col = s.map { $0[i] }
                switch agg {
                case .signed: return col.reduce(0, +)
                case .absPerSample: return abs(col.reduce(0, +))
                case .absPerToken: return col.reduce(0) { $0 + abs($1) }
                }
            }.reduce(0, +) / Double(r.count)
        }
    }

    func testEachAggregationRanksLikeTheHandComputation() throws {
        // tiny-llama-bias (2 layers, 48 neurons, committed fixture): small enough for finite differences of every
        // neuron at every position in a debug build. No tokenizer: prompts are token ids.
        let path = try Fixtures.path("tiny-llama-bias")
        let dir = try Scratch.dir(self)
        let g = dir.appendingPathComponent("general.jsonl").path, u = dir.appendingPathComponent("undesired.jsonl").path
        func ids(_ n: Int, seed: UInt64) -> String {
            "{\"ids\": \(AttributionFixtures.tokens(n, vocab: 250, seed: seed).map { $0 + 3 })}"   // no BOS/EOS ids
        }
        try [ids(9, seed: 1), ids(7, seed: 2), ids(8, seed: 3)].joined(separator: "\n").write(toFile: g, atomically: true, encoding: .utf8)
        try [ids(5, seed: 4), ids(6, seed: 5)].joined(separator: "\n").write(toFile: u, atomically: true, encoding: .utf8)
        // Hand side: its own model copy (weights are edited and restored), no decode layout.
        let lm = try ModelLoader.load(path, needTokenizer: false)
        let m = lm.model, tok = lm.tokenizer
        m.releaseDecodeLayout()
        let gs = try PromptSamples.prepare(try PromptSet.load(g), model: m, tokenizer: tok, target: .nextToken)
        let us = try PromptSamples.prepare(try PromptSet.load(u), model: m, tokenizer: tok, target: .continuation, maxNewTokens: maxNew)
        m.releaseDecodeLayout()
        let rg = try perPosition(m, gs), ru = try perPosition(m, us)
        var separated = 0
        for agg in [RelevanceAccumulator.Aggregation.signed, .absPerSample, .absPerToken] {
            let out = dir.appendingPathComponent("out-\(agg.rawValue)").path
            let r = try CorrectionPipeline.run(CorrectionOptions(
                model: path, general: g, undesired: u, method: .gradient, granularity: .neurons, layers: "^model\\.layers\\.\(layer)\\.",
                amounts: [.count(k)], aggregation: agg, maxNewTokens: maxNew, out: out))
            let hg = aggregate(rg, agg), hu = aggregate(ru, agg)
            let diff = zip(hg, hu).map { $0 - $1 }
            let order = diff.indices.sorted { (diff[$0], $0) < (diff[$1], $1) }
            let removed = r.record.sweep[0].removed
            XCTAssertTrue(removed.allSatisfy { $0.layer == layer }, "--layers keeps the ranking in layer \(layer)")
            // Each removed neuron's two parts equal the hand means (finite differences: ε² truncation, F32 noise).
            for e in removed {
                XCTAssertEqual(e.general!, hg[e.index], accuracy: 2e-3 * max(1, abs(hg[e.index])), "\(agg.rawValue) general n\(e.index)")
                XCTAssertEqual(e.undesired!, hu[e.index], accuracy: 2e-3 * max(1, abs(hu[e.index])), "\(agg.rawValue) undesired n\(e.index)")
            }
            // The removed set is the hand k lowest whenever the hand ranking separates rank k from k+1.
            let gap = diff[order[k]] - diff[order[k - 1]]
            if gap > 1e-2 {
                separated += 1
                XCTAssertEqual(Set(removed.map(\.index)), Set(order.prefix(k)), "\(agg.rawValue): hand ranking \(order.prefix(k + 2).map { ($0, diff[$0]) })")
            }
            if agg != .signed { XCTAssertTrue(hg.allSatisfy { $0 >= 0 } && hu.allSatisfy { $0 >= 0 }, "|·| means are non-negative") }
            let rec = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/correction.json"))) as? [String: Any]
            XCTAssertEqual(rec?["aggregation"] as? String, agg.rawValue, "correction.json records the aggregation")
        }
        XCTAssertGreaterThanOrEqual(separated, 2, "the hand ranking must decide the removed set for most aggregations")
        // --normalize per-set: each set's hand means divided by their own Σ|·| over the ranked neurons (layer 1 only,
        // as --layers keeps), then the difference; the record carries the two totals.
        var normSeparated = 0
        for agg in [RelevanceAccumulator.Aggregation.signed, .absPerToken] {
            let out = dir.appendingPathComponent("out-norm-\(agg.rawValue)").path
            let r = try CorrectionPipeline.run(CorrectionOptions(
                model: path, general: g, undesired: u, method: .gradient, granularity: .neurons, layers: "^model\\.layers\\.\(layer)\\.",
                amounts: [.count(k)], aggregation: agg, normalize: .perSet, maxNewTokens: maxNew, out: out))
            let hg = aggregate(rg, agg), hu = aggregate(ru, agg)
            let sg = hg.reduce(0) { $0 + abs($1) }, su = hu.reduce(0) { $0 + abs($1) }
            let n = try XCTUnwrap(r.record.normalization)
            XCTAssertEqual(n.mode, "per-set")
            XCTAssertEqual(n.components, hg.count)
            XCTAssertEqual(n.generalTotal, sg, accuracy: 2e-3 * sg, "\(agg.rawValue) Σ|R̄_general|")
            XCTAssertEqual(n.undesiredTotal, su, accuracy: 2e-3 * su, "\(agg.rawValue) Σ|R̄_undesired|")
            let diff = zip(hg, hu).map { $0 / sg - $1 / su }
            let order = diff.indices.sorted { (diff[$0], $0) < (diff[$1], $1) }
            let removed = r.record.sweep[0].removed
            for e in removed {
                XCTAssertEqual(e.general!, hg[e.index] / sg, accuracy: 2e-3 * max(1e-2, abs(hg[e.index] / sg)), "normalised general n\(e.index)")
                XCTAssertEqual(e.undesired!, hu[e.index] / su, accuracy: 2e-3 * max(1e-2, abs(hu[e.index] / su)), "normalised undesired n\(e.index)")
            }
            // The removed set is a k-lowest set of the hand ranking up to the finite-difference error: nothing kept
            // lies clearly below anything removed (the normalised differences are close together, so exact set
            // equality would test finite-difference noise).
            let spread = diff.max()! - diff.min()!, tol = 2e-3 * spread
            let removedSet = Set(removed.map(\.index))
            XCTAssertEqual(removedSet.count, k)
            let worstRemoved = removedSet.map { diff[$0] }.max()!
            let bestKept = diff.indices.filter { !removedSet.contains($0) }.map { diff[$0] }.min()!
            XCTAssertLessThanOrEqual(worstRemoved, bestKept + tol, "\(agg.rawValue) per-set: hand ranking \(order.prefix(k + 2).map { ($0, diff[$0]) })")
            if diff[order[k]] - diff[order[k - 1]] > tol {
                normSeparated += 1
                XCTAssertEqual(removedSet, Set(order.prefix(k)))
            }
        }
        XCTAssertGreaterThanOrEqual(normSeparated, 1, "the normalised hand ranking must decide the removed set at least once")
        // The aggregations are different computations here (else the test could not tell them apart): signed ranks
        // other neurons than |·|, and per-token |·| exceeds per-sample |·| (positions cancel; triangle inequality).
        func lowest(_ agg: RelevanceAccumulator.Aggregation) -> [Int] {
            let d = zip(aggregate(rg, agg), aggregate(ru, agg)).map { $0 - $1 }
            return Array(d.indices.sorted { (d[$0], $0) < (d[$1], $1) }.prefix(k))
        }
        XCTAssertNotEqual(Set(lowest(.signed)), Set(lowest(.absPerToken)))
        let perSample = aggregate(rg, .absPerSample).reduce(0, +), perToken = aggregate(rg, .absPerToken).reduce(0, +)
        XCTAssertGreaterThan(perToken, 1.2 * perSample)
    }
}
