import Foundation

/// Writes GGUF v3 files and records where every numeric field landed, so that a
/// mutation can hit "the second tensor's n_dims" or "the length of key 7" exactly
/// (the way a corrupted or hostile file differs from a good one).
struct GGUFBuilder {
    enum Value {
        case u32(UInt32), i32(Int32), u64(UInt64), f32(Float), bool(Bool), string(String)
        case strings([String]), i32s([Int32])
    }
    struct Tensor { var name: String; var dims: [UInt64]; var type: UInt32; var bytes: [UInt8] }
    struct Field { let offset: Int; let width: Int; let what: String }

    var version: UInt32 = 3
    var kvs: [(String, Value)] = []
    var tensors: [Tensor] = []
    var alignment = 32

    func build() -> (Data, [Field]) {
        var out: [UInt8] = Array("GGUF".utf8)
        var fields: [Field] = []
        func put<T: FixedWidthInteger>(_ v: T, _ what: String? = nil) {
            if let what { fields.append(Field(offset: out.count, width: T.bitWidth / 8, what: what)) }
            out += leBytes(v)
        }
        func putString(_ s: String, _ what: String?) { put(UInt64(s.utf8.count), what.map { "length of \($0)" }); out += Array(s.utf8) }
        put(version, "version")
        put(UInt64(tensors.count), "tensor_count")
        put(UInt64(kvs.count), "kv_count")
        for (key, v) in kvs {
            putString(key, "key \(key)")
            switch v {
            case .u32(let x): put(UInt32(4), "type of \(key)"); put(x, key)
            case .i32(let x): put(UInt32(5), "type of \(key)"); put(x, key)
            case .u64(let x): put(UInt32(10), "type of \(key)"); put(x, key)
            case .f32(let x): put(UInt32(6), "type of \(key)"); put(x.bitPattern, key)
            case .bool(let x): put(UInt32(7), "type of \(key)"); out.append(x ? 1 : 0)
            case .string(let s): put(UInt32(8), "type of \(key)"); putString(s, key)
            case .strings(let a):
                put(UInt32(9), "type of \(key)"); put(UInt32(8), "element type of \(key)"); put(UInt64(a.count), "count of \(key)")
                for (n, s) in a.enumerated() { putString(s, n < 3 || n == a.count - 1 ? "\(key)[\(n)]" : nil) }
            case .i32s(let a):
                put(UInt32(9), "type of \(key)"); put(UInt32(5), "element type of \(key)"); put(UInt64(a.count), "count of \(key)")
                for x in a { put(x) }
            }
        }
        var offsets: [UInt64] = [], running: UInt64 = 0
        for t in tensors {
            offsets.append(running)
            running += UInt64(t.bytes.count)
            running = (running + UInt64(alignment) - 1) / UInt64(alignment) * UInt64(alignment)
        }
        for (t, off) in zip(tensors, offsets) {
            putString(t.name, "tensor \(t.name) name")
            put(UInt32(t.dims.count), "n_dims of \(t.name)")
            for (k, d) in t.dims.enumerated() { put(d, "dim \(k) of \(t.name)") }
            put(t.type, "type of \(t.name)")
            put(off, "offset of \(t.name)")
        }
        while out.count % alignment != 0 { out.append(0) }
        for t in tensors {
            out += t.bytes
            while out.count % alignment != 0 { out.append(0) }
        }
        return (Data(out), fields)
    }

    // MARK: quantisers (ggml block layouts; rows are quantised along ne[0])

    static func f16(_ xs: [Float]) -> [UInt8] { xs.flatMap { leBytes(Float16($0).bitPattern) } }

    static func q8_0(_ xs: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for b in stride(from: 0, to: xs.count, by: 32) {
            let blk = xs[b..<min(b + 32, xs.count)]
            let amax = blk.map(abs).max() ?? 0, d = amax / 127
            out += leBytes(Float16(d).bitPattern)
            for x in blk { out.append(UInt8(bitPattern: Int8(d == 0 ? 0 : (x / d).rounded()))) }
        }
        return out
    }

    static func q4_0(_ xs: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for b in stride(from: 0, to: xs.count, by: 32) {
            let blk = Array(xs[b..<(b + 32)])
            let m = blk.max { abs($0) < abs($1) } ?? 0, d = m / -8, id = d == 0 ? 0 : 1 / d
            out += leBytes(Float16(d).bitPattern)
            for j in 0..<16 {
                let lo = UInt8(min(15, max(0, Int(blk[j] * id + 8.5)))), hi = UInt8(min(15, max(0, Int(blk[j + 16] * id + 8.5))))
                out.append(lo | hi << 4)
            }
        }
        return out
    }

