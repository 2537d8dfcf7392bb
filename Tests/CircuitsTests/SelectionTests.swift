import XCTest
@testable import Circuits

// MARK: - Exact selection

final class SelectionTests: XCTestCase {

    /// Reference: indices of the k lowest by (key, flat index), via a full sort.
    func reference(_ v: [Float], k: Int, rank: RankMode) -> Set<Int> {
        let order = v.indices.sorted { (Selection.key(v[$0], rank), $0) < (Selection.key(v[$1], rank), $1) }
        return Set(order.prefix(k))
    }

    func testOrderKeysFollowScoreOrder() {
        let xs: [Float] = [-.infinity, -3, -1, -0.5, -Float.leastNonzeroMagnitude, -0, 0, Float.leastNonzeroMagnitude, 0.5, 1, 3, .infinity]
        for i in xs.indices.dropLast() {
            let (a, b) = (xs[i], xs[i + 1])
            if a == b { XCTAssertEqual(Selection.key(a, .signed), Selection.key(b, .signed), "±0 must tie") }
            else { XCTAssertLessThan(Selection.key(a, .signed), Selection.key(b, .signed), "\(a) < \(b)") }
            XCTAssertEqual(Selection.key(a, .abs) < Selection.key(b, .abs), abs(a) < abs(b), "|\(a)| vs |\(b)|")
        }
    }

    func testRadixThresholdMatchesSortWithAndWithoutTies() {
        for (seed, levels) in [(1 as UInt64, nil as Int?), (2, 3), (3, 1), (4, 50)] {
            let v = PruneTestKit.values(5000, seed: seed, levels: levels)
            for rank in RankMode.allCases {
                for k in [0, 1, 2, 777, 2500, 4999, 5000] {
                    let mask = v.withUnsafeBufferPointer { Selection.lowestMasks([$0], k: k, rank: rank)[0] }
                    let picked = Set(mask.indices.filter { mask[$0] == 0 })
                    XCTAssertEqual(picked.count, k, "exactly k (seed \(seed), levels \(levels ?? 0), k \(k), \(rank))")
                    XCTAssertEqual(picked, reference(v, k: k, rank: rank), "same set as a full sort with index tie-break")
                }
            }
        }
    }

    func testThresholdAcrossChunksBreaksTiesInFlatOrder() {
        // Every value equal: the first k in flat order across chunks must be taken.
        let a = [Float](repeating: 0.25, count: 7), b = [Float](repeating: -0.25, count: 5), c = [Float](repeating: 0.25, count: 4)
        let masks = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeBufferPointer { pc in
            Selection.lowestMasks([pa, pb, pc], k: 9, rank: .abs)
        } } }
        XCTAssertEqual(masks[0], [UInt8](repeating: 0, count: 7))
        XCTAssertEqual(masks[1], [0, 0, 1, 1, 1])
        XCTAssertEqual(masks[2], [1, 1, 1, 1])
        let t = a.withUnsafeBufferPointer { Selection.threshold([$0], k: 3, rank: .abs) }
        XCTAssertEqual(t?.below, 0); XCTAssertEqual(t?.ties, 3)
    }

    func testGlobalSelectionOverManyChunksEqualsSort() {
        let chunks = (0..<9).map { PruneTestKit.values(100 + 37 * $0, seed: 100 + UInt64($0), levels: 20) }
        let flat = chunks.flatMap { $0 }
        let k = flat.count / 3
        let masks = Pruner.withBuffers(chunks) { Selection.lowestMasks($0, k: k, rank: .signed) }
        let picked = Set(masks.flatMap { $0 }.indices.filter { masks.flatMap { $0 }[$0] == 0 })
        XCTAssertEqual(picked, reference(flat, k: k, rank: .signed))
    }

    func testIntroselectPartitionsExactly() {
        for n in [1, 2, 5, 17, 100, 1000, 4097] {
            let v = PruneTestKit.values(n, seed: UInt64(n), levels: 4)
            for k in Set([0, 1, n / 2, n - 1, n]) where k <= n {
                var keys = v.enumerated().map { Selection.composite($1, index: $0, .abs) }
                keys.withUnsafeMutableBufferPointer { Selection.partitionLowest($0.baseAddress!, count: n, k: k) }
                let got = Set(keys.prefix(k).map { Int($0 & 0xFFFF_FFFF) })
                XCTAssertEqual(got, reference(v, k: k, rank: .abs), "n \(n) k \(k)")
            }
        }
    }

    func testMedianOfMediansFallbackOnAdversarialInput() {
        // Sorted and organ-pipe inputs defeat naive pivots; the fallback must still be exact.
        for pattern in 0..<3 {
            let n = 20_000
            var keys: [UInt64] = (0..<n).map { i -> UInt64 in
                switch pattern {
                case 0: return UInt64(i)
                case 1: return UInt64(n - i)
                default: return UInt64(i < n / 2 ? i * 2 : (n - i) * 2 + 1)
                }
            }
            let sorted = keys.sorted()
            let k = n / 3
            keys.withUnsafeMutableBufferPointer { Selection.partitionLowest($0.baseAddress!, count: n, k: k) }
            XCTAssertEqual(Set(keys.prefix(k)), Set(sorted.prefix(k)), "pattern \(pattern)")
            var small = Array(keys.prefix(50))
            small.withUnsafeMutableBufferPointer { _ = Selection.medianOfMedians($0.baseAddress!, 0, 50) }
            XCTAssertEqual(Set(small), Set(keys.prefix(50)), "median of medians only permutes")
        }
    }

    func testMedianOfMediansPivotsAloneAreExact() {
        for n in [6, 50, 1001, 9999] {
            let v = PruneTestKit.values(n, seed: 40 + UInt64(n), levels: 9)
            for nth in Set([0, n / 3, n - 1]) {
                var keys = v.enumerated().map { Selection.composite($1, index: $0, .signed) }
                let sorted = keys.sorted()
                keys.withUnsafeMutableBufferPointer { Selection.nthElement($0.baseAddress!, 0, n, nth, medianOfMediansOnly: true) }
                XCTAssertEqual(keys[nth], sorted[nth], "n \(n) nth \(nth)")
                XCTAssertTrue(keys[..<nth].allSatisfy { $0 < keys[nth] } && keys[(nth + 1)...].allSatisfy { $0 > keys[nth] })
            }
        }
    }

    func testLowestIndices() {
        XCTAssertEqual(Selection.lowestIndices([3, -1, 0.5, -0.5, 2], k: 2, rank: .abs), [2, 3])
        XCTAssertEqual(Selection.lowestIndices([3, -1, 0.5, -0.5, 2], k: 2, rank: .signed), [1, 3])
        XCTAssertEqual(Selection.lowestIndices([1, 1, 1, 1], k: 3, rank: .abs), [0, 1, 2])
    }

    func testRadixSelectIsLinearNotASort() {
        // 1M values: the radix path must be far cheaper than sorting (two histogram passes).
        let v = PruneTestKit.values(1 << 20, seed: 9)
        let t0 = Date()
        let t = v.withUnsafeBufferPointer { Selection.threshold([$0], k: 1 << 19, rank: .abs) }
        let radix = Date().timeIntervalSince(t0)
        XCTAssertNotNil(t)
        let t1 = Date()
        _ = v.map { abs($0) }.sorted()
        let sort = Date().timeIntervalSince(t1)
        print(String(format: "radix threshold %.3f s vs full sort %.3f s over 1M values", radix, sort))
        XCTAssertLessThan(radix, sort)
    }
}
