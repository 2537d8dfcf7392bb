import Foundation
import Transformer

// Bit-flip faults in stored weights (issue 16; Soroush, Shirazi, Raji, "Efficient triple modular
// redundancy for reliability enhancement of DNNs using explainable AI", brought to decoder LLMs).
//
// The decoder linear weights (q, k, v, o, gate, up, down; not embeddings, norms or biases) are
// encoded once in a storage type with GGMLBlockCodec (ggml block layout along each row of the HF
// [out, in] matrix), and the model is set to exactly what is stored (decode of the clean bytes).
// All stored bytes form one bit space (tensor after tensor, bit b of byte i = bit 8i + b, LSB = 0).
// A trial flips every bit independently with probability BER — values and block scales alike —
// decodes the touched blocks into the model, evaluates, and restores those blocks by decoding the
// clean bytes again (bit for bit what was there, since the model held decode(clean) before).
//
// Flip positions are drawn by geometric skips, not one Bernoulli per bit: the gap to the next flip
// is ⌊ln U / ln(1 − p)⌋ with U uniform in (0, 1], which gives exactly the independent-Bernoulli
// process at a cost proportional to the number of flips (3.4·10⁵ at BER 1e-4 over SmolLM2's
// 3.4·10⁹ f32 bits instead of 3.4·10⁹ draws).
//
// Triple modular redundancy: protected bits (ProtectedBits) are stored three times. Copy 1 is the
// primary storage (its flips are the primary draw, shared with the unprotected bits); copies 2 and
// 3 are extra storage over the protected bits only, with their own draws. A byte is read as copy 1
// for its unprotected bits and the bitwise majority of the three copies for its protected bits, so
// a protected bit is wrong exactly when two or three copies flipped it (probability 3p² − 2p³).

// Errors: QuantizationError (shared with the quantiser).

/// Where one weight's bits and one block's scale bits sit in a storage type's encoding.
public struct StorageGeometry: Sendable {
    public let type: GGMLType
    /// Weights per block, bytes per block, scale bytes at the start of each block.
    public let elements: Int, bytes: Int, scaleBytes: Int
    /// Bits of one weight's own value (32, 16, 8 or 4).
    public let valueBits: Int

    public init(_ type: GGMLType) throws {
        guard GGMLBlockCodec.types.contains(type), let l = type.blockLayout else { throw QuantizationError.unknownType(flag: "--storage", value: type.name.lowercased()) }
        self.type = type; elements = l.elements; bytes = l.bytes
        switch type {
        case .q8_0: scaleBytes = 2; valueBits = 8
        case .q4_0: scaleBytes = 2; valueBits = 4
        case .q4_1: scaleBytes = 4; valueBits = 4
        default: scaleBytes = 0; valueBits = 8 * l.bytes
        }
    }

    public var scaleBits: Int { 8 * scaleBytes }

    /// First bit of weight `i`'s value within its tensor's bytes (its `valueBits` bits are contiguous).
    /// Q4: weight j < 16 of a block is the low nibble of byte j, weight j ≥ 16 the high nibble of byte j − 16.
    @inline(__always) public func valueBit(_ i: Int) -> Int {
        if elements == 1 { return i * bytes * 8 }
        let b = i / elements, j = i % elements, base = b * bytes + scaleBytes
        if valueBits == 8 { return (base + j) * 8 }
        return (base + j % 16) * 8 + (j >= 16 ? 4 : 0)
    }

    /// First bit of block `b`'s scale fields (`scaleBits` contiguous bits; none for F32/F16/BF16).
    @inline(__always) public func scaleBit(_ b: Int) -> Int { b * bytes * 8 }
}

/// The decoder linear weights as stored, and the one bit space faults are drawn in.
public final class FaultStorage {
    public let geometry: StorageGeometry
    public let linears: [Linear]
    /// Clean encoded bytes of each linear (ggml blocks along rows of [out, in]).
    let clean: [[UInt8]]
    /// Global index of each linear's first byte; `byteOffsets.last` = total bytes.
    public let byteOffsets: [Int]
    /// Global index of each linear's first weight; `weightOffsets.last` = total weights.
    public let weightOffsets: [Int]
    public var totalBits: Int { 8 * byteOffsets.last! }
    public var totalWeights: Int { weightOffsets.last! }

    /// Encodes every decoder linear of `model` in `type` and sets the model's weights to the decode of
    /// those bytes (the model then holds exactly what is stored).
    public convenience init(model: Model, type: GGMLType) throws { try self.init(linears: model.linears, type: type) }

    /// The same for any linear layers (in this order).
    public init(linears: [Linear], type: GGMLType) throws {
        geometry = try StorageGeometry(type)
        self.linears = linears
        guard !linears.isEmpty else { throw QuantizationError.noWeights }
        var clean: [[UInt8]] = [], bo = [0], wo = [0]
        for l in linears {
            guard l.inDim % geometry.elements == 0 else { throw QuantizationError.rowNotBlocked(tensor: l.name, inDim: l.inDim, block: geometry.elements) }
            let bytes = GGMLBlockCodec.encode(l.weight, type: type)
            l.weight = GGMLBlockCodec.decode(bytes, type: type, count: l.weight.count)
            clean.append(bytes)
            bo.append(bo.last! + bytes.count); wo.append(wo.last! + l.weight.count)
        }
        self.clean = clean; byteOffsets = bo; weightOffsets = wo
    }

