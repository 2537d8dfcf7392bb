import Foundation
import XCTest
@testable import Transformer

/// The prefill attention runs as (query block × head) work items on both cores;
/// the decode path runs one query row at a time through sgemv. Checks that the
/// two agree on a sequence spanning several query blocks, and that the LRP pass
/// (whose δK/δV are gathered from per-worker buffers) is bitwise deterministic.
final class ParallelAttentionTests: XCTestCase {
    func stories260K() throws -> Model {
        let p = try Fixture.stories260KHF()
        return try Model.build(from: ModelLoader.loadHFDirectory(p))
    }

    func tokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int] {
        var rng = SeededRNG(seed: seed)
        return [1] + (1..<n).map { _ in Int(rng.next() % UInt64(vocab - 3)) + 3 }
    }

    func testMultiBlockPrefillEqualsIncrementalDecode() throws {
        let m = try stories260K()
        let n = 3 * queryBlock + 17                                   // four query blocks, the last partial
        let ids = tokens(n, vocab: m.config.vocabSize, seed: 7)
        let full = m.forward(ids)                                     // [n, vocab]
        let cache = KVCache(config: m.config, capacity: n)
        let v = m.config.vocabSize
        var maxErr: Float = 0
        // Prefill the first 200 tokens in one go (blocked path, pos0 = 0), then decode one by one (pos0 > 0).
        let first = m.step(Array(ids.prefix(200)), cache: cache)
        for j in 0..<v { maxErr = max(maxErr, abs(first[j] - full[199 * v + j])) }
        for t in 200..<n {
            let row = m.step([ids[t]], cache: cache)
            for j in 0..<v { maxErr = max(maxErr, abs(row[j] - full[t * v + j])) }
        }
        XCTAssertLessThan(maxErr, 1e-3, "max |Δlogit| between blocked prefill and incremental decode = \(maxErr)")
        // A chunked prefill (pos0 > 0 with several rows) takes the blocked path with an offset.
        let cache2 = KVCache(config: m.config, capacity: n)
        _ = m.step(Array(ids.prefix(150)), cache: cache2)
        let chunk = m.step(Array(ids[150..<n]), cache: cache2)
        var err2: Float = 0
        for j in 0..<v { err2 = max(err2, abs(chunk[j] - full[(n - 1) * v + j])) }
        XCTAssertLessThan(err2, 1e-3, "chunked prefill vs full forward: \(err2)")
    }

    func testLRPIsBitwiseDeterministic() throws {
        let m = try stories260K()
        let ids = tokens(2 * queryBlock + 40, vocab: m.config.vocabSize, seed: 3)
        let a = SumSink(), b = SumSink()
        let ra = try m.lrp(tokens: ids, explain: .nextToken(from: 0), sink: a)
        let rb = try m.lrp(tokens: ids, explain: .nextToken(from: 0), sink: b)
        XCTAssertEqual(ra.tokenRelevance, rb.tokenRelevance)
        XCTAssertEqual(a.weights.count, m.linears.count)
        for (k, v) in a.weights { XCTAssertEqual(v, b.weights[k], "\(k) differs between identical runs") }
        XCTAssertNotEqual(ra.tokenRelevance.reduce(0, +), 0)
    }
}
