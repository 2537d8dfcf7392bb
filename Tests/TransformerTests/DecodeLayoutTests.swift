import Foundation
import XCTest
@testable import Transformer

/// Decode keeps transposed copies of the weights with out ≥ in (q, o, gate, up,
/// fc1, lm_head) and runs them through the row-split transposed sgemv. Checks
/// the kernel against a double-precision reference, the decode steps against
/// the plain ones, and that the copies never outlive a change to their weight.
final class DecodeLayoutTests: XCTestCase {
    private typealias K = LRPTestKit

    /// Big enough that gemvTRows splits (n·k ≥ 2¹⁵) for q, o, gate, up and lm_head.
    private func llama() throws -> Model {
        try K.randomLlama(seed: 31, layers: 2, bias: true, d: 64, nHeads: 4, nKV: 2, headDim: 16, dFF: 192, vocab: 600)
    }

    private func opt() throws -> Model { try K.randomOPT(seed: 32, layers: 2, d: 64, nHeads: 4, dFF: 256, vocab: 600) }

    func testRowSplitTransposedGemvMatchesReference() {
        var rng = SeededRNG(seed: 3)
        let n = 300, k = 517                                   // odd k: halves meet mid-row of y
        let a = (0..<(n * k)).map { _ in Float(rng.uniform() * 2 - 1) }
        let x = (0..<n).map { _ in Float(rng.uniform() * 2 - 1) }
        let y0 = (0..<k).map { _ in Float(rng.uniform() * 2 - 1) }
        for beta: Float in [0, 1] {
            var y = y0
            a.withUnsafeBufferPointer { ap in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                BLAS.gemvTRows(n: n, k: k, ap.baseAddress!, lda: k, xp.baseAddress!, beta: beta, yp.baseAddress!)
            } } }
            var maxErr = 0.0
            for j in 0..<k {
                var s = Double(beta) * Double(y0[j])
                for i in 0..<n { s += Double(a[i * k + j]) * Double(x[i]) }
                maxErr = max(maxErr, abs(s - Double(y[j])))
            }
            XCTAssertLessThan(maxErr, 1e-4, "beta \(beta): max |Δ| = \(maxErr)")
        }
    }

    /// Prefill 5 tokens, then 10 single-token steps: with the layout and without.
    private func decodeLogits(_ m: Model, layout: Bool, ids: [Int]) -> [[Float]] {
        if layout { XCTAssertTrue(m.prepareDecodeLayout()) } else { m.releaseDecodeLayout() }
        let cache = KVCache(config: m.config, capacity: ids.count)
        var out = [m.step(Array(ids.prefix(5)), cache: cache)]
        for t in ids.dropFirst(5) { out.append(m.step([t], cache: cache)) }
        return out
    }

    func testDecodeWithTransposedCopiesEqualsPlainDecode() throws {
        for (name, m) in [("llama", try llama()), ("opt", try opt())] {
            var rng = SeededRNG(seed: 9)
            let ids = (0..<15).map { _ in Int(rng.next() % UInt64(m.config.vocabSize)) }
            let plain = decodeLogits(m, layout: false, ids: ids)
            XCTAssertFalse(m.hasDecodeLayout)
            let fast = decodeLogits(m, layout: true, ids: ids)
            XCTAssertTrue(m.hasDecodeLayout)
            var maxErr: Float = 0
            for (p, f) in zip(plain, fast) { for j in p.indices { maxErr = max(maxErr, abs(p[j] - f[j])) } }
            XCTAssertLessThan(maxErr, 1e-4, "\(name): max |Δlogit| = \(maxErr)")
            XCTAssertGreaterThan(plain.last!.map(abs).max()!, 0.1, "\(name): logits are not trivially zero")
        }
    }

    func testLayoutCoversExactlyTheWeightsWithOutAtLeastIn() throws {
        let m = try llama()
        let c = m.config
        XCTAssertTrue(m.prepareDecodeLayout())
        for l in m.linears {
            let want = l.outDim >= l.inDim
            XCTAssertEqual(l.decodeT != nil, want, l.name)
            if let t = l.decodeT {   // Wᵀ [in, out]
                XCTAssertEqual(t[3 * l.outDim + 2], l.weight[2 * l.inDim + 3], l.name)
            }
        }
        XCTAssertNotNil(m.unembeddingT)
        // q and o (64×64), gate and up (192×64) per layer, plus lm_head (600×64); k, v (32×64) and down (64×192) stay.
        let perLayer = 64 * 64 * 2 + 192 * 64 * 2
        XCTAssertEqual(m.decodeLayoutBytes, 4 * (c.nLayers * perLayer + 600 * 64))
    }

    func testWritingAWeightDropsItsCopy() throws {
        let m = try llama()
        var rng = SeededRNG(seed: 4)
        let ids = (0..<8).map { _ in Int(rng.next() % 600) }
        XCTAssertTrue(m.prepareDecodeLayout())
        let up = m.blocks[1].up
        up.weight.withUnsafeMutableBufferPointer { w in for j in 0..<(5 * up.inDim) { w[j] = 0 } }   // prune 5 rows
        XCTAssertNil(up.decodeT, "an in-place write must drop the stale copy")
        XCTAssertNotNil(m.blocks[1].gate!.decodeT, "other weights keep theirs")
        XCTAssertFalse(m.hasDecodeLayout)
        m.lmHead![7] += 1
        XCTAssertNil(m.unembeddingT)
        // Decode now reads the new weights: it equals the full forward of the pruned model.
        let cache = KVCache(config: m.config, capacity: ids.count)
        _ = m.step(Array(ids.prefix(7)), cache: cache)
        let last = m.step([ids[7]], cache: cache)
        let full = m.forward(ids)
        let v = m.config.vocabSize
        var maxErr: Float = 0
        for j in 0..<v { maxErr = max(maxErr, abs(last[j] - full[7 * v + j])) }
        XCTAssertLessThan(maxErr, 1e-4)
        XCTAssertTrue(m.prepareDecodeLayout(), "rebuilding fills the dropped copies")
        XCTAssertTrue(m.hasDecodeLayout)
        XCTAssertEqual(up.decodeT?[0 * up.outDim + 3], 0, "the rebuilt copy has the pruned row")
    }

    func testBudgetIsRespectedAndLRPReleasesTheCopies() throws {
        let m = try llama()
        XCTAssertFalse(m.prepareDecodeLayout(budget: m.decodeLayoutBytes - 1))
        XCTAssertTrue(m.linears.allSatisfy { $0.decodeT == nil } && m.unembeddingT == nil, "nothing built over budget")
        XCTAssertTrue(m.prepareDecodeLayout(budget: m.decodeLayoutBytes))
        _ = try m.lrp(tokens: [1, 5, 9, 13], explain: .nextToken(from: 0), sink: nil)
        XCTAssertTrue(m.linears.allSatisfy { $0.decodeT == nil } && m.unembeddingT == nil, "LRP frees the copies")
    }

    func testGenerateUsesTheLayoutOnlyWhenTheCallerMadeIt() throws {
        let m = try llama()
        var s = Sampler()
        let (plain, _) = try m.generate(prompt: [1, 2, 3], maxNewTokens: 20, sampler: &s)
        XCTAssertFalse(m.hasDecodeLayout, "generate never spends memory on its own")
        XCTAssertTrue(m.prepareDecodeLayout())
        let (fast, _) = try m.generate(prompt: [1, 2, 3], maxNewTokens: 20, sampler: &s)
        XCTAssertTrue(m.hasDecodeLayout, "and keeps what the caller made")
        XCTAssertEqual(fast, plain, "greedy tokens are the same with and without the layout")
        XCTAssertEqual(plain.count, 20)
    }
}
