import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Structured removal: neurons and heads remove the unit exactly
//
// Each test removes a unit with the pruner and compares the logits with a model
// where the same unit's output is forced to zero a *different* way (only the
// down/fc2 column; only the gate/up or fc1 rows; or v_proj rows so the head's
// slice of z is zero). Identical logits mean the pruner removed exactly that unit.

final class PruneStructuredTests: XCTestCase {
    let tokens = Fixtures.tokens

    func load(_ name: String) throws -> Model { try PruneTestKit.load(try Fixtures.path(name)) }

    /// Unit scores making `lowest` the lowest-scored units (all others score 1).
    func unitScores(_ model: Model, kind: PrunedUnit.Kind, lowest: [(layer: Int, index: Int)]) -> ScoreMap {
        var t: [String: Tensor] = [:]
        for b in model.blocks {
            let n = kind == .neuron ? model.config.dFF : model.config.nHeads
            var v = [Float](repeating: 1, count: n)
            for u in lowest where u.layer == b.index { v[u.index] = 0.01 }
            let name = kind == .neuron ? ScoreNames.neurons(model, layer: b.index) : ScoreNames.heads(model, layer: b.index)
            t[name] = Tensor(shape: [n], data: v)
        }
        return ScoreMap(tensors: t, source: "synthetic units")
    }

    func assertSameLogits(_ a: Model, _ b: Model, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(PruneTestKit.maxAbsDiff(a.forward(tokens), b.forward(tokens)), 1e-6, what, file: file, line: line)
    }

