import XCTest
import Transformer
import TestSupport
@testable import Circuits

/// The codec against ggml's reference rows as the `gguf` package encodes them, and the GGUF
/// writer against the same package's GGUFWriter (golden: Tests/Fixtures/goldens/ggml_blocks.gguf,
/// tools/ggml_block_goldens.py).
final class GGMLBlockCodecTests: XCTestCase {
    private func golden() throws -> GGUFFile { try GGUFFile(path: try Fixtures.path("goldens/ggml_blocks.gguf")) }

    func testEncodingIsBitExactWithGGUFPackage() throws {
        let g = try golden()
        let input = try g.dequantize(try XCTUnwrap(g.tensor(named: "input")))
        XCTAssertEqual(input.count, 1024)
        for (name, type) in [("f16", GGMLType.f16), ("bf16", .bf16), ("q8_0", .q8_0), ("q4_0", .q4_0), ("q4_1", .q4_1)] {
            let info = try XCTUnwrap(g.tensor(named: name))
            XCTAssertEqual(info.type, type)
            let expected = try XCTUnwrap(g.rawBytes(info))
            let ours = GGMLBlockCodec.encode(input, type: type)
            XCTAssertEqual(ours.count, expected.count, name)
            let diff = zip(ours, expected).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
            XCTAssertEqual(diff.count, 0, "\(name): \(diff.count) bytes differ, first at \(diff.first ?? -1): \(ours.prefix(6)) vs \(expected.prefix(6))")
            // Decoding the golden bytes gives what the loader gives.
            XCTAssertEqual(GGMLBlockCodec.decode(expected, type: type, count: input.count), try g.dequantize(info), name)
        }
        XCTAssertEqual(GGMLBlockCodec.encode(input, type: .f32), try XCTUnwrap(g.rawBytes(try XCTUnwrap(g.tensor(named: "input")))))
    }

    func testWriterReproducesGGUFPackageFileByteForByte() throws {
        let g = try golden()
        let tensors = try g.tensors.map { t in
            GGUFTensorRecord(name: t.name, dims: t.dims, type: t.type, data: try XCTUnwrap(g.rawBytes(t)))
        }
        XCTAssertEqual(g.metadataTypes["test.ints"], .array(5))
        let out = try Scratch.dir(self).appendingPathComponent("copy.gguf").path
        try GGUFWriter.write(to: out, metadata: g.metadataItems, tensors: tensors)
        let a = try Data(contentsOf: URL(fileURLWithPath: out)), b = try Data(contentsOf: URL(fileURLWithPath: g.path))
        XCTAssertEqual(a.count, b.count)
        XCTAssertTrue(a == b, "our GGUF differs from gguf-py's")
        // Read back by our reader: same metadata and tensors.
        let r = try GGUFFile(path: out)
        XCTAssertEqual(r.metadataKeys, g.metadataKeys)
        XCTAssertEqual(r.string("test.string"), "héllo")
        XCTAssertEqual(try r.int("test.u64"), 1 << 40)
        XCTAssertEqual(try r.dequantize(try XCTUnwrap(r.tensor(named: "q4_1"))), try g.dequantize(try XCTUnwrap(g.tensor(named: "q4_1"))))
    }

    func testWriterRefusesInconsistentTensors() throws {
        let out = try Scratch.dir(self).appendingPathComponent("bad.gguf").path
        XCTAssertThrowsError(try GGUFWriter.write(to: out, metadata: [], tensors: [
            GGUFTensorRecord(name: "w", dims: [48, 2], type: .q4_0, data: [UInt8](repeating: 0, count: 54))])) { e in
            XCTAssertEqual(e as? GGUFWriterError, .badTensor(name: "w", reason: "row length 48 is not a multiple of the Q4_0 block size 32"))
        }
        XCTAssertThrowsError(try GGUFWriter.write(to: out, metadata: [], tensors: [
            GGUFTensorRecord(name: "w", dims: [32, 2], type: .q8_0, data: [UInt8](repeating: 0, count: 34))]))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing half-written")
    }

