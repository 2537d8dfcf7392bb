import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Unstructured schemes: exact counts, lowest scores, ties, N:M pattern

final class PruneSchemeTests: XCTestCase {

    func fixtureModel(_ name: String = "tiny-llama-bias") throws -> Model {
        try PruneTestKit.load(try Fixtures.path(name))
    }

    /// Within a set, every pruned score ranks at or below every kept one, and among equal
    /// keys pruned ones come first in flat order.
    func assertLowestPruned(_ scores: [Float], _ keep: [UInt8], rank: RankMode, _ what: String,
                            file: StaticString = #filePath, line: UInt = #line) {
        // (key, index) packed into one integer: the pruning order.
        var maxPruned: UInt64? = nil, minKept: UInt64? = nil
        for i in scores.indices {
            let k = Selection.composite(scores[i], index: i, rank)
            if keep[i] == 0 { maxPruned = max(maxPruned ?? 0, k) } else { minKept = min(minKept ?? .max, k) }
        }
        if let p = maxPruned, let m = minKept { XCTAssertLessThan(p, m, what, file: file, line: line) }
    }

    func testRowSchemePrunesExactlyFloorColsTimesSInEveryRow() throws {
        let model = try fixtureModel()
        for (levels, s) in [(nil as Int?, 0.5), (2, 0.5), (5, 0.3), (nil, 0.29), (3, 0.0), (7, 0.99)] {
            let scores = PruneTestKit.scores(model, seed: 11, levels: levels)
            let spec = try PruneSpec(scheme: .row, amount: .fraction(s))
            let mask = try Pruner.mask(model, scores: scores, spec: spec)
            XCTAssertEqual(mask.tensors.count, model.linears.count)
            for l in model.linears {
                guard let m = mask[l.name] else { return XCTFail("no mask for \(l.name)") }
                let k = Int((Double(l.inDim) * s + 1e-9).rounded(.down))
                let sc = try scores.weightScores(l)
                for r in 0..<l.outDim {
                    let row = Array(m.keep[(r * l.inDim)..<((r + 1) * l.inDim)])
                    XCTAssertEqual(row.filter { $0 == 0 }.count, k, "\(l.name) row \(r) at s = \(s)")
                    assertLowestPruned(Array(sc[(r * l.inDim)..<((r + 1) * l.inDim)]), row, rank: .abs, "\(l.name) row \(r)")
                }
            }
        }
    }

    func testDecimalSparsityIsNotLostToBinaryRounding() {
        // 0.29 · 100 = 28.999… in binary; the intended floor is 29.
        XCTAssertEqual(PruneSpec.units(of: 100, fraction: 0.29), 29)
        XCTAssertEqual(PruneSpec.units(of: 10, fraction: 0.7), 7)
        XCTAssertEqual(PruneSpec.units(of: 7, fraction: 0.5), 3)
    }