    static func q4_1(_ xs: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for b in stride(from: 0, to: xs.count, by: 32) {
            let blk = Array(xs[b..<(b + 32)])
            let lo = blk.min() ?? 0, hi = blk.max() ?? 0, d = (hi - lo) / 15, id = d == 0 ? 0 : 1 / d
            out += leBytes(Float16(d).bitPattern) + leBytes(Float16(lo).bitPattern)
            for j in 0..<16 {
                let a = UInt8(min(15, max(0, Int((blk[j] - lo) * id + 0.5)))), c = UInt8(min(15, max(0, Int((blk[j + 16] - lo) * id + 0.5))))
                out.append(a | c << 4)
            }
        }
        return out
    }
}

/// Structured GGUF mutations: a recorded field set to an interesting value, or the file
/// rebuilt with changed metadata or tensor infos.
enum GGUFMutator {
    static func mutate(_ builder: GGUFBuilder, rng: inout Rng) -> (Data, String, [String]) {
        let (data, fields) = builder.build()
        switch rng.below(10) {
        case 0, 1, 2, 3:
            var b = [UInt8](data)
            let f = rng.pick(fields)
            var old: UInt64 = 0
            for k in 0..<f.width { old |= UInt64(b[f.offset + k]) << (8 * UInt64(k)) }
            let v = rng.chance(0.5) ? rng.pick(Interesting.u64) : rng.pick([old &+ 1, old &- 1, old &* 2, old / 2, old &* 1000, 0, UInt64(f.width == 4 ? 0xFFFF_FFFF : UInt64.max)])
            for k in 0..<f.width { b[f.offset + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            return (Data(b), "\(f.what) = \(v) (was \(old))", culprits(f.what))
        case 4, 5:
            var g = builder
            let k = rng.below(g.kvs.count)
            let key = g.kvs[k].0
            let vals: [GGUFBuilder.Value] = [.u32(0), .u32(1), .i32(-1), .u32(0xFFFF_FFFF), .u64(1 << 62), .u64(999_999), .i32(Int32.min),
                                             .f32(0), .f32(-1), .f32(.nan), .f32(.infinity), .string("x"), .bool(true), .strings([]), .i32s([1, 2])]
            if rng.chance(0.2) { g.kvs.remove(at: k); return (g.build().0, "metadata \(key) removed", [key]) }
            let v = rng.pick(vals)
            g.kvs[k].1 = v
            return (g.build().0, "metadata \(key) = \(v)", [key])
        case 6:
            var g = builder
            guard let k = g.kvs.firstIndex(where: { $0.0 == "tokenizer.ggml.tokens" || $0.0 == "tokenizer.ggml.merges" }),
                  case .strings(var a) = g.kvs[rng.chance(0.5) ? k : (g.kvs.firstIndex { $0.0 == "tokenizer.ggml.merges" } ?? k)].1 else { return (data, "no-op", []) }
            let key = g.kvs.first { if case .strings(let b) = $0.1 { return b == a }; return false }?.0 ?? "tokenizer.ggml.tokens"
            switch rng.below(5) {
            case 0: a.removeLast(rng.below(max(1, a.count / 2)) + 1)
            case 1: a.append(contentsOf: ["x", "x"])
            case 2: a[rng.below(a.count)] = rng.pick(["", "a b c", " ", "ab", "\u{0}", String(repeating: "Ġ", count: 10_000)])
            case 3: a.swapAt(rng.below(a.count), rng.below(a.count))
            default: a = []
            }
            let i = g.kvs.firstIndex { $0.0 == key }!
            g.kvs[i].1 = .strings(a)
            return (g.build().0, "\(key) edited (\(a.count) entries)", [key])
        case 7:
            var g = builder
            let t = rng.below(g.tensors.count), name = g.tensors[t].name
            switch rng.below(5) {
            case 0: g.tensors[t].type = rng.pick([6, 7, 12, 14, 99, 0x8000_0000, 9, 30, 0, 1])
            case 1: g.tensors[t].dims.reverse()
            case 2: g.tensors[t].dims.append(1)
            case 3: g.tensors.append(g.tensors[t])
            default: g.tensors.remove(at: t)
            }
            return (g.build().0, "tensor \(name) info edited", [name])
        case 8:
            var g = builder
            let a = rng.pick([0, 3, 1, 64, 1 << 21])
            g.alignment = max(1, a)
            g.kvs.append(("general.alignment", rng.chance(0.8) ? .u32(UInt32(a)) : .string("x")))
            return (g.build().0, "general.alignment = \(a)", ["general.alignment"])
        default:
            let (d, m) = ByteMutator.mutate(data, rng: &rng, head: fields.last.map { $0.offset + 16 } ?? 256)
            return (d, m, [])
        }
    }

    /// The key or tensor name a field belongs to ("dim 0 of blk.0.attn_q.weight" → the tensor).
    static func culprits(_ what: String) -> [String] {
        for p in [" of ", "tensor "] { if let r = what.range(of: p, options: .backwards) { return [String(what[r.upperBound...]).replacingOccurrences(of: " name", with: "")] } }
        return [what.replacingOccurrences(of: "key ", with: "")]
    }
}