    /// Error bounds per type on random data: |x − x̂| ≤ d/2 per block (d the stored scale), and exact
    /// round trips for values the type represents.
    func testErrorBoundsAndExactRoundTrips() {
        var rng = SplitMix(seed: 7)
        let x = (0..<4096).map { _ in Float(rng.normal()) * 0.1 }
        for type in [GGMLType.q8_0, .q4_0, .q4_1] {
            let y = GGMLBlockCodec.decode(GGMLBlockCodec.encode(x, type: type), type: type, count: x.count)
            for b in 0..<(x.count / 32) {
                let blk = x[(32 * b)..<(32 * b + 32)]
                // One quantisation step (Q4_0's clamp at +7 costs up to a full step on the side
                // opposite the largest |x|), plus the f16 rounding of the scale (≤ 2⁻¹¹ relative) times the largest level.
                let (step, steps, maxLevel): (Float, Float, Float) = type == .q8_0 ? (blk.map(abs).max()! / 127, 0.5, 127)
                    : type == .q4_0 ? (blk.map(abs).max()! / 8, 1, 8) : ((blk.max()! - blk.min()!) / 15, 0.5, 15)
                let bound = step * (steps + maxLevel / 2048) + abs(blk.min()!) / 2048 + 1e-7
                for j in (32 * b)..<(32 * b + 32) { XCTAssertLessThanOrEqual(abs(x[j] - y[j]), bound, "\(type) block \(b)") }
            }
        }
        // Representable: integers −8…7 times a power of two for Q4_0, with −8 present.
        let rep = (0..<64).map { Float(($0 % 16) - 8) * 0.25 }
        XCTAssertEqual(GGMLBlockCodec.decode(GGMLBlockCodec.encode(rep, type: .q4_0), type: .q4_0, count: 64), rep)
        let rep8 = (0..<64).map { Float(($0 * 37) % 255 - 127) / 64 }
        XCTAssertEqual(GGMLBlockCodec.decode(GGMLBlockCodec.encode(rep8, type: .q8_0), type: .q8_0, count: 64).map { $0 * 64 }, rep8.map { $0 * 64 })
        let h = (0..<64).map { Float($0) * 0.5 - 3 }
        XCTAssertEqual(GGMLBlockCodec.decode(GGMLBlockCodec.encode(h, type: .f16), type: .f16, count: 64), h)
        XCTAssertEqual(GGMLBlockCodec.decode(GGMLBlockCodec.encode(h, type: .bf16), type: .bf16, count: 64), h)
        XCTAssertEqual(GGMLBlockCodec.decode(GGMLBlockCodec.encode(x, type: .f32), type: .f32, count: x.count), x)
    }

    /// Importance-weighted scales are never worse than plain ones on the weighted error, and
    /// strictly better in total on heavy-tailed importance.
    func testImportanceWeightedScalesNeverWorse() {
        var rng = SplitMix(seed: 11)
        let x = (0..<8192).map { _ in Float(rng.normal()) * 0.05 }
        let w = (0..<8192).map { _ in Float(exp(2 * rng.normal())) }
        for type in [GGMLType.q8_0, .q4_0, .q4_1] {
            let plain = GGMLBlockCodec.encode(x, type: type), weighted = GGMLBlockCodec.encode(x, type: type, importance: w)
            var total = (0.0, 0.0)
            for b in 0..<(x.count / 32) {
                let r = (32 * b)..<(32 * b + 32), bb = GGMLBlockCodec.byteCount(type, count: 32)
                let xb = Array(x[r]), wb = Array(w[r])
                let ep = GGMLBlockCodec.weightedError(xb, Array(plain[(bb * b)..<(bb * b + bb)]), type: type, importance: wb)
                let ew = GGMLBlockCodec.weightedError(xb, Array(weighted[(bb * b)..<(bb * b + bb)]), type: type, importance: wb)
                XCTAssertLessThanOrEqual(ew, ep * (1 + 1e-9), "\(type) block \(b)")
                total.0 += ep; total.1 += ew
            }
            XCTAssertLessThan(total.1, 0.97 * total.0, "\(type): weighted search should gain on heavy-tailed importance")
        }
    }

    /// A block the plain scale stores exactly (weighted error 0) keeps the plain bytes under the weighted search (the
    /// search is skipped for it: nothing is strictly better than 0), e.g. Q4_1 of a Q4_1 source, Q4_0/Q8_0 of grid values.
    func testExactlyStoredBlocksKeepPlainBytesUnderSearch() {
        var rng = SplitMix(seed: 13)
        // Q4_1 grid: m + d·q with q in 0…15 and both ends present in every block; d, m exact in f16.
        let q41 = (0..<4096).map { i -> Float in Float(i % 32 == 0 ? 0 : i % 32 == 1 ? 15 : Int(rng.next() % 16)) * 0.125 - 1.5 }
        let w = (0..<4096).map { _ in Float(exp(2 * rng.normal())) }
        for (x, type) in [(q41, GGMLType.q4_1), (q41.map { $0 - 0.5 }, .q4_0)] {
            let plain = GGMLBlockCodec.encodeMeasured(x, type: type, importance: w, search: false)
            let searched = GGMLBlockCodec.encodeMeasured(x, type: type, importance: w, search: true)
            if type == .q4_1 { XCTAssertEqual(plain.error, 0, "grid values are stored exactly") }
            XCTAssertEqual(searched.bytes, type == .q4_1 ? plain.bytes : searched.bytes)
            XCTAssertLessThanOrEqual(searched.error, plain.error)
        }
        let q41x = GGMLBlockCodec.decode(GGMLBlockCodec.encode(q41, type: .q4_1), type: .q4_1, count: q41.count)
        XCTAssertEqual(q41x, q41)
    }

