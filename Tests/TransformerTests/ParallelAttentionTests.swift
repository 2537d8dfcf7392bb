import Foundation
import XCTest
@testable import Transformer
import TestSupport

/// The prefill attention runs as (query block × head) work items on both cores;
/// the decode path runs one query row at a time through sgemv. Checks that the
/// two agree on a sequence spanning several query blocks, and that the LRP pass
/// (whose δK/δV are gathered from per-worker buffers) is bitwise deterministic.
final class ParallelAttentionTests: XCTestCase {
    func stories260K() throws -> Model {
        let p = try Assets.path("stories260K/hf")
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

/// The fork-join team behind every split: each part runs exactly once, nested
/// or concurrent regions fall back to inline execution instead of deadlocking,
/// and parked helpers wake up for the next region.
final class WorkerTeamTests: XCTestCase {
    func testEveryPartRunsOnceAndHelpersWakeAfterParking() {
        let team = WorkerTeam(helpers: 1)
        for round in 0..<200 {
            var hits = [Int](repeating: 0, count: 2)
            hits.withUnsafeMutableBufferPointer { h in
                let p = h.baseAddress!
                team.run(parts: 2) { i in p[i] += 1 }
            }
            XCTAssertEqual(hits, [1, 1], "round \(round)")
            // Every 50 rounds let the helper pass its spin window and park.
            if round % 50 == 49 { Thread.sleep(forTimeInterval: 0.05) }
        }
    }

    /// Parts are claimed: with a helper that never gets a core the caller runs every part
    /// itself (once each, in order) instead of waiting for it.
    func testCallerRunsPartsNoHelperClaimed() {
        let team = WorkerTeam(helpers: 1, startThreads: false)
        for _ in 0..<3 {
            var order: [Int] = []
            team.run(parts: 2) { i in order.append(i) }
            XCTAssertEqual(order, [0, 1])
        }
    }

    /// With a running helper, parts are still run exactly once each, whichever thread
    /// claims them; parts that take long let the helper claim its part most of the time.
    func testClaimedPartsRunOnceUnderRaces() {
        let team = WorkerTeam(helpers: 1)
        var onHelper = 0
        for round in 0..<2000 {
            var hits = [Int](repeating: 0, count: 2)
            var threads = [Bool](repeating: false, count: 2)          // part ran on the caller
            let caller = pthread_self()
            hits.withUnsafeMutableBufferPointer { h in threads.withUnsafeMutableBufferPointer { t in
                let p = h.baseAddress!, tp = t.baseAddress!
                team.run(parts: 2) { i in
                    p[i] += 1
                    tp[i] = pthread_equal(pthread_self(), caller) != 0
                    if round % 2 == 0 { Thread.sleep(forTimeInterval: 0.0001) }   // part 0 slow: the helper has time to claim
                }
            } }
            XCTAssertEqual(hits, [1, 1], "round \(round)")
            XCTAssertTrue(threads[0], "part 0 is the caller's")
            if round % 2 == 0, !threads[1] { onHelper += 1 }
        }
        XCTAssertGreaterThan(onHelper, 0, "a running helper claims parts")
    }

    func testNestedAndOversizedRegionsRunInline() {
        let team = WorkerTeam(helpers: 1)
        var inner = [Int](repeating: 0, count: 4)
        inner.withUnsafeMutableBufferPointer { h in
            let p = h.baseAddress!
            team.run(parts: 2) { i in
                team.run(parts: 2) { j in p[2 * i + j] += 1 }           // nested: inline on this thread
            }
        }
        XCTAssertEqual(inner, [1, 1, 1, 1])
        var wide = [Int](repeating: 0, count: 5)
        wide.withUnsafeMutableBufferPointer { h in
            let p = h.baseAddress!
            team.run(parts: 5) { i in p[i] += i + 1 }                     // more parts than workers
        }
        XCTAssertEqual(wide, [1, 2, 3, 4, 5])
    }

    /// The helper's spin window halves when even its longest setting would have spun a gap out, and grows back on
    /// gaps the longest window catches — also from the floor, where each such gap is longer than the window (the
    /// helper parks) but not than the limit.
    func testSpinWindowGrowsBackAfterAPhaseOfLongGaps() {
        var w = SpinWindow()
        XCTAssertEqual(w.spins, SpinWindow.limit)
        for _ in 0..<12 { w.arrived(after: 10 * SpinWindow.limit) }        // long serial gaps: spinning is wasted
        XCTAssertEqual(w.spins, SpinWindow.floor)
        for _ in 0..<8 { w.arrived(after: 8 * SpinWindow.floor) }           // medium gaps: park at the floor, but catchable
        XCTAssertEqual(w.spins, SpinWindow.limit, "gaps the longest window catches grow it back")
        for _ in 0..<3 { w.arrived(after: 10) }
        XCTAssertEqual(w.spins, SpinWindow.limit, "capped")
        w.arrived(after: SpinWindow.limit + 1)
        XCTAssertEqual(w.spins, SpinWindow.limit / 2, "a gap longer than the limit halves it")
    }

    func testConcurrentCallersGetCorrectResults() {
        let team = WorkerTeam(helpers: 1)
        let callers = 4, rounds = 300
        var totals = [Int](repeating: 0, count: callers)
        totals.withUnsafeMutableBufferPointer { t in
            let tp = t.baseAddress!
            DispatchQueue.concurrentPerform(iterations: callers) { c in
                var sum = [Int](repeating: 0, count: 2)
                for _ in 0..<rounds {
                    sum.withUnsafeMutableBufferPointer { s in
                        let sp = s.baseAddress!
                        team.run(parts: 2) { i in sp[i] += 1 }
                    }
                }
                tp[c] = sum[0] + sum[1]
            }
        }
        XCTAssertEqual(totals, [Int](repeating: 2 * rounds, count: callers))
    }
}

/// The plain forward keeps no residual copies and adds o_proj/down straight
/// into the stream; keeping every hook must give the same hidden states, and
/// the kept hooks must hold what their names say.
final class BlockHooksTests: XCTestCase {
    func testForwardWithoutHooksEqualsForwardWithAllHooks() throws {
        for m in [try LRPTestKit.randomLlama(seed: 5, layers: 2, bias: true), try LRPTestKit.randomOPT(seed: 6, layers: 2)] {
            let c = m.config, n = 9
            let ids = LRPTestKit.distinctTokens(n, vocab: c.vocabSize, seed: 4)
            let seg = { [Segment(rowStart: 0, count: n, pos0: 0, cache: KVCache(config: c, capacity: n))] }
            var lean = m.embedRows(ids, segments: seg())
            var full = lean
            let blockInput = full
            let leanB = BlockBuffers(config: c, rows: n, hooks: [], sharedPost: SharedBuffer(count: n * c.dFF))
            let fullB = BlockBuffers(config: c, rows: n)
            m.runBlock(0, &lean, segments: seg(), buffers: leanB)
            m.runBlock(0, &full, segments: seg(), buffers: fullB)
            XCTAssertTrue(leanB.resid.isEmpty && leanB.mid.isEmpty && leanB.attnOut.isEmpty && leanB.post.isEmpty)
            for i in lean.indices { XCTAssertEqual(lean[i], full[i], accuracy: 1e-5, "\(c.family) x[\(i)]") }
            XCTAssertEqual(Array(fullB.resid), blockInput)
            for i in full.indices {                                       // out = mid + mlpOut, mid = resid + attnOut
                XCTAssertEqual(fullB.mid[i], blockInput[i] + fullB.attnOut[i], accuracy: 1e-5)
                XCTAssertEqual(full[i], fullB.mid[i] + fullB.mlpOut[i], accuracy: 1e-5)
            }
            // post recomputed for the backward equals the kept one.
            let again = Array(UnsafeBufferPointer(start: m.postForBackward(fullB), count: n * c.dFF))
            XCTAssertEqual(again, Array(fullB.post))
            let shared = Array(UnsafeBufferPointer(start: m.postForBackward(leanB), count: n * c.dFF))
            for i in shared.indices { XCTAssertEqual(shared[i], fullB.post[i], accuracy: 1e-5) }
        }
    }
}
