import XCTest
import Transformer
import TestSupport
@testable import Circuits

/// `workbench quantize`'s library: allocation under the budget, the GGUF it writes read back by our
/// loader (layout, q/k permutation, values = codec decode), and bad input.
final class MixedPrecisionQuantizerTests: XCTestCase {
    private func tiny() throws -> Checkpoint { try ModelLoader.checkpoint(try Fixtures.path("tiny-llama-bias")) }

    func testAllocationMeetsBudgetAndPicksTheBetterTrade() {
        // Two tensors of 100 weights, types at 4.5 and 8.5 bits: budget for one upgrade only.
        // Tensor 1 gains more per bit, so it is the one upgraded.
        let bits = [4.5, 8.5]
        let c = MixedPrecisionQuantizer.allocate(errors: [[10, 9], [10, 1]], counts: [100, 100], bits: bits, budget: 6.5)
        XCTAssertEqual(c, [0, 1])
        // Budget exactly at the cheapest type: nothing upgraded; at the top: everything.
        XCTAssertEqual(MixedPrecisionQuantizer.allocate(errors: [[10, 9], [10, 1]], counts: [100, 100], bits: bits, budget: 4.5), [0, 0])
        XCTAssertEqual(MixedPrecisionQuantizer.allocate(errors: [[10, 9], [10, 1]], counts: [100, 100], bits: bits, budget: 8.5), [1, 1])
        // Random instances: Σ bits ≤ budget always.
        var rng = SplitMix(seed: 3)
        let tb = [4.5, 5.0, 8.5, 16]
        for _ in 0..<50 {
            let n = 20, counts = (0..<n).map { _ in 32 * (1 + Int(rng.next() % 64)) }
            let errs = (0..<n).map { _ in tb.map { 1 / $0 * (1 + rng.uniform()) } }
            let budget = 4.5 + rng.uniform() * 11.5
            let ch = MixedPrecisionQuantizer.allocate(errors: errs, counts: counts, bits: tb, budget: budget)
            let used = zip(ch, counts).map { tb[$0] * Double($1) }.reduce(0, +)
            XCTAssertLessThanOrEqual(used, budget * Double(counts.reduce(0, +)) + 1e-9)
        }
    }