    /// Index of the linear holding global byte `byte`.
    func tensor(ofByte byte: Int) -> Int { Self.segment(byteOffsets, byte) }

    /// The largest i with offsets[i] ≤ x (offsets ascending, offsets[0] = 0).
    static func segment(_ offsets: [Int], _ x: Int) -> Int {
        var lo = 0, hi = offsets.count
        while hi - lo > 1 { let mid = (lo + hi) / 2; if offsets[mid] <= x { lo = mid } else { hi = mid } }
        return lo
    }

    /// Blocks a trial changed: (linear, block), to restore.
    public struct Touched { var blocks: [(tensor: Int, block: Int)] = []; public var count: Int { blocks.count } }

    /// XORs `flips` (global byte → mask, sorted by byte, masks non-zero) into copies of the clean blocks
    /// and decodes those blocks into the model. Returns what to restore.
    public func inject(_ flips: [(byte: Int, mask: UInt8)]) -> Touched {
        var touched = Touched()
        let g = geometry
        var i = 0
        var buf = [UInt8](repeating: 0, count: g.bytes)
        while i < flips.count {
            let t = tensor(ofByte: flips[i].byte), end = byteOffsets[t + 1]
            var j = i
            while j < flips.count, flips[j].byte < end { j += 1 }
            let base = byteOffsets[t]
            clean[t].withUnsafeBufferPointer { src in
                linears[t].weight.withUnsafeMutableBufferPointer { w in
                    var k = i
                    while k < j {
                        let block = (flips[k].byte - base) / g.bytes
                        for q in 0..<g.bytes { buf[q] = src[block * g.bytes + q] }
                        while k < j, (flips[k].byte - base) / g.bytes == block {
                            buf[(flips[k].byte - base) % g.bytes] ^= flips[k].mask; k += 1
                        }
                        buf.withUnsafeBytes { ggmlDequantize($0.baseAddress!, type: g.type, blocks: 1, into: w.baseAddress! + block * g.elements) }
                        touched.blocks.append((t, block))
                    }
                }
            }
            i = j
        }
        return touched
    }

    /// Decodes the clean bytes of every touched block back into the model (bit-exact restore).
    public func restore(_ touched: Touched) {
        let g = geometry
        var i = 0
        let b = touched.blocks
        while i < b.count {
            let t = b[i].tensor
            var j = i
            while j < b.count, b[j].tensor == t { j += 1 }
            clean[t].withUnsafeBytes { src in
                linears[t].weight.withUnsafeMutableBufferPointer { w in
                    for k in i..<j {
                        ggmlDequantize(src.baseAddress! + b[k].block * g.bytes, type: g.type, blocks: 1, into: w.baseAddress! + b[k].block * g.elements)
                    }
                }
            }
            i = j
        }
    }
}

/// Bits stored three times: sorted, disjoint ranges [start, end) of the global bit space.
public struct ProtectedBits: Sendable {
    public private(set) var starts: [Int] = [], ends: [Int] = []
    /// prefix[i] = protected bits in ranges 0..<i.
    private var prefix: [Int] = [0]
    /// Weights whose value bits are protected, and blocks whose scale bits are.
    public var weights = 0, scaleBlocks = 0
    public var count: Int { prefix.last! }

    public init() {}

    /// From unsorted ranges (start, length); adjacent or overlapping ranges are merged.
    public init(ranges: [(start: Int, length: Int)], weights: Int = 0, scaleBlocks: Int = 0) {
        self.weights = weights; self.scaleBlocks = scaleBlocks
        for r in ranges.sorted(by: { $0.start < $1.start }) where r.length > 0 {
            if let e = ends.last, r.start <= e { ends[ends.count - 1] = max(e, r.start + r.length) } else {
                starts.append(r.start); ends.append(r.start + r.length)
            }
        }
        for i in starts.indices { prefix.append(prefix.last! + ends[i] - starts[i]) }
    }

    /// The range index holding `bit`, or nil.
    @inline(__always) func range(of bit: Int) -> Int? {
        guard let f = starts.first, bit >= f else { return nil }
        let i = FaultStorage.segment(starts, bit)
        return bit < ends[i] ? i : nil
    }

    public func contains(_ bit: Int) -> Bool { range(of: bit) != nil }

    /// The global bit of the `ordinal`-th protected bit (0 ≤ ordinal < count).
    public func bit(ordinal: Int) -> Int {
        let i = FaultStorage.segment(prefix, ordinal)
        return starts[i] + ordinal - prefix[i]
    }

