import Foundation

/// A safetensors file split into its JSON header and its data buffer, for structured
/// mutation (and for writing the synthetic seeds).
struct SafetensorsFile {
    var header: JSON          // object: name → {dtype, shape, data_offsets}, plus "__metadata__"
    var buffer: [UInt8]

    init?(_ data: Data) {
        let b = [UInt8](data)
        guard b.count >= 8 else { return nil }
        var n = 0
        for k in 0..<8 { n |= Int(b[k]) << (8 * k) }
        guard n >= 2, n <= b.count - 8, let h = JSON.parse(Data(b[8..<(8 + n)])) else { return nil }
        header = h
        buffer = Array(b[(8 + n)...])
    }

    /// Builds a file from F32/any-dtype tensors given as raw little-endian bytes, in order.
    init(tensors: [(name: String, dtype: String, shape: [Int], bytes: [UInt8])], metadata: [(String, String)] = [("format", "pt")]) {
        var members: [(String, JSON)] = [("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))]
        var buf: [UInt8] = []
        for t in tensors {
            let begin = buf.count
            buf += t.bytes
            members.append((t.name, .object([("dtype", .string(t.dtype)), ("shape", .array(t.shape.map(JSON.int))),
                                             ("data_offsets", .array([.int(begin), .int(buf.count)]))])))
        }
        header = .object(members)
        buffer = buf
    }

    var tensorNames: [String] { (header.objectValue ?? []).map(\.0).filter { $0 != "__metadata__" } }

    func offsets(_ name: String) -> (Int, Int)? {
        guard let o = header[name]?["data_offsets"]?.arrayValue, o.count == 2, let b = o[0].intValue, let e = o[1].intValue,
              b >= 0, e >= b, e <= buffer.count else { return nil }
        return (b, e)
    }

    /// Serialised with the header padded to 8 bytes, as the reference writer does.
    var data: Data { serialise(lengthOverride: nil) }

    func serialise(lengthOverride: UInt64?) -> Data {
        var h = [UInt8](header.text.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        let n = lengthOverride ?? UInt64(h.count)
        var out = [UInt8]()
        out.reserveCapacity(8 + h.count + buffer.count)
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(k)))) }
        return Data(out + h + buffer)
    }
}

extension [Float] {
    var littleEndianBytes: [UInt8] { flatMap { f -> [UInt8] in let u = f.bitPattern; return (0..<4).map { UInt8(truncatingIfNeeded: u >> (8 * $0)) } } }
}

func leBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
}

