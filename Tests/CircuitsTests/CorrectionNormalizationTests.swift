import Foundation
import XCTest
@testable import Circuits
import TestSupport
import Transformer

/// `correct --normalize per-set` on hand-made score maps: each set ÷ its own Σ|·| over exactly the components the
/// ranking ranks (the granularity and --layers), then the difference; a scale that flips which set decides the
/// ranking is the point of the option, so the example is built to flip it.
final class CorrectionNormalizationTests: XCTestCase {
    func testPerSetDividesEachSetByItsRankedMassAndCanFlipTheRanking() throws {
        let model = try ModelLoader.load(try Fixtures.path("tiny-llama-bias"), needTokenizer: false).model
        let c = model.config
        // Neuron maps for both layers: general has 10× the mass of undesired on layer 0 (values ±10), undesired
        // puts its mass on neuron 3 of layer 0. Layer 1 is outside --layers and must not enter the totals.
        var g: [String: Tensor] = [:], u: [String: Tensor] = [:]
        for l in 0..<c.nLayers {
            let name = ScoreNames.neurons(model, layer: l)
            g[name] = Tensor(shape: [c.dFF], data: (0..<c.dFF).map { Float(l == 0 ? ($0 % 2 == 0 ? 10 : -10) : 1000) })
            u[name] = Tensor(shape: [c.dFF], data: (0..<c.dFF).map { Float(l == 0 ? ($0 == 3 ? 5 : 1) : -1000) })
        }
        let gm = ScoreMap(tensors: g, source: "g"), um = ScoreMap(tensors: u, source: "u")
        let spec = try PruneSpec(scheme: .neurons, amount: .count(2), rank: .signed, layers: "^model\\.layers\\.0\\.")
        // Hand totals over layer 0's neurons only.
        let sg = Double(10 * c.dFF), su = Double(5 + (c.dFF - 1))
        let n = try ContrastiveScores.normalizedPerSet(general: gm, undesired: um, model: model, spec: spec)
        XCTAssertEqual(n.record.generalTotal, sg)
        XCTAssertEqual(n.record.undesiredTotal, su)
        XCTAssertEqual(n.record.components, c.dFF)
        let d = try ContrastiveScores.subtract(n.general, n.undesired, source: "d")
        let l0 = try XCTUnwrap(d.tensors[ScoreNames.neurons(model, layer: 0)]?.data)
        for i in 0..<c.dFF {
            let want = (i % 2 == 0 ? 10 : -10) / sg - (i == 3 ? 5 : 1) / su
            XCTAssertEqual(Double(l0[i]), want, accuracy: 1e-6)
        }
        // Raw difference: the odd neurons tie at −11 (the general set decides), neuron 3 among them (−15) first, then
        // neuron 1. Normalised: neuron 3 first, then the other odd neurons (−1/(10 dFF) − 1/su), lowest index 1.
        let raw = try ContrastiveScores.subtract(gm, um, source: "raw")
        let rawMask = try Pruner.mask(model, scores: raw, spec: spec)
        XCTAssertEqual(rawMask.units.map(\.index).sorted(), [1, 3])
        let normMask = try Pruner.mask(model, scores: d, spec: spec)
        XCTAssertEqual(normMask.units.map(\.index).sorted(), [1, 3])
        // A case where the scale flips the ranking: undesired mass concentrated on even neuron 4, tiny elsewhere.
        var u2 = u
        u2[ScoreNames.neurons(model, layer: 0)] = Tensor(shape: [c.dFF], data: (0..<c.dFF).map { $0 == 4 ? 1 : 0 })
        let um2 = ScoreMap(tensors: u2, source: "u2")
        // Raw: odd neurons −10 beat neuron 4's 10 − 1 = 9. Normalised (Σ|u2| = 1): neuron 4 is 10/sg − 1 < −10/sg.
        XCTAssertEqual(try Pruner.mask(model, scores: try ContrastiveScores.subtract(gm, um2, source: "r"), spec: spec).units.map(\.index).sorted(), [1, 3])
        let n2 = try ContrastiveScores.normalizedPerSet(general: gm, undesired: um2, model: model, spec: spec)
        let d2 = try ContrastiveScores.subtract(n2.general, n2.undesired, source: "d2")
        XCTAssertEqual(try Pruner.mask(model, scores: d2, spec: spec).units.map(\.index).sorted(), [1, 4])
        // Weights: the totals run over the --layers targets only (here the MLP input projections).
        let wspec = try PruneSpec(scheme: .global, amount: .count(3), rank: .signed, layers: "mlp\\.(gate|up)_proj")
        var wg: [String: Tensor] = [:]
        var want = 0.0
        for (j, l) in model.linears.enumerated() {
            let v = Float(j + 1) * (j % 2 == 0 ? 1 : -1)
            wg[l.name] = Tensor(shape: [l.outDim, l.inDim], data: [Float](repeating: v, count: l.weight.count))
            if l.name.contains("mlp.gate_proj") || l.name.contains("mlp.up_proj") { want += Double(abs(v)) * Double(l.weight.count) }
        }
        let t = try ContrastiveScores.candidateAbsSum(model, scores: ScoreMap(tensors: wg, source: "w"), spec: wspec)
        XCTAssertEqual(t.total, want)
        XCTAssertEqual(t.components, model.linears.filter { $0.name.contains("gate_proj") || $0.name.contains("up_proj") }.reduce(0) { $0 + $1.weight.count })
        // A set with no mass on the ranked components cannot be normalised.
        var zero = u
        zero[ScoreNames.neurons(model, layer: 0)] = Tensor(shape: [c.dFF], data: [Float](repeating: 0, count: c.dFF))
        XCTAssertThrowsError(try ContrastiveScores.normalizedPerSet(general: gm, undesired: ScoreMap(tensors: zero, source: "z"), model: model, spec: spec)) {
            XCTAssertEqual($0 as? CorrectionError, .cannotNormalize(set: "undesired", total: 0))
        }
    }
}