    /// The protected bits of global byte `byte` as a mask.
    func mask(ofByte byte: Int) -> UInt8 {
        let lo = 8 * byte, hi = lo + 8
        var m: UInt8 = 0
        var i = starts.isEmpty || lo < starts[0] ? 0 : FaultStorage.segment(starts, lo)
        while i < starts.count, starts[i] < hi {
            let a = max(lo, starts[i]), b = min(hi, ends[i])
            if a < b { for x in a..<b { m |= 1 << UInt8(x - lo) } }
            i += 1
        }
        return m
    }
}

public enum BitFlips {
    /// Positions in 0..<n, each included independently with probability p: geometric gaps
    /// ⌊ln U / ln(1 − p)⌋, U uniform in (0, 1].
    public static func draw(n: Int, p: Double, rng: inout SeededRNG) -> [Int] {
        precondition(p > 0 && p < 1)
        var out: [Int] = []
        out.reserveCapacity(Int(min(Double(n) * p * 1.2 + 16, 1e8)))
        let lq = log1p(-p)
        var pos = -1
        while true {
            let u = 1 - rng.uniform()                         // (0, 1]
            let gap = (log(u) / lq).rounded(.down)
            guard gap < Double(n - pos) else { break }        // also catches +∞ gaps
            pos += 1 + Int(gap)
            if pos >= n { break }
            out.append(pos)
        }
        return out
    }

    /// The generator for one copy's draw in one trial: a function of (seed, trial, BER, copy) only,
    /// so a trial is reproducible on its own and every criterion sees the same primary flips.
    public static func stream(seed: UInt64, trial: Int, ber: Double, copy: Int) -> SeededRNG {
        func mix(_ x: UInt64) -> UInt64 { var r = SeededRNG(seed: x); return r.next() }
        var s = mix(seed) ^ UInt64(truncatingIfNeeded: trial) &* 0x9E37_79B9_7F4A_7C15
        s = mix(s) ^ ber.bitPattern
        s = mix(s) ^ UInt64(truncatingIfNeeded: copy) &* 0xD6E8_FEB8_6659_FD93
        return SeededRNG(seed: mix(s))
    }

    /// Bitwise majority of three copies.
    @inline(__always) public static func majority(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> UInt8 { (a & b) | (a & c) | (b & c) }

    /// What is read after the vote, as XOR masks per global byte (sorted, non-zero):
    /// `primary` are flipped global bits of copy 1 (all storage), `copy2`/`copy3` flipped global bits
    /// of the extra copies (protected bits only). Unprotected bits read copy 1; protected bits the
    /// majority of the three copies (clean ^ majority(m1, m2, m3) = majority of the three stored bytes).
    public static func readMasks(primary: [Int], copy2: [Int] = [], copy3: [Int] = [], protected: ProtectedBits) -> [(byte: Int, mask: UInt8)] {
        // (bit << 2 | copy), sorted: all flips of one byte together.
        var keys: [Int] = []
        keys.reserveCapacity(primary.count + copy2.count + copy3.count)
        for b in primary { keys.append(b << 2) }
        for b in copy2 { precondition(protected.contains(b)); keys.append(b << 2 | 1) }
        for b in copy3 { precondition(protected.contains(b)); keys.append(b << 2 | 2) }
        keys.sort()
        var out: [(byte: Int, mask: UInt8)] = []
        out.reserveCapacity(primary.count)
        var i = 0
        while i < keys.count {
            let byte = keys[i] >> 5
            var m = [UInt8](repeating: 0, count: 3)
            while i < keys.count, keys[i] >> 5 == byte {
                let bit = (keys[i] >> 2) & 7, copy = keys[i] & 3
                m[copy] |= 1 << UInt8(bit); i += 1
            }
            let pm = protected.count == 0 ? 0 : protected.mask(ofByte: byte)
            let read = (m[0] & ~pm) | (majority(m[0], m[1], m[2]) & pm)
            if read != 0 { out.append((byte, read)) }
        }
        return out
    }

    /// One trial's read masks: the primary draw over all stored bits, and (when bits are protected)
    /// draws for copies 2 and 3 over the protected bits, mapped to their global positions.
    public static func trial(totalBits: Int, ber: Double, seed: UInt64, trial: Int, protected: ProtectedBits) -> (masks: [(byte: Int, mask: UInt8)], primaryFlips: Int) {
        var r1 = stream(seed: seed, trial: trial, ber: ber, copy: 1)
        let primary = draw(n: totalBits, p: ber, rng: &r1)
        guard protected.count > 0 else { return (readMasks(primary: primary, protected: protected), primary.count) }
        var r2 = stream(seed: seed, trial: trial, ber: ber, copy: 2), r3 = stream(seed: seed, trial: trial, ber: ber, copy: 3)
        let c2 = draw(n: protected.count, p: ber, rng: &r2).map { protected.bit(ordinal: $0) }
        let c3 = draw(n: protected.count, p: ber, rng: &r3).map { protected.bit(ordinal: $0) }
        return (readMasks(primary: primary, copy2: c2, copy3: c3, protected: protected), primary.count)
    }
}