/// Structured safetensors mutations: header length, dtype, shape, offsets, names,
/// metadata, non-finite data, and (for sparse-bitmask checkpoints) the `.shape`,
/// `.row_offsets`, `.bitmask` and `.compressed` companions.
enum SafetensorsMutator {
    static func mutate(_ data: Data, rng: inout Rng, sparse: Bool = false) -> (Data, String, [String]) {
        guard var f = SafetensorsFile(data), case .object(var members) = f.header, !f.tensorNames.isEmpty else {
            let (d, m) = ByteMutator.mutate(data, rng: &rng); return (d, m, [])
        }
        if sparse && rng.chance(0.6) { return sparseMutation(&f, rng: &rng) }
        let names = f.tensorNames
        let name = rng.pick(names)
        guard let idx = members.firstIndex(where: { $0.0 == name }), case .object(var t) = members[idx].1 else { return (data, "no-op", []) }
        func set(_ key: String, _ v: JSON) {
            if let k = t.firstIndex(where: { $0.0 == key }) { t[k].1 = v } else { t.append((key, v)) }
            members[idx].1 = .object(t); f.header = .object(members)
        }
        switch rng.below(11) {
        case 0:
            let hl = UInt64(f.data.count - 8 - f.buffer.count)
            let v = rng.pick([0, 1, hl &- 1, hl &+ 1, hl &+ 8, UInt64(f.data.count), 100_000_001] + Interesting.u64)
            return (f.serialise(lengthOverride: v), "header length = \(v) (was \(hl))", ["header"])
        case 1:
            let d = rng.pick(["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "I8", "BOOL", "F8_E4M3", "f32", "", "Q4_0"])
            set("dtype", .string(d)); return (f.data, "\(name).dtype = \(d)", [name])
        case 2:
            guard var shape = t.first(where: { $0.0 == "shape" })?.1.arrayValue, !shape.isEmpty else { return (f.data, "no-op", []) }
            let k = rng.below(shape.count), v = JSONMutator.value(&rng)
            shape[k] = .raw(v)
            set("shape", .array(shape)); return (f.data, "\(name).shape[\(k)] = \(v.prefix(30))", [name])
        case 3:
            guard var shape = t.first(where: { $0.0 == "shape" })?.1.arrayValue else { return (f.data, "no-op", []) }
            switch rng.below(4) {
            case 0: shape.append(.int(1))
            case 1: if !shape.isEmpty { shape.removeLast() }
            case 2: shape.reverse()
            default: shape = shape.map { v in v.intValue.map { JSON.int($0 * 2) } ?? v }
            }
            set("shape", .array(shape)); return (f.data, "\(name).shape = \(JSON.array(shape).text)", [name])
        case 4:
            guard let (b, e) = f.offsets(name) else { return (f.data, "no-op", []) }
            let other = f.offsets(rng.pick(names)) ?? (0, 0)
            let choices: [(String, String)] = [
                (String(b + 1), String(e + 1)), (String(b), String(e - 1)), (String(e), String(b)), (String(other.0), String(other.1)),
                (String(b), String(f.buffer.count + 4)), (String(b) + ".5", String(e)), ("-4", String(e)), (String(b), "18446744073709551615"),
                (rng.pick(Interesting.jsonNumbers), rng.pick(Interesting.jsonNumbers)),
            ]
            let (nb, ne) = rng.pick(choices)
            set("data_offsets", .array([.raw(nb), .raw(ne)])); return (f.data, "\(name).data_offsets = [\(nb), \(ne)]", [name])
        case 5:
            members.remove(at: idx); f.header = .object(members)
            return (f.data, "tensor \(name) removed from the header", [name])
        case 6:
            let newName = rng.pick([name + ".x", name.replacingOccurrences(of: "layers.0", with: "layers.99"),
                                    String(repeating: "n", count: 70_000), "model.layers.-1.mlp.up_proj.weight", "", "\u{1B}[31m\u{0}"])
            members[idx].0 = newName; f.header = .object(members)
            return (f.data, "tensor \(name) renamed (\(newName.count) chars)", [name])
        case 7:
            members.append((rng.pick(names), members[idx].1)); f.header = .object(members)
            return (f.data, "duplicate header entry for \(name)", [name])
        case 8:
            let v: JSON = rng.pick([.raw("1"), .array([]), .object([("format", .raw("null"))]), .string("x"),
                                    .object([("checksum", .string("00"))])])
            if let m = members.firstIndex(where: { $0.0 == "__metadata__" }) { members[m].1 = v } else { members.append(("__metadata__", v)) }
            f.header = .object(members)
            return (f.data, "__metadata__ = \(v.text)", ["__metadata__"])
        case 9:
            guard let (b, e) = f.offsets(name), e - b >= 4 else { return (f.data, "no-op", []) }
            let bits: UInt32 = rng.pick([0x7FC0_0000, 0x7F80_0000, 0xFF80_0000, 0x7F7F_FFFF, 0x0000_0001])
            let count = 1 + rng.below(4)
            for _ in 0..<count { let p = b + 4 * rng.below((e - b) / 4); for k in 0..<4 { f.buffer[p + k] = UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k))) } }
            return (f.data, "\(name): \(count) values = 0x\(String(bits, radix: 16))", [name])
        default:
            let (d, m) = ByteMutator.mutate(f.data, rng: &rng, head: 8 + (f.data.count - f.buffer.count)); return (d, m, [])
        }
    }

    /// compressed-tensors sparse-bitmask: `<w>.shape` I64 [rows, cols], `<w>.bitmask` U8
    /// [rows, ⌈cols/8⌉], `<w>.row_offsets` I64 [rows], `<w>.compressed` [nnz].
    private static func sparseMutation(_ f: inout SafetensorsFile, rng: inout Rng) -> (Data, String, [String]) {
        let shapes = f.tensorNames.filter { $0.hasSuffix(".shape") }
        guard let s = shapes.isEmpty ? nil : rng.pick(shapes), let (b, e) = f.offsets(s), e - b == 16 else {
            return (f.data, "no sparse tensors", [])
        }
        let base = String(s.dropLast(".shape".count))
        var rows = 0, cols = 0
        for k in 0..<8 { rows |= Int(f.buffer[b + k]) << (8 * k); cols |= Int(f.buffer[b + 8 + k]) << (8 * k) }
        func write(_ r: Int64, _ c: Int64, at o: Int) {
            for k in 0..<8 { f.buffer[o + k] = UInt8(truncatingIfNeeded: r >> (8 * Int64(k))); f.buffer[o + 8 + k] = UInt8(truncatingIfNeeded: c >> (8 * Int64(k))) }
        }
        switch rng.below(5) {
        case 0:
            // rows × ⌈cols/8⌉ wrapping around 2^64 back onto the true bitmask size.
            let tz = rows.trailingZeroBitCount
            guard rows > 0, tz >= 5 else { fallthrough }
            let bpr = (cols &+ 7) / 8 &+ (1 << (64 - min(tz, 63)))
            let c = Int64(truncatingIfNeeded: bpr &* 8)
            write(Int64(rows), c, at: b)
            return (f.data, "\(s) = [\(rows), \(c)] (rows × ⌈cols/8⌉ wraps to the bitmask size)", [s, base])
        case 1:
            let r = rng.chance(0.5) ? Int64(rows) : Int64(bitPattern: rng.pick(Interesting.u64)) &* (rng.chance(0.3) ? -1 : 1)
            let c = rng.chance(0.5) ? Int64(cols) : rng.pick([-1, -7, -8, 0, 1, Int64(cols) &+ 1, Int64(cols) &- 1, Int64(cols) &* 2, Int64.max, Int64.min])
            write(r, c, at: b)
            return (f.data, "\(s) = [\(r), \(c)] (was [\(rows), \(cols)])", [s, base])
        case 2:
            guard let (rb, re) = f.offsets(base + ".row_offsets"), re - rb >= 8 else { fallthrough }
            let p = rb + 8 * rng.below((re - rb) / 8)
            let v = rng.pick(Interesting.u64)
            for k in 0..<8 { f.buffer[p + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            return (f.data, "\(base).row_offsets entry at byte \(p - rb) = \(v)", [base + ".row_offsets", base])
        case 3:
            guard let (mb, me) = f.offsets(base + ".bitmask"), me > mb else { fallthrough }
            let p = mb + rng.below(me - mb)
            f.buffer[p] = rng.pick([0xFF, 0x00, f.buffer[p] ^ 0x01])
            return (f.data, "\(base).bitmask byte \(p - mb) changed", [base + ".bitmask", base])
        default:
            // Header-level: drop one companion, or give it another dtype or shape.
            guard case .object(var members) = f.header else { return (f.data, "no-op", []) }
            let comp = rng.pick([".shape", ".bitmask", ".row_offsets", ".compressed"])
            guard let i = members.firstIndex(where: { $0.0 == base + comp }) else { return (f.data, "no-op", []) }
            if rng.chance(0.4) { members.remove(at: i) } else if case .object(var t) = members[i].1, let k = t.firstIndex(where: { $0.0 == "dtype" }) {
                t[k].1 = .string(rng.pick(["F32", "U8", "I32", "F16"])); members[i].1 = .object(t)
            }
            f.header = .object(members)
            return (f.data, "\(base + comp) removed or retyped", [base + comp, base])
        }
    }
}
