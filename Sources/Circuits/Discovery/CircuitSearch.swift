import Foundation

// MARK: - Searching for the sparsest faithful circuit
//
// Components are ranked once by score; a circuit of size k keeps the k best.
// The curve f(k) is sampled on a log-spaced grid of kept fractions (small
// circuits are where methods differ), then the crossing of the threshold is
// located by bisection on k between the last grid point below it and the
// first at or above it. f need not be monotone globally: bisection returns a
// k with f(k) ≥ threshold and f(k − 1) < threshold inside that bracket.

public enum CircuitSearch {
    /// `points` kept fractions: 0, then log-spaced from `smallest` to 1 (both included).
    public static func grid(points: Int, smallest: Double = 1e-4) -> [Double] {
        precondition(points >= 3 && smallest > 0 && smallest < 1)
        let n = points - 1
        var out: [Double] = [0]
        for i in 0..<n {
            let t = Double(i) / Double(n - 1)
            out.append(i == n - 1 ? 1 : smallest * pow(1 / smallest, t))
        }
        return out
    }

    /// Kept count for a fraction of `total` components (at least 1 for any fraction > 0).
    public static func count(fraction: Double, total: Int) -> Int {
        fraction <= 0 ? 0 : min(total, max(1, Int((fraction * Double(total)).rounded())))
    }

    public struct Crossing: Equatable, Sendable {
        public var count: Int
        public var f: Double
        /// f evaluations made by the bisection.
        public var evaluations: Int
    }

    /// The smallest k in `lo...hi` with f(k) ≥ threshold, given f(lo) < threshold ≤ f(hi) (checked; nil when
    /// f(hi) misses the threshold, e.g. the full model itself). f(lo) ≥ threshold returns lo.
    ///
    /// `relativeTolerance` r > 0 stops early, once the bracket (a, b] is at most r·b wide, and returns b. The steps
    /// taken are the exact search's own, so the exact answer lies in that last bracket: the result is never smaller
    /// than the exact one and at most r·b above it (for any curve, monotone or not). Weight circuits use it: a
    /// bracket between log-grid points spans tens of millions of weights, 26 exact steps where r = 0.01 needs ~6.
    public static func bisect(lo: Int, hi: Int, threshold: Double, relativeTolerance: Double = 0,
                              f: (Int) throws -> Double) rethrows -> Crossing? {
        precondition(lo <= hi && relativeTolerance >= 0 && relativeTolerance < 1)
        var evals = 0
        func eval(_ k: Int) throws -> Double { evals += 1; return try f(k) }
        let fhi = try eval(hi)
        guard fhi >= threshold else { return nil }
        let flo = try eval(lo)
        if flo >= threshold { return Crossing(count: lo, f: flo, evaluations: evals) }
        var a = lo, b = hi, fb = fhi            // f(a) < threshold ≤ f(b)
        while b - a > max(1, Int(relativeTolerance * Double(b))) {
            let m = a + (b - a) / 2
            let fm = try eval(m)
            if fm >= threshold { b = m; fb = fm } else { a = m }
        }
        return Crossing(count: b, f: fb, evaluations: evals)
    }

    /// Keep flags for the `k` highest scores over all rows (ties: lower row, then lower index first).
    public static func topK(_ scores: [[Float]], k: Int) -> [[Bool]] {
        var order: [(row: Int, col: Int, s: Float)] = []
        for (r, row) in scores.enumerated() { for (c, s) in row.enumerated() { order.append((r, c, s)) } }
        order.sort { $0.s != $1.s ? $0.s > $1.s : ($0.row, $0.col) < ($1.row, $1.col) }
        var keep = scores.map { [Bool](repeating: false, count: $0.count) }
        for e in order.prefix(max(0, k)) { keep[e.row][e.col] = true }
        return keep
    }
}
