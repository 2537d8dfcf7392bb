import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Sequential Wanda against a by-hand replay of the reference procedure
//
// The reference (locuslab/wanda `prune_wanda`), replayed here with nothing from
// SequentialWanda or WandaScorer: for each layer l, a fresh full forward of the
// model as pruned so far, Σ_t x_tj² at the inputs of layer l's linears summed by
// hand in Double, scores |W_ij|·‖X_j‖, that layer's mask through the public
// `Pruner.mask` (restricted with a --layers regex), applied before layer l+1.

final class SequentialWandaTests: XCTestCase {
    typealias F = AttributionFixtures

    func samples(_ model: Model) -> [AttributionSample] {
        [11, 7, 16].enumerated().map { k, n in
            AttributionSample(label: "s\(k)", tokens: F.tokens(n, vocab: model.config.vocabSize, seed: UInt64(31 + k)),
                              promptLength: n, explain: .nextToken(from: 0))
        }
    }

    /// The inputs of every linear of block `l` for one sequence, from a fresh forward of `model`.
    func layerInputs(_ model: Model, _ tokens: [Int], layer l: Int) -> BlockBuffers {
        let c = model.config, n = tokens.count
        let seg = [Segment(rowStart: 0, count: n, pos0: 0, cache: KVCache(config: c, capacity: n))]
        var x = model.embedRows(tokens, segments: seg)
        let b = BlockBuffers(config: c, rows: n)
        for j in 0...l { model.runBlock(j, &x, segments: seg, buffers: b) }
        return b
    }

    func replay(_ model: Model, _ ss: [AttributionSample], _ spec: PruneSpec) throws -> [TensorMask] {
        var masks: [TensorMask] = []
        for blk in model.blocks {
            let acts = ss.map { layerInputs(model, $0.tokens, layer: blk.index) }
            var t: [String: Tensor] = [:]
            let inputs: [(Linear, KeyPath<BlockBuffers, Buffer>)] =
                [(blk.q, \.normed1), (blk.k, \.normed1), (blk.v, \.normed1), (blk.o, \.z), (blk.up, \.normed2), (blk.down, \.post)]
                + (blk.gate.map { [($0, \BlockBuffers.normed2)] } ?? [])
            for (lin, kp) in inputs {
                var sq = [Double](repeating: 0, count: lin.inDim)
                for a in acts {
                    let x = a[keyPath: kp]
                    for r in 0..<a.rows { for j in 0..<lin.inDim { let v = Double(x[r * lin.inDim + j]); sq[j] += v * v } }
                }
                let norm = sq.map { Float($0.squareRoot()) }
                t[lin.name] = Tensor(shape: [lin.outDim, lin.inDim],
                                     data: lin.weight.enumerated().map { abs($0.element) * norm[$0.offset % lin.inDim] })
            }
            let layerSpec = try PruneSpec(scheme: spec.scheme, amount: spec.amount, rank: spec.rank,
                                          layers: "layers\\.\(blk.index)\\.")
            let m = try Pruner.mask(model, scores: ScoreMap(tensors: t, source: "replay"), spec: layerSpec)
            try m.apply(to: model)
            masks += m.tensors
        }
        return masks
    }

    func testMatchesReplayOfTheReferenceProcedureWithAndWithoutCache() throws {
        for (name, scheme) in [("tiny-llama-bias", PruneScheme.row), ("tiny-opt", .row), ("tiny-llama-bias", .nm(n: 2, m: 4))] {
            let spec = try PruneSpec(scheme: scheme, amount: scheme == .row ? .fraction(0.5) : nil)
            let reference = try F.tiny(name)
            let ss = samples(reference)
            let expected = try replay(reference, ss, spec)
            // All inputs kept, none kept (every layer input recomputed), and one of three kept.
            let oneSample = ss[0].tokens.count * reference.config.dModel * 4
            for cacheBytes in [1 << 30, 0, oneSample] {
                let model = try F.tiny(name)
                let r = try SequentialWanda.prune(model, samples: ss, spec: spec, cacheBytes: cacheBytes)
                XCTAssertEqual(r.mask.tensors.map(\.name), expected.map(\.name), "\(name) model order")
                XCTAssertEqual(r.mask.tensors, expected, "\(name) \(scheme) cache \(cacheBytes)")
                XCTAssertEqual(r.summary.cachedSamples, cacheBytes == 0 ? 0 : cacheBytes == oneSample ? 1 : 3)
                XCTAssertEqual(r.summary.tokens, 34)
                for (a, b) in zip(model.linears, reference.linears) { XCTAssertEqual(a.weight, b.weight, "\(name) \(a.name) pruned weights") }
                if scheme == .row {
                    for m in r.mask.tensors { XCTAssertEqual(m.pruned, m.shape[0] * (m.shape[1] / 2), m.name) }
                }
            }
        }
    }

    func testFirstLayerAsDenseWandaLaterLayersDiffer() throws {
        let spec = try PruneSpec(scheme: .row, amount: .fraction(0.5))
        let dense = try F.tiny("tiny-llama-bias")
        let ss = samples(dense)
        let r = try AttributionRunner.scores(model: dense, samples: ss, settings: F.settings(.wanda, samples: ss.count))
        let oneShot = try Pruner.mask(dense, scores: ScoreMap(tensors: r.tensors, source: "wanda"), spec: spec)
        let seq = try SequentialWanda.prune(try F.tiny("tiny-llama-bias"), samples: ss, spec: spec, cacheBytes: 1 << 30).mask
        for (a, b) in zip(oneShot.tensors, seq.tensors) where a.name.contains("layers.0.") { XCTAssertEqual(a, b, a.name) }
        // Layer 1 sees the pruned layer 0: its statistics, hence some row rankings, change.
        let later = zip(oneShot.tensors, seq.tensors).filter { !$0.0.name.contains("layers.0.") }
        XCTAssertTrue(later.contains { $0.0 != $0.1 }, "layer 1 masks should differ from dense-activation Wanda")
    }

    func testSchemesAcrossLayersAreRefused() throws {
        for scheme in [PruneScheme.global, .neurons, .heads] {
            let spec = try PruneSpec(scheme: scheme, amount: .fraction(0.2))
            XCTAssertThrowsError(try SequentialWanda.validate(spec)) {
                guard case .invalidArgument(let o, let why)? = $0 as? PruneError else { return XCTFail("\($0)") }
                XCTAssertEqual(o, "sequential"); XCTAssertTrue(why.contains("\(scheme)"), why)
            }
        }
        XCTAssertNoThrow(try SequentialWanda.validate(try PruneSpec(scheme: .layer, amount: .fraction(0.2))))
    }
}
