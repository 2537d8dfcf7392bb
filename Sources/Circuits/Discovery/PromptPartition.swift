import Foundation
import Transformer

// MARK: - Disjoint prompt sets per seed
//
// Reference and held-out sets must not share a prompt, or a circuit's held-out
// faithfulness would partly be measured on its own reference data. Seeded
// sampling alone does not give that (two seeds draw from the same space and
// collide). Instead the prompt space is hash-partitioned: every prompt has a
// canonical key (task, template, the filled-in values it actually uses), and
// the key's 64-bit FNV-1a hash, mixed by SplitMix64's finaliser, modulo
// `count` names the one seed that may emit it. Seed s samples keys with its own
// SplitMix64 stream and keeps only those hashing to s (rejection sampling,
// ≈ `count` draws per kept prompt; cheap). The partition depends only on the
// key, never on the tokenizer or on which names the tokenizer keeps, so the
// sets of two seeds are disjoint for every model and template selection.

public enum PromptPartition {
    /// Number of partitions: seeds are 0..<count.
    public static let count = 32

    /// The partition (= seed) that owns `key`.
    public static func owner(of key: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325                 // FNV-1a offset basis
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        // FNV's low bits mix poorly for short keys; SplitMix64's finaliser spreads them.
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        h ^= h >> 31
        return Int(h % UInt64(count))
    }

    /// Checks a seed is in range.
    public static func check(seed: Int) throws {
        guard (0..<count).contains(seed) else { throw TaskError.seedOutOfRange(seed: seed, partitions: count) }
    }

    /// When to give up: ≈ `count` draws per kept prompt are expected, so 50× that per requested prompt
    /// is plenty in a large space; in a small one 30 × its size draws see every key with near certainty
    /// (coupon collector: S ln S), so more draws cannot find more.
    static func maxDraws(requested n: Int, spaceSize: Int) -> Int {
        max(100_000, min(n * count * 50, 30 * spaceSize))
    }

    /// The draw loop every generator shares: candidates come from the seed's stream; one is built
    /// only when this seed owns its key and the key is new (so seeds give disjoint sets); `build` may
    /// still reject it (nil, counted in `rejected`). Giving up after `maxDraws` makes an exhausted
    /// space an error, not an endless loop. `build` gets the stream too (IOI draws its corruption there).
    static func draw<P>(task: String, seed: Int, n: Int, spaceSize: Int,
                        candidate: (inout SeededRNG) throws -> (key: String, build: (inout SeededRNG) throws -> P?))
        throws -> (prompts: [P], rejected: Int) {
        try check(seed: seed)
        var rng = rng(task: task, seed: seed)
        var seen = Set<String>(), out: [P] = [], rejected = 0, draws = 0
        let limit = maxDraws(requested: n, spaceSize: spaceSize)
        while out.count < n {
            guard draws < limit else {
                throw TaskError.promptSpaceExhausted(task: task, seed: seed, found: out.count, requested: n, spaceSize: spaceSize)
            }
            draws += 1
            let c = try candidate(&rng)
            guard owner(of: c.key) == seed, seen.insert(c.key).inserted else { continue }
            if let p = try c.build(&rng) { out.append(p) } else { rejected += 1 }
        }
        return (out, rejected)
    }

    /// The sampling stream for `task` and `seed` (distinct tasks get unrelated streams).
    static func rng(task: String, seed: Int) -> SeededRNG {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in task.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return SeededRNG(seed: h ^ UInt64(seed))
    }
}

extension RandomNumberGenerator {
    /// Uniform index in 0..<n (n > 0).
    mutating func index(_ n: Int) -> Int { Int(next(upperBound: UInt64(n))) }
}
