import Foundation

/// Byte-level delta minimisation of a failing case: the mutated bytes are reverted to the
/// seed's wherever the failure survives without them (ddmin over the set of changed
/// positions), then optional arguments are dropped the same way.
struct Minimizer {
    let reproduces: (Case) -> Bool
    var budget: Int

    mutating func minimise(_ k: Case) -> Case {
        var k = k
        let reproduces = self.reproduces
        var budget = self.budget
        defer { self.budget = budget }
        for path in k.mutated {
            guard let base = k.base[path], let cur = k.files[path] else { continue }
            let b = [UInt8](base), c = [UInt8](cur)
            if b.count == c.count {
                let diffs = (0..<b.count).filter { b[$0] != c[$0] }
                let kept = Minimizer.ddmin(diffs, budget: &budget) { subset in
                    var t = b
                    for i in subset { t[i] = c[i] }
                    var trial = k; trial.files[path] = Data(t)
                    return reproduces(trial)
                }
                var t = b
                for i in kept { t[i] = c[i] }
                k.files[path] = Data(t)
            } else if c.count < b.count, Array(b[0..<c.count]) == c {
                continue   // a plain truncation is already minimal
            } else {
                // Shrink the differing middle: keep the common prefix and suffix, drop chunks of the rest.
                var p = 0
                while p < min(b.count, c.count), b[p] == c[p] { p += 1 }
                var s = 0
                while s < min(b.count, c.count) - p, b[b.count - 1 - s] == c[c.count - 1 - s] { s += 1 }
                let middle = Array(c[p..<(c.count - s)])
                let kept = Minimizer.ddmin(Array(0..<middle.count), budget: &budget) { subset in
                    var trial = k; trial.files[path] = Data(c[0..<p] + subset.map { middle[$0] } + c[(c.count - s)...])
                    return reproduces(trial)
                }
                k.files[path] = Data(c[0..<p] + kept.map { middle[$0] } + c[(c.count - s)...])
            }
        }
        // Drop optional "--flag value" pairs and bare flags (never the command or --model).
        var i = 1
        while i < k.argv.count, budget > 0 {
            let flag = k.argv[i]
            guard flag.hasPrefix("--"), flag != "--model" else { i += 1; continue }
            let width = i + 1 < k.argv.count && !k.argv[i + 1].hasPrefix("--") ? 2 : 1
            var trial = k
            trial.argv.removeSubrange(i..<(i + width))
            budget -= 1
            if reproduces(trial) { k = trial } else { i += width }
        }
        return k
    }

    /// Zeller's ddmin: a 1-minimal subset of `items` for which `test` still holds.
    static func ddmin(_ items: [Int], budget: inout Int, _ test: ([Int]) -> Bool) -> [Int] {
        var c = items, n = 2
        while c.count >= 2, budget > 0 {
            let chunk = (c.count + n - 1) / n
            var reduced = false
            for start in stride(from: 0, to: c.count, by: chunk) where budget > 0 {
                let subset = Array(c[start..<min(start + chunk, c.count)])
                let complement = Array(c[0..<start] + c[min(start + chunk, c.count)...])
                budget -= 1
                if test(subset) { c = subset; n = 2; reduced = true; break }
                if n > 2 {
                    budget -= 1
                    if test(complement) { c = complement; n = max(n - 1, 2); reduced = true; break }
                }
            }
            if !reduced {
                if n >= c.count { break }
                n = min(c.count, 2 * n)
            }
        }
        return c
    }
}