    func testLayerSchemeIsExactPerMatrix() throws {
        let model = try fixtureModel()
        let scores = PruneTestKit.scores(model, seed: 5, levels: 3)
        let mask = try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .layer, amount: .fraction(0.37)))
        for l in model.linears {
            let m = try XCTUnwrap(mask[l.name])
            XCTAssertEqual(m.pruned, Int(Double(l.weight.count) * 0.37), l.name)
            assertLowestPruned(try scores.weightScores(l), m.keep, rank: .abs, l.name)
        }
    }

    func testGlobalSchemeIsExactWithHeavyTies() throws {
        let model = try fixtureModel()
        let scores = PruneTestKit.scores(model, seed: 3, levels: 2)       // only 5 distinct values
        let total = model.linears.reduce(0) { $0 + $1.weight.count }
        for amount in [PruneAmount.fraction(0.5), .count(1), .count(4321), .count(total), .fraction(0)] {
            for rank in RankMode.allCases {
                let mask = try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .global, amount: amount, rank: rank))
                let k: Int
                switch amount { case .fraction(let s): k = Int(Double(total) * s); case .count(let c): k = c }
                XCTAssertEqual(mask.pruned, k, "\(amount) \(rank)")
                let flatScores = try model.linears.flatMap { try scores.weightScores($0) }
                assertLowestPruned(flatScores, mask.tensors.flatMap(\.keep), rank: rank, "global \(amount) \(rank)")
            }
        }
        XCTAssertThrowsError(try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .global, amount: .count(total + 1)))) {
            XCTAssertEqual($0 as? PruneError, .countTooLarge(count: total + 1, available: total, unit: "weights"))
        }
    }

    func testSignedRankPrunesMostNegativeFirst() throws {
        let model = try fixtureModel()
        let scores = PruneTestKit.scores(model, seed: 8)
        let mask = try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .global, amount: .count(10), rank: .signed))
        let flat = try model.linears.flatMap { try scores.weightScores($0) }
        let tenLowest = Set(flat.indices.sorted { flat[$0] < flat[$1] }.prefix(10))
        let keep = mask.tensors.flatMap(\.keep)
        XCTAssertEqual(Set(keep.indices.filter { keep[$0] == 0 }), tenLowest)
    }

    func testNMPatternHoldsInEveryGroup() throws {
        let model = try fixtureModel()
        let scores = PruneTestKit.scores(model, seed: 21, levels: 3)
        for (n, m) in [(2, 4), (4, 8), (1, 4)] {
            let mask = try Pruner.mask(model, scores: scores, spec: try PruneSpec(scheme: .nm(n: n, m: m), amount: nil))
            for l in model.linears {
                let t = try XCTUnwrap(mask[l.name]), sc = try scores.weightScores(l)
                for r in 0..<l.outDim {
                    for g in stride(from: 0, to: l.inDim, by: m) {
                        let lo = r * l.inDim + g
                        let keep = Array(t.keep[lo..<(lo + m)])
                        XCTAssertEqual(keep.filter { $0 == 0 }.count, n, "\(l.name) row \(r) group \(g / m) (\(n):\(m))")
                        assertLowestPruned(Array(sc[lo..<(lo + m)]), keep, rank: .abs, "group")
                    }
                }
            }
        }
    }

    func testNMRejectsBadShapesAndArguments() throws {
        XCTAssertThrowsError(try PruneScheme(parsing: "nm:4:4")) { XCTAssertTrue(($0 as? PruneError)?.isUsageError == true) }
        XCTAssertThrowsError(try PruneScheme(parsing: "nm:5:4")) { XCTAssertTrue(($0 as? PruneError)?.isUsageError == true) }
        XCTAssertThrowsError(try PruneScheme(parsing: "nm:0:4"))
        XCTAssertThrowsError(try PruneScheme(parsing: "nm:2"))
        XCTAssertEqual(try PruneScheme(parsing: "2:4"), .nm(n: 2, m: 4))
        XCTAssertEqual(PruneScheme.nm(n: 2, m: 4).sparsityStructure, "2:4")
        XCTAssertEqual(PruneScheme.nm(n: 1, m: 4).sparsityStructure, "3:4")
        XCTAssertThrowsError(try PruneSpec(scheme: .nm(n: 2, m: 4), amount: .fraction(0.3)))
        XCTAssertNoThrow(try PruneSpec(scheme: .nm(n: 2, m: 4), amount: .fraction(0.5)))
        XCTAssertThrowsError(try PruneSpec(scheme: .nm(n: 2, m: 4), amount: .count(3)))
        // tiny-llama-bias has 48 MLP columns: 48 % 32 ≠ 0 for down_proj.
        let model = try fixtureModel()
        XCTAssertThrowsError(try Pruner.mask(model, scores: PruneTestKit.scores(model, seed: 1),
                                             spec: try PruneSpec(scheme: .nm(n: 2, m: 32), amount: nil))) {
            XCTAssertEqual($0 as? PruneError, .columnsNotMultiple(tensor: "model.layers.0.mlp.down_proj.weight", cols: 48, m: 32))
        }
    }

    func testSpecValidation() {
        for s in [-0.1, 1.0, 1.5, .nan, .infinity] {
            XCTAssertThrowsError(try PruneSpec(scheme: .row, amount: .fraction(s)), "\(s)") {
                XCTAssertTrue(($0 as? PruneError)?.isUsageError == true)
            }
        }
        XCTAssertThrowsError(try PruneSpec(scheme: .row, amount: nil))
        XCTAssertThrowsError(try PruneSpec(scheme: .row, amount: .count(-1)))
        XCTAssertThrowsError(try PruneSpec(scheme: .row, amount: .fraction(0.5), layers: "fc1(")) {
            XCTAssertEqual($0 as? PruneError, .invalidArgument(option: "layers", reason: "'fc1(' is not a valid regular expression"))
        }
        XCTAssertThrowsError(try PruneScheme(parsing: "rows"))
    }

    func testLayersRegexSelectsByHFName() throws {
        let model = try fixtureModel()
        let spec = try PruneSpec(scheme: .row, amount: .fraction(0.5), layers: #"mlp\.up_proj"#)
        let mask = try Pruner.mask(model, scores: PruneTestKit.scores(model, seed: 2), spec: spec)
        XCTAssertEqual(mask.tensors.map(\.name), ["model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"])
        let opt = try fixtureModel("tiny-opt")
        let m2 = try Pruner.mask(opt, scores: PruneTestKit.scores(opt, seed: 2),
                                 spec: try PruneSpec(scheme: .global, amount: .count(100), layers: "fc1"))
        XCTAssertEqual(m2.tensors.map(\.name), ["model.decoder.layers.0.fc1.weight", "model.decoder.layers.1.fc1.weight"])
        XCTAssertEqual(m2.pruned, 100)
        XCTAssertThrowsError(try Pruner.mask(model, scores: PruneTestKit.scores(model, seed: 2),
                                             spec: try PruneSpec(scheme: .row, amount: .fraction(0.5), layers: "fc1"))) {
            guard case .noLayersMatched(let p, let ex)? = $0 as? PruneError else { return XCTFail("\($0)") }
            XCTAssertEqual(p, "fc1"); XCTAssertFalse(ex.isEmpty)
        }
    }

    func testScoresFromAnotherModelAreRejectedByName() throws {
        let llama = try fixtureModel(), opt = try fixtureModel("tiny-opt")
        let spec = try PruneSpec(scheme: .row, amount: .fraction(0.5))
        XCTAssertThrowsError(try Pruner.mask(llama, scores: PruneTestKit.scores(opt, seed: 1), spec: spec)) {
            guard case .unknownScoreTensor(let t, _)? = $0 as? PruneError else { return XCTFail("\($0)") }
            XCTAssertTrue(t.hasPrefix("model.decoder.layers."), t)
        }
        var wrong = PruneTestKit.scores(llama, seed: 1)
        wrong.tensors["model.layers.1.mlp.up_proj.weight"] = Tensor(zeros: [48, 16])
        XCTAssertThrowsError(try Pruner.mask(llama, scores: wrong, spec: spec)) {
            XCTAssertEqual($0 as? PruneError, .scoreShapeMismatch(tensor: "model.layers.1.mlp.up_proj.weight", file: "synthetic",
                                                                  expected: [48, 32], found: [48, 16]))
        }
        var missing = PruneTestKit.scores(llama, seed: 1)
        missing.tensors["model.layers.0.self_attn.k_proj.weight"] = nil
        XCTAssertThrowsError(try Pruner.mask(llama, scores: missing, spec: spec)) {
            XCTAssertEqual($0 as? PruneError, .missingScore(tensor: "model.layers.0.self_attn.k_proj.weight", file: "synthetic"))
        }
        var nan = PruneTestKit.scores(llama, seed: 1)
        nan.tensors["model.layers.0.mlp.gate_proj.weight"]?.data[5] = .nan
        XCTAssertThrowsError(try Pruner.mask(llama, scores: nan, spec: spec)) {
            XCTAssertEqual($0 as? PruneError, .nonFiniteScore(tensor: "model.layers.0.mlp.gate_proj.weight", file: "synthetic", index: 5))
        }
    }

    func testApplyZeroesExactlyTheMaskedWeights() throws {
        let model = try fixtureModel()
        let before = model.linears.map(\.weight)
        let mask = try Pruner.mask(model, scores: ScoreMap.magnitude(model), spec: try PruneSpec(scheme: .row, amount: .fraction(0.5)))
        try mask.apply(to: model)
        for (l, w0) in zip(model.linears, before) {
            let m = try XCTUnwrap(mask[l.name])
            for i in w0.indices {
                if m.keep[i] == 0 { XCTAssertEqual(l.weight[i].bitPattern, 0, "\(l.name)[\(i)] must be +0") }
                else { XCTAssertEqual(l.weight[i], w0[i]) }
            }
        }
        let r = SparsityReport.measure(model)
        XCTAssertEqual(r.sparsity, 0.5, accuracy: 1e-12)
        XCTAssertTrue(r.table().contains("decoder linear weights: sparsity 0.500000"))
        // A mask for another shape changes nothing and names the tensor.
        let bad = PruneMask(tensors: [TensorMask(allKept: "model.layers.0.mlp.up_proj.weight", shape: [2, 2])])
        XCTAssertThrowsError(try bad.apply(to: model)) {
            guard case .maskMismatch(let t, _)? = $0 as? PruneError else { return XCTFail("\($0)") }
            XCTAssertEqual(t, "model.layers.0.mlp.up_proj.weight")
        }
    }
}
