import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// magnitude = |W|; wanda = |W_ij|·‖X_j‖₂ with ‖X_j‖ computed here independently from BlockBuffers;
/// activation = mean |post| per neuron and mean |z| per head.
final class AttributionBaselineTests: XCTestCase {
    typealias F = AttributionFixtures

    func samples(_ model: Model) -> [AttributionSample] {
        [9, 14].enumerated().map { k, n in
            AttributionSample(label: "s\(k)", tokens: F.tokens(n, vocab: model.config.vocabSize, seed: UInt64(7 + k)),
                              promptLength: n, explain: .nextToken(from: 0))
        }
    }

    /// Every block's buffers for one sequence, computed with a fresh forward (independent of the scorers).
    func activations(_ model: Model, _ tokens: [Int]) -> [BlockBuffers] {
        let c = model.config, n = tokens.count
        let seg = [Segment(rowStart: 0, count: n, pos0: 0, cache: KVCache(config: c, capacity: n))]
        var x = model.embedRows(tokens, segments: seg)
        return (0..<c.nLayers).map { l in
            let b = BlockBuffers(config: c, rows: n)
            model.runBlock(l, &x, segments: seg, buffers: b)
            return b
        }
    }

    func run(_ method: AttributionMethod, _ model: Model, _ ss: [AttributionSample]) throws -> SafetensorsFile {
        let out = try Scratch.dir(self).appendingPathComponent("\(method).safetensors").path
        _ = try AttributionRunner.run(model: model, samples: ss, settings: F.settings(method, samples: ss.count), out: out)
        return try SafetensorsFile(path: out)
    }

    func testMagnitudeIsAbsoluteWeight() throws {
        let model = try F.tiny("tiny-llama-bias")
        let f = try run(.magnitude, model, [])
        XCTAssertEqual(Set(f.names), Set(model.linears.map(\.name)), "per-weight tensors only")
        for l in model.linears { XCTAssertEqual(try f.tensor(l.name).data, l.weight.map { abs($0) }, l.name) }
        XCTAssertEqual(f.metadata["method"], "magnitude")
        XCTAssertEqual(f.metadata["prompts_sha256"], "n/a")
    }

    func testWandaEqualsHandComputation() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let model = try F.tiny(name)
            let ss = samples(model)
            let f = try run(.wanda, model, ss)
            let acts = ss.map { activations(model, $0.tokens) }
            XCTAssertEqual(Set(f.names), Set(model.linears.map(\.name)))
            for blk in model.blocks {
                // The input of each linear, by hand: q/k/v ← ln1 out, o ← z, gate/up (fc1) ← ln2 out, down (fc2) ← post.
                let inputs: [(Linear, KeyPath<BlockBuffers, Buffer>)] =
                    [(blk.q, \.normed1), (blk.k, \.normed1), (blk.v, \.normed1), (blk.o, \.z), (blk.up, \.normed2), (blk.down, \.post)]
                    + (blk.gate.map { [($0, \BlockBuffers.normed2)] } ?? [])
                XCTAssertEqual(inputs.count, blk.linears.count)
                for (lin, kp) in inputs {
                    var sq = [Double](repeating: 0, count: lin.inDim)
                    for a in acts {
                        let x = a[blk.index][keyPath: kp]
                        XCTAssertEqual(x.count, a[blk.index].rows * lin.inDim)
                        for t in 0..<a[blk.index].rows { for j in 0..<lin.inDim { sq[j] += Double(x[t * lin.inDim + j]) * Double(x[t * lin.inDim + j]) } }
                    }
                    let got = try f.tensor(lin.name).data
                    var worst = 0.0
                    for i in 0..<lin.outDim { for j in 0..<lin.inDim {
                        let expected = Double(abs(lin.weight[i * lin.inDim + j])) * sq[j].squareRoot()
                        worst = max(worst, abs(Double(got[i * lin.inDim + j]) - expected) / max(expected, 1e-12))
                    } }
                    XCTAssertLessThan(worst, 1e-5, "\(name) \(lin.name): relative error \(worst)")
                }
            }
        }
    }

    func testActivationIsMeanAbsolutePerNeuronAndHead() throws {
        let model = try F.tiny("tiny-llama-bias")
        let c = model.config
        let ss = samples(model)
        let f = try run(.activation, model, ss)
        XCTAssertEqual(f.names.count, 2 * c.nLayers, "no per-weight tensors for activation")
        let acts = ss.map { activations(model, $0.tokens) }
        let tokens = Double(ss.reduce(0) { $0 + $1.tokens.count })
        for l in 0..<c.nLayers {
            var neuron = [Double](repeating: 0, count: c.dFF), head = [Double](repeating: 0, count: c.nHeads)
            for a in acts {
                let b = a[l]
                for t in 0..<b.rows {
                    for j in 0..<c.dFF { neuron[j] += Double(abs(b.post[t * c.dFF + j])) }
                    for h in 0..<c.nHeads { for i in 0..<c.headDim { head[h] += Double(abs(b.z[t * c.qDim + h * c.headDim + i])) } }
                }
            }
            let gotN = try f.tensor(ScoreNames.neurons(model, layer: l)).data
            let gotH = try f.tensor(ScoreNames.heads(model, layer: l)).data
            for j in 0..<c.dFF { XCTAssertEqual(Double(gotN[j]), neuron[j] / tokens, accuracy: 1e-6 * max(1, neuron[j] / tokens)) }
            for h in 0..<c.nHeads {
                let e = head[h] / (tokens * Double(c.headDim))
                XCTAssertEqual(Double(gotH[h]), e, accuracy: 1e-6 * max(1, e))
            }
        }
    }
}
