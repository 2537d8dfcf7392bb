import Foundation

/// SplitMix64: tiny, fast and fully determined by its seed, so run `i` of a campaign
/// with `--seed s` is the same input on every machine and in every worker order.
struct Rng {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// The generator for run `index` of campaign `seed`: independent of how runs are
    /// spread over workers, so `--jobs` never changes what is generated.
    init(campaign seed: UInt64, run index: Int) {
        var mix = Rng(seed: seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03)
        state = mix.next() ^ 0x5851_F42D_4C95_7F2D
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<n (n > 0).
    mutating func below(_ n: Int) -> Int {
        precondition(n > 0)
        return Int(next() % UInt64(n))
    }

    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }

    mutating func pick<T>(_ xs: [T]) -> T { xs[below(xs.count)] }

    /// An index biased towards the start (headers live there): half the time within
    /// the first `head` positions.
    mutating func position(in n: Int, head: Int = 256) -> Int {
        guard n > 0 else { return 0 }
        if chance(0.5) { return below(min(n, head)) }
        return below(n)
    }
}

/// Values that break parsers: zero, sign, powers of two around 32- and 64-bit limits.
enum Interesting {
    static let u64: [UInt64] = [
        0, 1, 2, 3, 7, 8, 16, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
        0x1_0000_0000, 1 << 40, 1 << 53, 1 << 61, 1 << 62, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000,
        0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE,
    ]
    static let bytes: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x22, 0x5C, 0x7B, 0x5D, 0x30, 0x39, 0x2D, 0x2E, 0x0A]

    /// JSON number literals (raw text, so that 2^64 and 1e400 reach the parser unrounded).
    static let jsonNumbers: [String] = [
        "0", "1", "-1", "2", "3", "7", "255", "256", "65536", "2147483647", "2147483648", "4294967295", "4294967296",
        "9007199254740993", "4611686018427387904", "9223372036854775807", "-9223372036854775808",
        "18446744073709551615", "18446744073709551616", "1e30", "1.5", "-0.0", "0.5", "1e400", "-1e400", "1e-320",
        "100000000", "-2147483648",
    ]
    /// Non-number JSON values and JSON5-ish literals some parsers accept.
    static let jsonOthers: [String] = [
        "null", "true", "false", "\"\"", "\"x\"", "\"1\"", "[]", "{}", "[1,2]", "NaN", "Infinity", "-Infinity",
        "\"\\u0000\"", "\"\\ud800\"", "\"" + String(repeating: "A", count: 5000) + "\"",
    ]
}
