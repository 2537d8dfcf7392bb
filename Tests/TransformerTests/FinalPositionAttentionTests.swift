import Foundation
import XCTest
@testable import Transformer
import TestSupport

/// `Model.finalPositionAttention` (hook_pattern of the last query row, written by the attention kernel during
/// the real forward) against an independent recomputation: softmax(q_last · k_jᵀ / √hd) in Double from the
/// hooked, post-RoPE q and k of each layer (TransformerLens' hook_q / hook_k), query head h reading kv head
/// h / (nHeads / nKVHeads). Packed sequences of different lengths must each give their own pattern.
final class FinalPositionAttentionTests: XCTestCase {
    /// [layers, heads, T] recomputed from the hooked q/k of a plain forward of one sequence.
    func reference(_ m: Model, _ ids: [Int]) -> [Double] {
        let c = m.config, t = ids.count, hd = c.headDim, group = c.nHeads / c.nKVHeads
        let seg = [Segment(rowStart: 0, count: t, pos0: 0, cache: KVCache(config: c, capacity: t))]
        var x = m.embedRows(ids, segments: seg)
        var out = [Double](repeating: 0, count: c.nLayers * c.nHeads * t)
        for l in 0..<c.nLayers {
            let b = BlockBuffers(config: c, rows: t)          // every hook kept: b.q / b.k are post-RoPE
            m.runBlock(l, &x, segments: seg, buffers: b)
            for h in 0..<c.nHeads {
                let q = b.q.p + (t - 1) * c.qDim + h * hd
                var s = (0..<t).map { j -> Double in
                    let k = b.k.p + j * c.kvDim + (h / group) * hd
                    var dot = 0.0
                    for e in 0..<hd { dot += Double(q[e]) * Double(k[e]) }
                    return dot / Double(hd).squareRoot()
                }
                let mx = s.max()!
                s = s.map { exp($0 - mx) }
                let z = s.reduce(0, +)
                for j in 0..<t { out[(l * c.nHeads + h) * t + j] = s[j] / z }
            }
        }
        return out
    }

    func check(_ m: Model, _ batch: [[Int]], tolerance: Double, _ tag: String) {
        let a = m.finalPositionAttention(batch)
        XCTAssertEqual(a.lengths, batch.map(\.count))
        for (i, ids) in batch.enumerated() {
            let ref = reference(m, ids)
            var maxErr = 0.0
            for l in 0..<m.config.nLayers {
                for h in 0..<m.config.nHeads {
                    var sum = 0.0
                    for j in 0..<ids.count {
                        let got = Double(a.weight(sequence: i, layer: l, head: h, key: j))
                        maxErr = max(maxErr, abs(got - ref[(l * m.config.nHeads + h) * ids.count + j]))
                        sum += got
                    }
                    XCTAssertEqual(sum, 1, accuracy: 1e-5, "\(tag) seq \(i) a\(l).h\(h): the row sums to 1")
                }
            }
            XCTAssertLessThan(maxErr, tolerance, "\(tag) seq \(i) (T = \(ids.count)): max |Δp| against softmax(qkᵀ/√d)")
            // Not vacuous: the pattern is not uniform.
            if ids.count > 2 {
                let row = (0..<ids.count).map { a.weight(sequence: i, layer: 0, head: 0, key: $0) }
                XCTAssertGreaterThan(row.max()! - row.min()!, 1e-3, "\(tag): a non-uniform pattern")
            }
        }
    }

    func testTinyFamiliesPackedBatchAgainstRecomputedSoftmax() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let m = try Model.build(from: ModelLoader.loadHFDirectory(try Fixtures.path(name)))
            let t = Fixtures.tokens
            // Different lengths packed in one forward (each attends only to itself), and a one-token sequence.
            check(m, [t, Array(t.prefix(5)), [t[3]], Array(t.reversed())], tolerance: 1e-5, name)
        }
    }

    /// A sequence spanning several 128-row query blocks: the final row sits in the last, partial block.
    func testMultiBlockSequence() throws {
        let p = try Assets.path("stories260K/hf")            // XCTSkip (printed) when the shared assets are absent
        let m = try Model.build(from: ModelLoader.loadHFDirectory(p))
        var rng = SeededRNG(seed: 11)
        let long = [1] + (1..<(2 * queryBlock + 17)).map { _ in Int(rng.next() % UInt64(m.config.vocabSize - 3)) + 3 }
        check(m, [long, Array(long.prefix(40))], tolerance: 1e-5, "stories260K")
    }
}