    /// Q4_0's search eight blocks at a time (`encodeMeasured`) gives, block by block, the bytes and error of the one-block
    /// search (`encodeBlock`): heavy-tailed weights and importance, blocks stored exactly (not searched), all-zero blocks
    /// (scale 0), a constant block, huge and tiny scales, and a number of searched blocks that is not a multiple of 8.
    func testBatchedQ40SearchEqualsOneBlockSearch() {
        var rng = SplitMix(seed: 15)
        let blocks = GGMLBlockCodec.chunkBlocks + 13
        var x = (0..<(32 * blocks)).map { _ in Float(rng.normal() * exp(rng.normal())) * 0.02 }
        let w = (0..<(32 * blocks)).map { i in i % 97 == 0 ? 0 : Float(exp(2 * rng.normal())) }
        for j in 0..<32 {
            x[32 * 3 + j] = 0                                              // scale 0
            x[32 * 7 + j] = 0.25                                           // constant
            x[32 * 11 + j] = Float(j % 16 - 8) * 0.5                       // Q4_0 grid: stored exactly
            x[32 * 17 + j] *= 1e30; x[32 * 19 + j] *= 1e-30                // f16 overflow / underflow of the scale
        }
        let batched = GGMLBlockCodec.encodeMeasured(x, type: .q4_0, importance: w, search: true)
        var bytes = [UInt8](repeating: 0, count: 18 * blocks), total = 0.0
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                bytes.withUnsafeMutableBytes { o in
                    // One block at a time; chunk sums in chunk order, as encodeMeasured adds them.
                    var chunk = 0.0
                    for b in 0..<blocks {
                        let e = GGMLBlockCodec.encodeBlock(xp.baseAddress! + 32 * b, wp.baseAddress! + 32 * b, type: .q4_0, search: true,
                                                           into: o.baseAddress! + 18 * b)
                        XCTAssertEqual(Array(o[(18 * b)..<(18 * b + 18)]), Array(batched.bytes[(18 * b)..<(18 * b + 18)]), "block \(b)")
                        chunk += e
                        if (b + 1) % GGMLBlockCodec.chunkBlocks == 0 || b == blocks - 1 { total += chunk; chunk = 0 }
                    }
                }
            }
        }
        XCTAssertEqual(batched.bytes, bytes)
        XCTAssertEqual(batched.error.bitPattern, total.bitPattern)
        XCTAssertNotEqual(batched.bytes, GGMLBlockCodec.encode(x, type: .q4_0), "the search changed some blocks")
    }

    /// The F16 path (the CPU's conversion) stores exactly what floatToHalf stores, for every class of value: ties,
    /// subnormal results, values that underflow to 0, the largest finite halves and what overflows to ∞.
    func testF16EncodingEqualsFloatToHalfBitForBit() {
        var rng = SplitMix(seed: 14)
        var x: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, -70000, 1e-8, -3e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, 6.1e-5, 6.2e-5, .infinity, -.infinity]
        for k in 0..<2048 { x.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) ); _ = k }   // any bit pattern (NaN included)
        for k in 0..<1024 { x.append(Float(1 + k) * 0x1p-24 + 0x1p-35 * Float(k % 3)) }                       // subnormal rounding, ties
        let n = x.count
        let bytes = GGMLBlockCodec.encode(x, type: .f16)
        for i in 0..<n {
            let h = UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8
            XCTAssertEqual(h, floatToHalf(x[i]), "x = \(x[i]) (bits \(String(x[i].bitPattern, radix: 16)))")
        }
    }

    /// The error `encodeMeasured` sums block by block (several chunks, so several workers) is the error of
    /// decoding what it wrote, and the bytes are those of `encode`.
    func testMeasuredErrorEqualsDecodedError() {
        var rng = SplitMix(seed: 12)
        let n = 32 * (2 * GGMLBlockCodec.chunkBlocks + 5)
        let x = (0..<n).map { _ in Float(rng.normal()) * 0.05 }
        let w = (0..<n).map { _ in Float(exp(rng.normal())) }
        for type in GGMLBlockCodec.types {
            for (imp, search) in [(nil, false), (w, false), (w, true)] as [([Float]?, Bool)] {
                let m = GGMLBlockCodec.encodeMeasured(x, type: type, importance: imp, search: search)
                XCTAssertEqual(m.bytes, GGMLBlockCodec.encode(x, type: type, importance: search ? imp : nil), "\(type)")
                let e = GGMLBlockCodec.weightedError(x, m.bytes, type: type, importance: imp)
                XCTAssertEqual(m.error, e, accuracy: 1e-9 * max(e, 1e-30), "\(type) search \(search)")
                if type != .f32 { XCTAssertGreaterThan(m.error, 0) }
            }
            // Magnitude importance made chunk by chunk = the whole |x| given as importance, bit for bit.
            let a = x.map { abs($0) }
            for search in [false, true] {
                let lazy = GGMLBlockCodec.encodeMeasured(x, type: type, importance: nil, magnitude: true, search: search)
                let full = GGMLBlockCodec.encodeMeasured(x, type: type, importance: a, search: search)
                XCTAssertEqual(lazy.bytes, full.bytes, "\(type) search \(search)")
                XCTAssertEqual(lazy.error.bitPattern, full.error.bitPattern, "\(type) search \(search)")
            }
        }
    }
}

/// Deterministic generator for test data (SplitMix64 + Box–Muller).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9; z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func normal() -> Double { sqrt(-2 * log(max(uniform(), 1e-300))) * cos(2 * .pi * uniform()) }
}
