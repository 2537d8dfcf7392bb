import Foundation
import XCTest
@testable import Transformer

/// The pieces of the blocked causal attention: the exp for non-positive inputs,
/// the diagonal strips, the masked exp that zeroes exactly what a strip reads,
/// and the dynamic dealing of work items.
final class AttentionKernelTests: XCTestCase {
    func testExpNonPositiveMatchesExpAndUnderflowsToZero() {
        var worst = 0.0
        var x: Float = -103
        while x <= 0 {
            let v = SIMD8<Float>((0..<8).map { x + Float($0) * 1e-3 })
            let got = expNonPositiveSIMD(v), general = expSIMD(v)
            for i in 0..<8 where v[i] <= 0 {
                let want = Foundation.exp(Double(v[i]))
                XCTAssertEqual(got[i], general[i], "same polynomial as expSIMD at \(v[i])")
                if want > 1e-37 { worst = max(worst, abs(Double(got[i]) - want) / want) }
            }
            x += 0.173
        }
        XCTAssertLessThan(worst, 3e-7, "worst relative error \(worst)")
        XCTAssertEqual(expNonPositiveSIMD(SIMD8(repeating: 0))[0], 1)
        let tiny = expNonPositiveSIMD(SIMD8<Float>(-200, -1000, -89.5, -150, -88.8, -1e6, -90, -120))
        for i in 0..<8 { XCTAssertLessThan(tiny[i], 1e-38, "underflow lane \(i) = \(tiny[i])") }
        XCTAssertEqual(tiny[0], 0); XCTAssertEqual(tiny[1], 0); XCTAssertEqual(tiny[5], 0)
    }

    func testDiagonalStripsCoverTheBlockAndStopAtTheirLastKey() {
        for (rows, keys, height) in [(128, 512, 16), (128, 128, 64), (72, 222, 16), (5, 5, 16), (130, 300, 64)] {
            var next = 0
            diagonalStrips(rows: rows, keys: keys, height: height) { r0, r1, kEnd in
                XCTAssertEqual(r0, next, "strips are contiguous")
                XCTAssertLessThanOrEqual(r1 - r0, height)
                XCTAssertGreaterThan(r1, r0)
                // The strip's last row sits at keys − rows + r1 − 1 and sees exactly kEnd keys.
                XCTAssertEqual(kEnd, keys - rows + r1)
                next = r1
            }
            XCTAssertEqual(next, rows, "rows \(rows) keys \(keys) height \(height)")
        }
    }

    /// Key strips for the transposed products: together they cover every key once,
    /// and a strip's row range starts at the first row that sees its first key.
    func testDiagonalKeyStripsCoverEveryKeyFromItsFirstRow() {
        for (rows, keys, height) in [(128, 512, 64), (128, 128, 64), (72, 222, 64), (5, 5, 64), (130, 300, 16)] {
            var next = 0, strips = 0
            diagonalKeyStrips(rows: rows, keys: keys, height: height) { k0, k1, rStart in
                XCTAssertEqual(k0, next, "key strips are contiguous")
                XCTAssertGreaterThan(k1, k0)
                strips += 1
                // Row r (absolute position keys − rows + r) sees key k iff k ≤ keys − rows + r.
                let firstRowSeeingK0 = max(0, k0 - (keys - rows))
                XCTAssertEqual(rStart, firstRowSeeingK0, "rows \(rows) keys \(keys) strip \(k0)..<\(k1)")
                if k0 >= keys - rows { XCTAssertLessThanOrEqual(k1 - k0, height) }
                next = k1
            }
            XCTAssertEqual(next, keys)
            XCTAssertEqual(strips, (keys > rows ? 1 : 0) + (rows + height - 1) / height)
        }
    }

    func testMaskedExpZeroesWhatItsStripReadsAndNothingElse() {
        let rows = 40, firstPos = 20, keys = firstPos + rows, strip = 16
        var rng = SeededRNG(seed: 9)
        let raw = (0..<(rows * keys)).map { _ in Float(Int(rng.next() % 2001) - 1000) / 250 }
        var s = raw
        var sums = [Float](repeating: 0, count: rows)
        s.ptr { sp in sums.ptr { maskedExp(sp, rows: rows, keys: keys, firstPos: firstPos, stripRows: strip, sums: $0) } }
        for r in 0..<rows {
            let visible = firstPos + r + 1
            let stripEnd = keys - rows + min((r / strip + 1) * strip, rows)
            let row = (0..<visible).map { Double(raw[r * keys + $0]) }, m = row.max()!
            let e = row.map { Foundation.exp($0 - m) }
            XCTAssertEqual(Double(sums[r]), e.reduce(0, +), accuracy: 1e-5 * e.reduce(0, +), "row \(r) sum")
            for j in 0..<visible { XCTAssertEqual(Double(s[r * keys + j]), e[j], accuracy: 1e-6, "row \(r) key \(j)") }
            for j in visible..<stripEnd { XCTAssertEqual(s[r * keys + j], 0, "row \(r) masked key \(j) read by its strip") }
            for j in stripEnd..<keys { XCTAssertEqual(s[r * keys + j], raw[r * keys + j], "row \(r) key \(j) is never read: untouched") }
        }
    }

    func testDynamicWorkersRunEveryItemOnceOnAValidWorker() {
        let costs = (0..<37).map { ($0 * 7919) % 13 + 1 }
        var hits = [Int](repeating: 0, count: costs.count)
        var workerOK = true
        let lock = NSLock()
        BLAS.dynamicWorkers(costs: costs) { worker, item in
            lock.lock(); hits[item] += 1; if worker < 0 || worker >= max(BLAS.ways, 1) { workerOK = false }; lock.unlock()
        }
        XCTAssertEqual(hits, [Int](repeating: 1, count: costs.count))
        XCTAssertTrue(workerOK)
    }
}