    func testF32OutputReloadsToTheSameCheckpoint() throws {
        let ck = try tiny(), out = try Scratch.dir(self).appendingPathComponent("f32.gguf").path
        let r = try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 32, types: [.f32, .q4_0], importance: .plain, weightedRounding: true), carry: [], out: out)
        XCTAssertEqual(r.achievedBitsPerWeight, 32)
        let back = try loadGGUF(path: out)
        XCTAssertEqual(Set(back.tensors.keys), Set(ck.tensors.keys))
        for (k, t) in ck.tensors { XCTAssertEqual(back.tensors[k]?.data, t.data, k); XCTAssertEqual(back.tensors[k]?.shape, t.shape, k) }
        XCTAssertEqual(back.config.nKVHeads, ck.config.nKVHeads)
        XCTAssertEqual(back.config.ropeTheta, ck.config.ropeTheta)
        XCTAssertEqual(back.config.normEps, ck.config.normEps)
    }

    func testQuantizedValuesAreTheCodecsDecodeAndBudgetHolds() throws {
        let ck = try tiny(), out = try Scratch.dir(self).appendingPathComponent("q.gguf").path
        let r = try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 6, types: [.q8_0, .q4_1, .q4_0], importance: .magnitude, weightedRounding: true), carry: [], out: out)
        XCTAssertLessThanOrEqual(r.achievedBitsPerWeight, 6)
        XCTAssertGreaterThan(r.achievedBitsPerWeight, 4.5)
        let g = try GGUFFile(path: out)
        let exported = try GGUFLlamaExport.tensors(ck)
        for t in exported {
            let info = try XCTUnwrap(g.tensor(named: t.name))
            // Q4_x with |W|-weighted scales, Q8_0 (and F32) with ggml's plain ones.
            let expected = GGMLBlockCodec.decode(GGMLBlockCodec.encode(t.values, type: info.type, importance: MixedPrecisionQuantizer.searched(info.type) ? t.values.map { abs($0) } : nil),
                                                 type: info.type, count: t.values.count)
            XCTAssertEqual(try g.dequantize(info), expected, t.name)
        }
        // The loader's un-permuted q equals the HF q up to quantisation (rows in the right order).
        let back = try loadGGUF(path: out), name = try XCTUnwrap(exported.first { $0.ropeHeads != nil }?.hf)
        let a = try XCTUnwrap(back.tensors[name]).data, b = try XCTUnwrap(ck.tensors[name]).data
        let maxErr = zip(a, b).map { abs($0 - $1) }.max()!, scale = b.map(abs).max()!
        XCTAssertLessThan(maxErr, scale / 6, "rows out of order would give errors of the weights' size")
    }

    /// --prune-nonpositive: exactly the weights with signed score ≤ 0 are zero in the output (F32, so exact), in
    /// quantised and kept-F32 tensors alike (q rows un-permuted by our loader), the rest unchanged; the count is reported.
    func testPruneNonPositiveZeroesExactlyTheNonPositiveScores() throws {
        let ck = try tiny(), out = try Scratch.dir(self).appendingPathComponent("p.gguf").path
        var rng = SeededRNG(seed: 5)
        var scores: [String: Tensor] = [:], expectedPruned = 0, covered = 0
        for (name, t) in ck.tensors where t.shape.count == 2 && name.contains("layers.0.") {
            let s = (0..<t.count).map { k in k % 7 == 0 ? 0 : Float(rng.uniform() - 0.4) }
            scores[name] = Tensor(shape: t.shape, data: s)
            expectedPruned += s.filter { $0 <= 0 }.count; covered += s.count
        }
        let map = ScoreMap(tensors: scores, source: "signed.safetensors")
        let r = try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 32, types: [.f32], importance: .scores(ScoreMapBox(map)),
                                                                              weightedRounding: true, pruneNonPositive: true), carry: [], out: out)
        XCTAssertEqual(r.prunedWeights, expectedPruned)
        XCTAssertEqual(r.prunedFraction, Double(expectedPruned) / Double(covered), accuracy: 1e-12)
        let back = try loadGGUF(path: out)
        for (name, t) in ck.tensors {
            let got = try XCTUnwrap(back.tensors[name]).data
            if let s = scores[name] {
                XCTAssertEqual(got, zip(t.data, s.data).map { $1 <= 0 ? 0 : $0 }, name)
            } else {
                XCTAssertEqual(got, t.data, name)
            }
        }
        // Without a score file it is refused.
        XCTAssertThrowsError(try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 32, types: [.f32], importance: .magnitude,
                                                                                           weightedRounding: true, pruneNonPositive: true), carry: [], out: out + "2")) {
            XCTAssertEqual($0 as? QuantizationError, .pruneNeedsScores)
        }
    }

    /// A score file that leaves tensors out (attribution scores decoder weights, not the embedding): each uncovered
    /// tensor is weighted by |W| scaled to the covered weights' mean |score| — its bytes are the codec's encoding with
    /// exactly that importance, its allocation errors are measured with it — and the report names it.
    func testTensorsWithoutScoresAreWeightedByScaledMagnitude() throws {
        let ck = try tiny(), out = try Scratch.dir(self).appendingPathComponent("u.gguf").path
        var rng = SeededRNG(seed: 9)
        var scores: [String: Tensor] = [:]
        for (name, t) in ck.tensors where t.shape.count == 2 && name.contains("layers.0.") {
            scores[name] = Tensor(shape: t.shape, data: (0..<t.count).map { _ in Float(rng.uniform() - 0.3) * 0.01 })
        }
        let map = ScoreMap(tensors: scores, source: "partial.safetensors")
        let r = try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 6, types: [.q8_0, .q4_1, .q4_0], importance: .scores(ScoreMapBox(map)),
                                                                              weightedRounding: true), carry: [], out: out)
        let exported = try GGUFLlamaExport.tensors(ck)
        let eligible = exported.filter { $0.dims.count == 2 && $0.dims[0] % 32 == 0 }
        let covered = eligible.filter { scores[$0.hf] != nil }, uncovered = eligible.filter { scores[$0.hf] == nil }
        XCTAssertFalse(covered.isEmpty); XCTAssertTrue(uncovered.contains { $0.hf == "model.embed_tokens.weight" })
        XCTAssertEqual(r.unscoredTensors, uncovered.map(\.hf))
        // Mean |score| over the covered weights (q/k permutation does not change it).
        let all = covered.flatMap { scores[$0.hf]!.data.map { Double(abs($0)) } }
        let mean = all.reduce(0, +) / Double(all.count)
        let g = try GGUFFile(path: out)
        for t in uncovered {
            let meanAbs = t.values.reduce(0.0) { $0 + Double(abs($1)) } / Double(t.values.count)
            let c = Float(mean / meanAbs)
            let imp = t.values.map { abs($0) * c }
            XCTAssertEqual(imp.reduce(0.0) { $0 + Double($1) } / Double(imp.count), mean, accuracy: mean * 1e-5, "\(t.hf): mean importance = covered mean")
            let info = try XCTUnwrap(g.tensor(named: t.name))
            let enc = GGMLBlockCodec.encodeMeasured(t.values, type: info.type, importance: imp, search: MixedPrecisionQuantizer.searched(info.type))
            XCTAssertEqual(try g.dequantize(info), GGMLBlockCodec.decode(enc.bytes, type: info.type, count: t.values.count), t.hf)
            // The allocation saw the errors under that importance, for every candidate type.
            let choice = try XCTUnwrap(r.tensors.first { $0.name == t.name })
            for type in [GGMLType.q8_0, .q4_1, .q4_0] {
                let e = GGMLBlockCodec.encodeMeasured(t.values, type: type, importance: imp, search: MixedPrecisionQuantizer.searched(type)).error
                XCTAssertEqual(choice.errors[type.name], e, "\(t.hf) \(type)")
            }
        }
    }

    func testScoresForAnotherModelAndBadBudgetAreRefused() throws {
        let ck = try tiny(), out = try Scratch.dir(self).appendingPathComponent("x.gguf").path
        let name = try XCTUnwrap(ck.tensors.keys.sorted().first { ck.tensors[$0]!.shape.count == 2 })
        let wrong = ScoreMap(tensors: [name: Tensor(shape: [3, 5], data: [Float](repeating: 1, count: 15))], source: "s.safetensors")
        XCTAssertThrowsError(try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 5, types: [.q8_0, .q4_0], importance: .scores(ScoreMapBox(wrong)), weightedRounding: true), carry: [], out: out)) {
            XCTAssertEqual($0 as? QuantizationError, .scoreShape(file: "s.safetensors", tensor: name, expected: ck.tensors[name]!.shape, found: [3, 5]))
        }
        let none = ScoreMap(tensors: ["other": Tensor(shape: [1], data: [1])], source: "s.safetensors")
        XCTAssertThrowsError(try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 5, types: [.q8_0, .q4_0], importance: .scores(ScoreMapBox(none)), weightedRounding: true), carry: [], out: out)) {
            XCTAssertEqual($0 as? QuantizationError, .noScoresForModel(file: "s.safetensors"))
        }
        for b in [4.0, 9.0] {
            XCTAssertThrowsError(try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: b, types: [.q8_0, .q4_0], importance: .plain, weightedRounding: true), carry: [], out: out)) {
                XCTAssertEqual($0 as? QuantizationError, .budgetOutOfRange(bits: b, min: 4.5, max: 8.5))
            }
        }
        XCTAssertThrowsError(try QuantizationError.parseTypes("q4_0,q5_k", flag: "--types")) {
            XCTAssertEqual($0 as? QuantizationError, .unknownType(flag: "--types", value: "q5_k"))
        }
        XCTAssertEqual(try QuantizationError.parseTypes(" Q8_0,q4_1 ,f16", flag: "--types"), [.q8_0, .q4_1, .f16])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written")
    }
}

/// The committed GGUF golden (checked independently by tools/quantize_check.py with the `gguf` package): today's
/// quantiser reproduces it byte for byte, so a change of layout, rounding, allocation or metadata shows here.
final class QuantizeGoldenTests: XCTestCase {
    func testReproducesTheCheckedGolden() throws {
        let ck = try ModelLoader.checkpoint(try Fixtures.path("tiny-llama-bias"))
        let out = try Scratch.dir(self).appendingPathComponent("tiny.gguf").path
        let r = try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 6, types: [.q8_0, .q4_1, .q4_0], importance: .magnitude,
                                                                              weightedRounding: true), carry: [], out: out)
        XCTAssertEqual(r.achievedBitsPerWeight, 5.9375)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)),
                       try Data(contentsOf: URL(fileURLWithPath: try Fixtures.path("goldens/quantize_tiny_llama_bias.gguf"))))
    }
}
