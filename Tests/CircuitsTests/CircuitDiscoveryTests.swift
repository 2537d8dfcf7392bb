import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Discovery on the tiny fixtures: real runs, real values
//
// References are independent of the code under test: the top-k set is
// recomputed by sorting the scores here, f at a size is re-measured with the
// ablator directly, and the files are read back from disk.

final class CircuitDiscoveryTests: XCTestCase {
    /// IOI-like items with random ids: every prompt has an answer and a distractor (so the metric is the logit difference).
    func items(_ model: Model, seed: UInt64, count: Int = 6) -> [TaskItem] {
        let v = model.config.vocabSize
        var rng = SeededRNG(seed: seed)
        return (0..<count).map { i in
            let n = 4 + i % 4
            let clean = (0..<n).map { _ in Int(rng.next() % UInt64(v)) }
            var corrupted = clean.map { ($0 + 1 + Int(rng.next() % UInt64(v - 1))) % v }
            corrupted[n - 1] = clean[n - 1]
            let a = Int(rng.next() % UInt64(v / 2)), d = v / 2 + Int(rng.next() % UInt64(v / 2))
            return TaskItem(location: SourceLocation(file: "t.jsonl", line: i + 1), kind: .custom, template: nil, tokens: clean,
                            corruptedTokens: corrupted, answerIds: [a], distractorIds: [d])
        }
    }

    func run(_ model: Model, _ s: CircuitSettings, ref: [TaskItem], held: [TaskItem]?) throws -> CircuitResult {
        let scores = try CircuitDiscovery.scores(model: model, items: ref, settings: s,
                                                 attribution: AttributionFixtures.settings(.lrp, samples: ref.count))
        let c = try CircuitCandidates(model: model, granularity: s.granularity, scheme: s.scheme, rank: s.rank, layers: s.layers, scores: scores)
        return try CircuitDiscovery.search(model: model, candidates: c, reference: ref, heldout: held, settings: s)
    }