    func testLlamaNeuronRemovalEqualsZeroingOnlyTheDownColumn() throws {
        let pruned = try load("tiny-llama-bias"), downOnly = try load("tiny-llama-bias"), upOnly = try load("tiny-llama-bias")
        let dense = try load("tiny-llama-bias")
        let (layer, j) = (1, 7)
        let mask = try Pruner.mask(pruned, scores: unitScores(pruned, kind: .neuron, lowest: [(layer, j)]),
                                   spec: try PruneSpec(scheme: .neurons, amount: .count(1)))
        XCTAssertEqual(mask.units, [PrunedUnit(kind: .neuron, layer: layer, index: j, score: 0.01)])
        try mask.apply(to: pruned)
        let b = pruned.blocks[layer], d = b.down
        for r in 0..<d.outDim { downOnly.blocks[layer].down.weight[r * d.inDim + j] = 0 }
        // Zeroing up row + up bias alone also silences the neuron: silu(g)·0 = 0.
        let u = upOnly.blocks[layer].up
        for c in 0..<u.inDim { u.weight[j * u.inDim + c] = 0 }
        u.bias?[j] = 0
        assertSameLogits(pruned, downOnly, "prune == down column only")
        assertSameLogits(pruned, upOnly, "prune == up row + bias only")
        XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(pruned.forward(tokens), dense.forward(tokens)), 1e-5, "the neuron mattered")
        // Exactly the neuron's parameters are zero.
        XCTAssertTrue((0..<b.gate!.inDim).allSatisfy { b.gate!.weight[j * b.gate!.inDim + $0] == 0 })
        XCTAssertTrue((0..<b.up.inDim).allSatisfy { b.up.weight[j * b.up.inDim + $0] == 0 })
        XCTAssertEqual(b.gate!.bias?[j], 0); XCTAssertEqual(b.up.bias?[j], 0)
        XCTAssertEqual(SparsityReport.measure(pruned).zeros, b.gate!.inDim + b.up.inDim + d.outDim)
    }

    func testOPTNeuronRemovalZeroesFC1RowBiasAndFC2Column() throws {
        let pruned = try load("tiny-opt"), fc2Only = try load("tiny-opt"), fc1Only = try load("tiny-opt")
        let units = [(0, 3), (1, 60)]
        let mask = try Pruner.mask(pruned, scores: unitScores(pruned, kind: .neuron, lowest: units),
                                   spec: try PruneSpec(scheme: .neurons, amount: .count(2)))
        XCTAssertEqual(mask.units.map { [$0.layer, $0.index] }, [[0, 3], [1, 60]])
        try mask.apply(to: pruned)
        for (layer, j) in units {
            let fc1 = pruned.blocks[layer].up, fc2 = pruned.blocks[layer].down
            XCTAssertEqual(fc1.bias?[j], 0, "fc1 bias entry zeroed")
            XCTAssertTrue((0..<fc1.inDim).allSatisfy { fc1.weight[j * fc1.inDim + $0] == 0 })
            XCTAssertTrue((0..<fc2.outDim).allSatisfy { fc2.weight[$0 * fc2.inDim + j] == 0 })
            for r in 0..<fc2.outDim { fc2Only.blocks[layer].down.weight[r * fc2.inDim + j] = 0 }
            let f = fc1Only.blocks[layer].up
            for c in 0..<f.inDim { f.weight[j * f.inDim + c] = 0 }
            f.bias?[j] = 0                                    // relu(0) = 0
        }
        assertSameLogits(pruned, fc2Only, "prune == fc2 columns only")
        assertSameLogits(pruned, fc1Only, "prune == fc1 rows + biases only")
    }

    func testOPTHeadRemovalEqualsZeroingTheHeadsSliceOfZ() throws {
        // MHA: zeroing v_proj rows and bias of head h makes z_h = Σ A·v_h = 0 exactly.
        let pruned = try load("tiny-opt"), viaV = try load("tiny-opt")
        let (layer, h) = (1, 2), hd = pruned.config.headDim
        let mask = try Pruner.mask(pruned, scores: unitScores(pruned, kind: .head, lowest: [(layer, h)]),
                                   spec: try PruneSpec(scheme: .heads, amount: .count(1)))
        try mask.apply(to: pruned)
        let o = pruned.blocks[layer].o
        XCTAssertEqual(mask.tensors.first { $0.name == o.name }?.pruned, o.outDim * hd)
        let v = viaV.blocks[layer].v
        for r in (h * hd)..<((h + 1) * hd) {
            for c in 0..<v.inDim { v.weight[r * v.inDim + c] = 0 }
            v.bias?[r] = 0
        }
        assertSameLogits(pruned, viaV, "o_proj columns == z slice zeroed")
    }

    func testLlamaGQAHeadsRemovalEqualsZeroingTheSharedValueHead() throws {
        // 4 query heads share 2 kv heads: removing heads 0 and 1 (kv group 0) == zeroing v head 0.
        let pruned = try load("tiny-llama-bias"), viaV = try load("tiny-llama-bias")
        let c = pruned.config
        XCTAssertEqual(c.nHeads / c.nKVHeads, 2)
        let mask = try Pruner.mask(pruned, scores: unitScores(pruned, kind: .head, lowest: [(0, 0), (0, 1)]),
                                   spec: try PruneSpec(scheme: .heads, amount: .count(2)))
        try mask.apply(to: pruned)
        let v = viaV.blocks[0].v
        for r in 0..<c.headDim {
            for col in 0..<v.inDim { v.weight[r * v.inDim + col] = 0 }
            v.bias?[r] = 0
        }
        assertSameLogits(pruned, viaV, "GQA group removed two ways")
    }

    func testAggregatedUnitScoresFromPerWeightScores() throws {
        // No unit tensors: neuron j = Σ gate row j + Σ up row j + Σ down column j; head h = Σ o_proj columns of h.
        let model = try load("tiny-llama-bias")
        let scores = PruneTestKit.scores(model, seed: 77)
        let b = model.blocks[1]
        let agg = try scores.neuronScores(model, block: b, source: .aggregated)
        let g = try scores.weightScores(b.gate!), u = try scores.weightScores(b.up), d = try scores.weightScores(b.down)
        for j in [0, 13, 47] {
            var s = 0.0
            for c in 0..<b.up.inDim { s += Double(g[j * b.up.inDim + c]) + Double(u[j * b.up.inDim + c]) }
            for r in 0..<b.down.outDim { s += Double(d[r * b.down.inDim + j]) }
            XCTAssertEqual(Double(agg[j]), s, accuracy: 1e-5, "neuron \(j)")
        }
        let heads = try scores.headScores(model, block: b, source: .aggregated)
        let o = try scores.weightScores(b.o), hd = model.config.headDim
        for h in 0..<model.config.nHeads {
            var s = 0.0
            for r in 0..<b.o.outDim { for c in (h * hd)..<((h + 1) * hd) { s += Double(o[r * b.o.inDim + c]) } }
            XCTAssertEqual(Double(heads[h]), s, accuracy: 1e-5, "head \(h)")
        }
        // The ranking uses them: pruning 5 neurons by |aggregate| removes the 5 smallest |s_j| overall.
        let mask = try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .neurons, amount: .count(5)))
        let all = try model.blocks.flatMap { try scores.neuronScores(model, block: $0, source: .aggregated) }
        let expect = all.indices.sorted { (abs(all[$0]), $0) < (abs(all[$1]), $1) }.prefix(5).map { [$0 / 48, $0 % 48] }
        XCTAssertEqual(mask.units.map { [$0.layer, $0.index] }.sorted { $0.lexicographicallyPrecedes($1) },
                       expect.sorted { $0.lexicographicallyPrecedes($1) })
    }

    func testUnitScoresMustBeAllOrNothingAndLayersFilter() throws {
        let model = try load("tiny-opt")
        var scores = unitScores(model, kind: .neuron, lowest: [(0, 1)])
        scores.tensors["model.decoder.layers.1.fc1.neurons"] = nil
        XCTAssertThrowsError(try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .neurons, amount: .count(1)))) {
            XCTAssertEqual($0 as? PruneError, .mixedUnitScores(missing: "model.decoder.layers.1.fc1.neurons", file: "synthetic units"))
        }
        // With --layers restricted to layer 0 the missing layer-1 tensor is not needed.
        let m = try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .neurons, amount: .fraction(0.5), layers: #"layers\.0\."#))
        XCTAssertEqual(m.units.count, 32)
        XCTAssertTrue(m.units.allSatisfy { $0.layer == 0 })
        XCTAssertThrowsError(try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .neurons, amount: .count(65), layers: #"layers\.0\."#))) {
            XCTAssertEqual($0 as? PruneError, .countTooLarge(count: 65, available: 64, unit: "neurons"))
        }
    }
}
