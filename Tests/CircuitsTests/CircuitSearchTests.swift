import Foundation
import XCTest
@testable import Circuits
import Transformer

// MARK: - Grid, bisection and top-k selection on synthetic curves

final class CircuitSearchTests: XCTestCase {
    func testGridIsLogSpacedFromNoneToAll() {
        let g = CircuitSearch.grid(points: 6, smallest: 1e-4)
        XCTAssertEqual(g.count, 6)
        XCTAssertEqual(g[0], 0); XCTAssertEqual(g[5], 1)
        for (x, e) in zip(g[1...], [1e-4, 1e-3, 1e-2, 1e-1, 1]) { XCTAssertEqual(x, e, accuracy: e * 1e-12) }
        XCTAssertEqual(CircuitSearch.count(fraction: 0, total: 100), 0)
        XCTAssertEqual(CircuitSearch.count(fraction: 1e-9, total: 100), 1)
        XCTAssertEqual(CircuitSearch.count(fraction: 0.255, total: 100), 26)
        XCTAssertEqual(CircuitSearch.count(fraction: 1, total: 100), 100)
    }

    func testBisectionFindsTheCrossingOfAMonotoneCurve() throws {
        // f(k) = 1 − exp(−k / 300): crosses 0.9 between k = 690 (0.89974) and 691 (0.90004).
        let f = { (k: Int) -> Double in 1 - exp(-Double(k) / 300) }
        let c = try XCTUnwrap(CircuitSearch.bisect(lo: 0, hi: 5000, threshold: 0.9, f: f))
        XCTAssertEqual(c.count, 691)
        XCTAssertGreaterThanOrEqual(c.f, 0.9); XCTAssertLessThan(f(c.count - 1), 0.9)
        XCTAssertLessThanOrEqual(c.evaluations, 2 + Int(ceil(log2(5000.0))))
        // A step: the first k at the step.
        XCTAssertEqual(CircuitSearch.bisect(lo: 3, hi: 77, threshold: 0.5) { $0 >= 42 ? 1 : 0 }?.count, 42)
        // Already faithful at lo; never faithful (the full model misses the threshold).
        XCTAssertEqual(CircuitSearch.bisect(lo: 10, hi: 20, threshold: 0.1) { _ in 0.5 }, .init(count: 10, f: 0.5, evaluations: 2))
        XCTAssertNil(CircuitSearch.bisect(lo: 0, hi: 20, threshold: 0.9) { Double($0) / 100 })
    }

    func testBisectionOnANoisyCurveReturnsALocalCrossing() throws {
        var rng = SeededRNG(seed: 3)
        let noise = (0...1000).map { _ in Double(rng.next() % 1000) / 1000 * 0.1 - 0.05 }
        let f = { (k: Int) -> Double in Double(k) / 1000 + noise[k] }
        let c = try XCTUnwrap(CircuitSearch.bisect(lo: 0, hi: 1000, threshold: 0.6, f: f))
        XCTAssertGreaterThanOrEqual(f(c.count), 0.6); XCTAssertLessThan(f(c.count - 1), 0.6)
        XCTAssertEqual(Double(c.count) / 1000, 0.6, accuracy: 0.06)
    }

    func testTopKIsGlobalAndDeterministic() {
        let s: [[Float]] = [[0.1, 0.9, 0.5], [0.9, 0.2], [0.7]]
        XCTAssertEqual(CircuitSearch.topK(s, k: 0), [[false, false, false], [false, false], [false]])
        XCTAssertEqual(CircuitSearch.topK(s, k: 1), [[false, true, false], [false, false], [false]])   // tie 0.9: row 0 first
        XCTAssertEqual(CircuitSearch.topK(s, k: 3), [[false, true, false], [true, false], [true]])
        XCTAssertEqual(CircuitSearch.topK(s, k: 99), [[true, true, true], [true, true], [true]])
    }
}

// MARK: - Bisection with a relative tolerance (weight circuits)

final class CircuitSearchToleranceTests: XCTestCase {
    /// On any curve the tolerant search returns b ≥ the exact answer with b − exact ≤ r·b, in fewer steps.
    func testTolerantBisectionStaysWithinItsToleranceOfTheExactCrossing() throws {
        var rng = SeededRNG(seed: 11)
        for trial in 0..<40 {
            let hi = 1_000 + Int(rng.next() % 5_000_000)
            let noise = Double(trial % 4) * 0.03    // monotone (0) and increasingly noisy curves
            let f = { (k: Int) -> Double in
                var h = UInt64(truncatingIfNeeded: k) &* 0x9E37_79B9_7F4A_7C15; h ^= h >> 29
                return Double(k) / Double(hi) + noise * (Double(h % 1000) / 1000 - 0.5)
            }
            let exact = try XCTUnwrap(CircuitSearch.bisect(lo: 0, hi: hi, threshold: 0.6, f: f))
            for r in [0.001, 0.01, 0.1] {
                let c = try XCTUnwrap(CircuitSearch.bisect(lo: 0, hi: hi, threshold: 0.6, relativeTolerance: r, f: f))
                XCTAssertGreaterThanOrEqual(c.count, exact.count, "trial \(trial) r \(r)")
                XCTAssertLessThanOrEqual(Double(c.count - exact.count), r * Double(c.count), "trial \(trial) r \(r)")
                XCTAssertGreaterThanOrEqual(c.f, 0.6)
                XCTAssertLessThanOrEqual(c.evaluations, exact.evaluations)
            }
        }
        // f(k) = k / 10⁸ crosses 0.6 at 6·10⁷: exact needs 2 + 27 evaluations (10⁸ / 2²⁷ < 1), r = 0.01 needs 2 + 8
        // (10⁸ / 2⁸ = 3.9·10⁵ ≤ 0.01 · 6·10⁷ < 10⁸ / 2⁷).
        let lin = { (k: Int) -> Double in Double(k) / 1e8 }
        let exact = try XCTUnwrap(CircuitSearch.bisect(lo: 0, hi: 100_000_000, threshold: 0.6, f: lin))
        let tol = try XCTUnwrap(CircuitSearch.bisect(lo: 0, hi: 100_000_000, threshold: 0.6, relativeTolerance: 0.01, f: lin))
        XCTAssertEqual(exact.count, 60_000_000); XCTAssertEqual(exact.evaluations, 29)
        XCTAssertEqual(tol.evaluations, 2 + 8)
        XCTAssertTrue((60_000_000...60_600_000).contains(tol.count), "\(tol.count)")
        // r = 0 is the exact search, and a bracket narrower than r·b is not bisected at all.
        XCTAssertEqual(CircuitSearch.bisect(lo: 0, hi: 100_000_000, threshold: 0.6, relativeTolerance: 0, f: lin), exact)
        XCTAssertEqual(CircuitSearch.bisect(lo: 990, hi: 1000, threshold: 0.995, relativeTolerance: 0.05) { Double($0) / 1000 }?.count, 1000)
    }

    func testNeuronAndWeightCircuitsDefaultToOnePercentHeadsToExact() {
        var s = CircuitSettings()
        for (g, r) in [(Granularity.heads, 0.0), (.neurons, 0.01), (.weights, 0.01)] { s.granularity = g; XCTAssertEqual(s.effectiveBisectionTolerance, r) }
        s.bisectionTolerance = 0; XCTAssertEqual(s.effectiveBisectionTolerance, 0, "an explicit 0 makes weights (and neurons) exact")
        XCTAssertEqual(CircuitReport.settingsDict(s, metric: .logitDiff)["bisection_tolerance"] as? Double, 0)
    }
}