    /// f(none) = 0 and f(all) = 1 from real runs, the crossing is a real crossing (f(k) ≥ t > f(k − 1), re-measured).
    func testCurveEndsAndBisectionCrossing() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            for (g, a) in [(Granularity.neurons, AblationKind.zero), (.heads, .mean), (.neurons, .patch), (.weights, .zero)] {
                let model = try AttributionFixtures.tiny(name)
                var s = CircuitSettings()
                s.granularity = g; s.ablation = a; s.threshold = 0.8; s.gridPoints = 12
                let ref = items(model, seed: 1), held = items(model, seed: 2)
                let r = try run(model, s, ref: ref, held: held)
                let tag = "\(name) \(g) \(a)"
                XCTAssertEqual(r.curve.first?.kept, 0, tag)
                XCTAssertEqual(r.curve.first?.reference.f, 0, tag)
                XCTAssertEqual(r.curve.first?.heldout?.f, 0, tag)
                XCTAssertEqual(r.curve.last?.kept, r.candidates.total, tag)
                XCTAssertEqual(r.curve.last?.reference.f, 1, tag)
                XCTAssertEqual(r.curve.last?.heldout?.f, 1, tag)
                XCTAssertNotEqual(r.reference.baseline.full, r.reference.baseline.empty, tag)
                XCTAssertGreaterThanOrEqual(r.curve.count, min(12, r.candidates.total + 1), tag)   // 8 heads: every size 0…8
                XCTAssertEqual(Set(r.curve.map(\.nominal)).count, r.curve.count, tag)
                // Re-measure around the crossing with the ablator itself.
                let ab = Ablator(model: model)
                let means = a == .mean ? MeanActivations.measure(model, ref.map(\.tokens)) : nil
                let patch = a == .patch ? try PatchSource.capture(model, ref) : nil
                let k = r.crossing.nominal
                let at = try Faithfulness.evaluate(ab, ref, mask: r.candidates.mask(k), baseline: r.reference.baseline, means: means, patch: patch)
                XCTAssertEqual(at.f, r.crossing.reference.f, accuracy: 1e-12, tag)
                XCTAssertGreaterThanOrEqual(at.f, s.threshold, tag)
                if g != .heads {
                    // Neurons and weights bisect to 1 % by default: never below the exact search's crossing, at most 1 % of k
                    // above it, in no more steps. The exact search (tolerance 0) is then checked below like the rest.
                    XCTAssertEqual(s.effectiveBisectionTolerance, 0.01, tag)
                    var exact = s; exact.bisectionTolerance = 0
                    let e = try run(model, exact, ref: ref, held: held)
                    XCTAssertGreaterThanOrEqual(k, e.crossing.nominal, tag)
                    XCTAssertLessThanOrEqual(Double(k - e.crossing.nominal), 0.01 * Double(k), tag)
                    XCTAssertLessThanOrEqual(r.bisectionEvaluations, e.bisectionEvaluations, tag)
                    let ek = e.crossing.nominal
                    if ek > 0 {
                        let below = try Faithfulness.evaluate(ab, ref, mask: e.candidates.mask(ek - 1), baseline: e.reference.baseline,
                                                              means: means, patch: patch)
                        let lowEnd = e.curve.last { $0.reference.f < s.threshold && $0.nominal < ek }?.nominal ?? 0
                        if ek - 1 >= lowEnd { XCTAssertLessThan(below.f, s.threshold, tag + " exact") }
                    }
                } else if k > 0 {
                    let below = try Faithfulness.evaluate(ab, ref, mask: r.candidates.mask(k - 1), baseline: r.reference.baseline,
                                                          means: means, patch: patch)
                    // Bisection guarantees a crossing inside the bracket; on a non-monotone curve k − 1 may
                    // still be above only if it was below the bracket's low end, which the grid excludes.
                    let lowEnd = r.curve.last { $0.reference.f < s.threshold && $0.nominal < k }?.nominal ?? 0
                    if k - 1 >= lowEnd { XCTAssertLessThan(below.f, s.threshold, tag) }
                }
                // The model is restored: the unablated metric is unchanged.
                XCTAssertEqual(try Faithfulness.metric(model, ref, .logitDiff), r.reference.baseline.full, tag)
            }
        }
    }

    func testGridCounts() {
        XCTAssertEqual(CircuitDiscovery.gridCounts(points: 12, total: 8), Array(0...8))
        let big = CircuitDiscovery.gridCounts(points: 16, total: 1_000_000)
        XCTAssertEqual(big.count, 16)
        XCTAssertEqual(big.first, 0); XCTAssertEqual(big[1], 100); XCTAssertEqual(big.last, 1_000_000)
        let mid = CircuitDiscovery.gridCounts(points: 12, total: 96)
        XCTAssertGreaterThanOrEqual(mid.count, 12); XCTAssertEqual(mid[1], 1); XCTAssertEqual(mid.last, 96)
    }

    /// keep(k) is exactly the k highest scores (independent sort); row scheme keeps the same count per row.
    func testRankingKeepsTopScores() throws {
        let model = try AttributionFixtures.tiny("tiny-opt")
        var s = CircuitSettings()
        s.method = .random; s.seed = 3; s.granularity = .neurons
        let scores = try CircuitDiscovery.scores(model: model, items: [], settings: s, attribution: AttributionSettings())
        let c = try CircuitCandidates(model: model, granularity: .neurons, scheme: .global, rank: .signed, layers: nil, scores: scores)
        let flat = c.entries.flatMap(\.scores)
        let sorted = flat.sorted(by: >)
        for k in [0, 1, 7, 50, flat.count] {
            let kept = zip(c.keep(k).flatMap { $0 }, flat).filter(\.0).map(\.1)
            XCTAssertEqual(kept.count, k)
            XCTAssertEqual(kept.sorted(by: >), Array(sorted.prefix(k)))
        }
        let w = try CircuitCandidates(model: model, granularity: .weights, scheme: .row, rank: .abs, layers: "layers\\.1\\.", scores: scores)
        XCTAssertTrue(w.entries.allSatisfy { $0.name.contains("layers.1.") })
        XCTAssertEqual(w.entries.count, 6)
        let k = w.total / 4
        for (e, f) in zip(w.entries, w.keep(k)) {
            for r in stride(from: 0, to: f.count, by: e.shape[1]) {
                XCTAssertEqual(f[r..<(r + e.shape[1])].filter { $0 }.count, Int((Double(e.shape[1]) / 4).rounded()), e.name)
            }
        }
        XCTAssertThrowsError(try CircuitCandidates(model: model, granularity: .heads, scheme: .global, rank: .abs, layers: "",
                                                   scores: scores)) { XCTAssertEqual($0 as? CircuitError, .emptyLayerRegex) }
        XCTAssertThrowsError(try CircuitCandidates(model: model, granularity: .heads, scheme: .global, rank: .abs, layers: "nothing",
                                                   scores: scores)) { XCTAssertEqual($0 as? CircuitError, .noLayersMatch("nothing")) }
    }

    /// random vs lrp rank differently; random is fixed by its seed.
    func testRandomAndLRPRankingsDiffer() throws {
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let ref = items(model, seed: 4)
        func keep(_ m: CircuitMethod, seed: UInt64 = 0) throws -> [[Bool]] {
            var s = CircuitSettings()
            s.method = m; s.seed = seed; s.granularity = .neurons
            let sc = try CircuitDiscovery.scores(model: model, items: ref, settings: s, attribution: AttributionFixtures.settings(.lrp, samples: ref.count))
            return try CircuitCandidates(model: model, granularity: .neurons, scheme: .global, rank: .signed, layers: nil, scores: sc).keep(10)
        }
        XCTAssertNotEqual(try keep(.lrp), try keep(.random))
        XCTAssertEqual(try keep(.random, seed: 5), try keep(.random, seed: 5))
        XCTAssertNotEqual(try keep(.random, seed: 5), try keep(.random, seed: 6))
        XCTAssertNotEqual(try keep(.lrp), try keep(.magnitude))
    }

    /// The files: mask counts = reported size, curve ends 0 and 1, circuit.json carries every setting; an existing output is refused.
    func testFilesMatchTheResult() throws {
        let model = try AttributionFixtures.tiny("tiny-opt")
        var s = CircuitSettings()
        s.granularity = .heads; s.ablation = .zero; s.threshold = 0.5; s.gridPoints = 12
        let ref = items(model, seed: 7)
        let r = try run(model, s, ref: ref, held: nil)
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("circ").path
        let prov = CircuitProvenance(modelPath: try Fixtures.path("tiny-opt"), modelSHA256: "m", modelFiles: [], referencePath: "/nonexistent/t.jsonl",
                                     referenceSHA256: "t", heldoutPath: nil, heldoutSHA256: nil)
        try CircuitReport.write(r, s, prov, model: model, to: out, title: "test")
        let mask = try SafetensorsFile(path: out + "/mask.safetensors")
        var ones = 0
        for l in 0..<model.config.nLayers { ones += try mask.bytes(ScoreNames.heads(model, layer: l)).filter { $0 == 1 }.count }
        XCTAssertEqual(ones, r.crossing.kept)
        let cj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/circuit.json"))) as? [String: Any])
        let circuit = try XCTUnwrap(cj["circuit"] as? [String: Any])
        XCTAssertEqual(circuit["kept"] as? Int, r.crossing.kept)
        XCTAssertEqual((cj["kept_heads"] as? [Any])?.count, r.crossing.kept)
        let perLayer = try XCTUnwrap(cj["kept_per_layer"] as? [[String: Any]])
        XCTAssertEqual(perLayer.map { $0["kept"] as! Int }.reduce(0, +), r.crossing.kept)
        let settings = try XCTUnwrap(cj["settings"] as? [String: Any])
        XCTAssertEqual(settings["method"] as? String, "lrp")
        XCTAssertEqual(settings["aggregation"] as? String, "signed")
        XCTAssertEqual(settings["ablation"] as? String, "zero")
        XCTAssertEqual(settings["score_sign"] as? String, "signed")
        let curve = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/curve.json"))) as? [String: Any])
        let pts = try XCTUnwrap(curve["points"] as? [[String: Any]])
        XCTAssertEqual(pts.first?["f_reference"] as? Double, 0)
        XCTAssertEqual(pts.last?["f_reference"] as? Double, 1)
        let csv = try String(contentsOfFile: out + "/curve.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, pts.count + 1)
        let svg = try String(contentsOfFile: out + "/curve.svg", encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        XCTAssertFalse(svg.contains("href"))
        XCTAssertThrowsError(try CircuitReport.write(r, s, prov, model: model, to: out, title: "again"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["circ"])
    }
}
