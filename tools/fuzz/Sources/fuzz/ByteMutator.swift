import Foundation

/// Format-blind mutations. `head` is the size of the region where the format keeps its
/// structure (a header, a table of sizes); half of the positions fall there, because a
/// flipped bit in float weights only ever tests the numerics.
enum ByteMutator {
    static func mutate(_ data: Data, rng: inout Rng, head: Int = 256) -> (Data, String) {
        var b = [UInt8](data)
        if b.isEmpty { return (Data([rng.pick(Interesting.bytes)]), "empty file → one byte") }
        switch rng.below(9) {
        case 0:
            let n = 1 + rng.below(4)
            var at: [Int] = []
            for _ in 0..<n { let p = rng.position(in: b.count, head: head); b[p] ^= UInt8(1 << rng.below(8)); at.append(p) }
            return (Data(b), "bit flip at \(at)")
        case 1:
            let p = rng.position(in: b.count, head: head), v = rng.pick(Interesting.bytes)
            b[p] = v
            return (Data(b), "byte \(p) = 0x\(String(v, radix: 16))")
        case 2:
            let width = rng.pick([2, 4, 8])
            let p = rng.position(in: max(1, b.count - width + 1), head: head)
            let v = rng.pick(Interesting.u64)
            for k in 0..<width where p + k < b.count { b[p + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            return (Data(b), "u\(width * 8) at \(p) = \(v)")
        case 3:
            let cut = rng.chance(0.5) ? rng.position(in: b.count, head: head) : rng.below(b.count)
            return (Data(b[0..<cut]), "truncated to \(cut) of \(b.count) bytes")
        case 4:
            let p = rng.position(in: b.count, head: head), n = 1 + rng.below(min(64, b.count - p))
            b.removeSubrange(p..<(p + n))
            return (Data(b), "deleted \(n) bytes at \(p)")
        case 5:
            let p = rng.position(in: b.count + 1, head: head), n = 1 + rng.below(32)
            let ins = (0..<n).map { _ in rng.chance(0.5) ? rng.pick(Interesting.bytes) : UInt8(truncatingIfNeeded: rng.next()) }
            b.insert(contentsOf: ins, at: p)
            return (Data(b), "inserted \(n) bytes at \(p)")
        case 6:
            let p = rng.position(in: b.count, head: head), n = 1 + rng.below(min(256, b.count - p))
            let q = rng.position(in: b.count + 1, head: head)
            b.insert(contentsOf: Array(b[p..<(p + n)]), at: q)
            return (Data(b), "copied \(n) bytes from \(p) to \(q)")
        case 7:
            let p = rng.position(in: b.count, head: head), n = 1 + rng.below(min(16, b.count - p))
            for k in p..<(p + n) { b[k] = UInt8(truncatingIfNeeded: rng.next()) }
            return (Data(b), "randomised \(n) bytes at \(p)")
        default:
            let extra = rng.pick([1, 7, 4096, 1 << 20])
            b += (0..<extra).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            return (Data(b), "appended \(extra) random bytes")
        }
    }
}

/// Mutations of JSON documents: one value at a random path replaced by an interesting
/// value, a key deleted or added, or damage to the text itself (deep nesting, BOM, NUL,
/// invalid UTF-8, duplicate keys, truncation).
enum JSONMutator {
    /// `keys` are the keys worth hitting (e.g. every config key the loader reads); the
    /// returned culprit is the key or path touched, for the "does the error name it" check.
    static func mutate(_ data: Data, rng: inout Rng, keys: [String] = []) -> (Data, String, [String]) {
        guard let root = JSON.parse(data) else {
            let (d, m) = ByteMutator.mutate(data, rng: &rng)
            return (d, m, [])
        }
        let paths = root.paths().filter { !$0.isEmpty }
        switch rng.below(10) {
        case 0, 1, 2, 3:
            // A known key (at the top level) or any path, set to an interesting value.
            let path: [String] = !keys.isEmpty && rng.chance(0.6) ? [rng.pick(keys)] : (paths.isEmpty ? ["x"] : rng.pick(paths))
            let v = value(&rng)
            var out = root.replacing(path[...], with: .raw(v)) ?? root
            if case .object(var o) = out, path.count == 1, root[path[0]] == nil { o.append((path[0], .raw(v))); out = .object(o) }
            return (out.data, "\(path.joined(separator: ".")) = \(v.prefix(40))", [path.last!])
        case 4:
            guard let path = paths.isEmpty ? nil : rng.pick(paths) else { return (data, "no-op", []) }
            let out = root.replacing(path[...], with: nil) ?? root
            return (out.data, "deleted \(path.joined(separator: "."))", [path.last!])
        case 5:
            // A number nudged off by one or scaled: values that are plausible but inconsistent.
            let numeric = paths.filter { if case .raw(let r)? = value(at: $0, in: root) { return Double(r) != nil }; return false }
            guard let path = numeric.isEmpty ? nil : rng.pick(numeric), case .raw(let r)? = value(at: path, in: root),
                  let d = Double(r) else { return (data, "no numbers", []) }
            let nv: String = Int(r).map { String(rng.pick([$0 &+ 1, $0 &- 1, $0 &* 2, $0 / 2, 0 &- $0, 0])) } ?? String(rng.pick([d * 2, -d, 0, d / 3]))
            let out = root.replacing(path[...], with: .raw(nv)) ?? root
            return (out.data, "\(path.joined(separator: ".")) = \(nv) (was \(r))", [path.last!])
        case 6:
            let depth = rng.pick([64, 1000, 100_000])
            let v = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            let path: [String] = !keys.isEmpty && rng.chance(0.5) ? [rng.pick(keys)] : (paths.isEmpty ? ["x"] : rng.pick(paths))
            let out = root.replacing(path[...], with: .raw(v)) ?? root
            return (out.data, "\(path.joined(separator: ".")) nested \(depth) deep", [path.last!])
        case 7:
            // Duplicate a top-level key with another value (the last one wins in most parsers).
            guard case .object(var o) = root, let m = o.isEmpty ? nil : rng.pick(o) else { return (data, "no-op", []) }
            let v = value(&rng)
            o.append((m.0, .raw(v)))
            return (JSON.object(o).data, "duplicate key \(m.0) = \(v.prefix(40))", [m.0])
        default:
            var b = [UInt8](data)
            switch rng.below(5) {
            case 0: b = [0xEF, 0xBB, 0xBF] + b; return (Data(b), "UTF-8 BOM prepended", [])
            case 1: b.insert(0, at: rng.below(b.count + 1)); return (Data(b), "NUL inserted", [])
            case 2: b.insert(contentsOf: [0xC3, 0x28, 0xFF], at: rng.below(b.count + 1)); return (Data(b), "invalid UTF-8 inserted", [])
            case 3: return (Data(b[0..<rng.below(b.count + 1)]), "truncated", [])
            default: let (d, m) = ByteMutator.mutate(data, rng: &rng, head: b.count); return (d, m, [])
            }
        }
    }

    static func value(_ rng: inout Rng) -> String {
        rng.chance(0.7) ? rng.pick(Interesting.jsonNumbers) : rng.pick(Interesting.jsonOthers)
    }

    static func value(at path: [String], in root: JSON) -> JSON? {
        var cur: JSON? = root
        for k in path {
            switch cur {
            case .object(let o)?: cur = o.first { $0.0 == k }?.1
            case .array(let a)?: cur = Int(k).flatMap { $0 < a.count ? a[$0] : nil }
            default: return nil
            }
        }
        return cur
    }
}

/// Line-level mutations for line formats (merges.txt, prompt .txt, corpus text).
enum LineMutator {
    static func mutate(_ data: Data, rng: inout Rng) -> (Data, String) {
        var lines = String(decoding: data, as: UTF8.self).components(separatedBy: "\n")
        if lines.isEmpty { lines = [""] }
        let n = rng.below(lines.count)
        switch rng.below(8) {
        case 0: lines.remove(at: n); return (join(lines), "line \(n + 1) deleted")
        case 1: lines.insert(lines[n], at: n); return (join(lines), "line \(n + 1) duplicated")
        case 2:
            let m = rng.below(lines.count); lines.swapAt(n, m)
            return (join(lines), "lines \(n + 1) and \(m + 1) swapped")
        case 3:
            let junk = rng.pick(["", " ", "a", "a b c", "\u{0}", "\t", "Ġ Ġ", "x", String(repeating: "z", count: 100_000), "\u{FFFD} \u{FFFD}", "#version: 0.2"])
            lines.insert(junk, at: n); return (join(lines), "line \(n + 1) inserted (\(junk.count) chars)")
        case 4: return (Data(lines.joined(separator: "\r\n").utf8), "CRLF line ends")
        case 5: lines[n] = String(lines[n].reversed()); return (join(lines), "line \(n + 1) reversed")
        case 6: lines[n] = lines[n].replacingOccurrences(of: " ", with: rng.pick(["", "  ", "\t", " \u{0} "])); return (join(lines), "line \(n + 1) separators changed")
        default: return ByteMutator.mutate(data, rng: &rng, head: data.count)
        }
    }
    private static func join(_ l: [String]) -> Data { Data(l.joined(separator: "\n").utf8) }
}
