import Foundation

// MARK: - Sizes computed from file data
//
// Release builds use -Ounchecked, where integer overflow does not trap but
// wraps silently: a product of dimensions read from a hostile file can wrap to
// a small number that passes a size check and then drives a loop far past the
// allocation. Every element or byte count derived from file data goes through
// here (nil = negative factor or overflow) before anything is allocated.

public enum CheckedSize {
    /// a × b for non-negative a, b; nil when either is negative or the product overflows.
    @inline(__always)
    public static func product(_ a: Int, _ b: Int) -> Int? {
        guard a >= 0, b >= 0 else { return nil }
        let (p, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : p
    }

    /// The product of non-negative factors (1 for none); nil on a negative factor or overflow.
    public static func product(_ factors: [Int]) -> Int? {
        var n = 1
        for f in factors {
            guard let p = product(n, f) else { return nil }
            n = p
        }
        return n
    }

    /// a + b for non-negative a, b; nil on a negative term or overflow.
    @inline(__always)
    public static func sum(_ a: Int, _ b: Int) -> Int? {
        guard a >= 0, b >= 0 else { return nil }
        let (s, o) = a.addingReportingOverflow(b)
        return o ? nil : s
    }

    /// ⌈a / b⌉ for a ≥ 0, b > 0, without the overflow of (a + b − 1) / b near Int.max.
    @inline(__always)
    public static func ceilDiv(_ a: Int, _ b: Int) -> Int? {
        guard a >= 0, b > 0 else { return nil }
        return a / b + (a % b == 0 ? 0 : 1)
    }
}
