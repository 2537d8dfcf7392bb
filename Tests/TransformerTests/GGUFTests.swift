import Foundation
import XCTest
@testable import Transformer
import Tokenize
import TestSupport

// MARK: - A minimal GGUF writer for hand-built files

private struct GGUFBuilder {
    var version: UInt32 = 3
    var kv: [(String, UInt32, Data)] = []
    var tensors: [(String, [UInt64], UInt32, Data)] = []

    static func le<T: FixedWidthInteger>(_ v: T) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func str(_ s: String) -> Data { le(UInt64(s.utf8.count)) + Data(s.utf8) }

    mutating func add(_ key: String, u32 v: UInt32) { kv.append((key, 4, Self.le(v))) }
    mutating func add(_ key: String, f32 v: Float) { kv.append((key, 6, Self.le(v.bitPattern))) }
    mutating func add(_ key: String, string v: String) { kv.append((key, 8, Self.str(v))) }
    mutating func add(_ key: String, bool v: Bool) { kv.append((key, 7, Data([v ? 1 : 0]))) }
    mutating func add(_ key: String, strings v: [String]) {
        kv.append((key, 9, Self.le(UInt32(8)) + Self.le(UInt64(v.count)) + v.reduce(Data()) { $0 + Self.str($1) }))
    }
    mutating func add(_ key: String, i32s v: [Int32]) {
        kv.append((key, 9, Self.le(UInt32(5)) + Self.le(UInt64(v.count)) + v.reduce(Data()) { $0 + Self.le($1) }))
    }
    mutating func addF32(_ name: String, dims: [UInt64], _ values: [Float]) {
        tensors.append((name, dims, 0, values.reduce(Data()) { $0 + Self.le($1.bitPattern) }))
    }

    func build() -> Data {
        var d = Data("GGUF".utf8) + Self.le(version) + Self.le(UInt64(tensors.count)) + Self.le(UInt64(kv.count))
        for (k, t, v) in kv { d += Self.str(k) + Self.le(t) + v }
        var offset: UInt64 = 0, blobs = Data()
        for (name, dims, type, data) in tensors {
            d += Self.str(name) + Self.le(UInt32(dims.count)) + dims.reduce(Data()) { $0 + Self.le($1) } + Self.le(type) + Self.le(offset)
            blobs += data
            let padded = (data.count + 31) / 32 * 32
            blobs += Data(count: padded - data.count)
            offset += UInt64(padded)
        }
        d += Data(count: (32 - d.count % 32) % 32)
        return d + blobs
    }
}

private func h(_ v: UInt16) -> Data { GGUFBuilder.le(v) }

private func write(_ data: Data, in test: XCTestCase, name: String = "t.gguf") throws -> String {
    let url = try Scratch.dir(test).appendingPathComponent(name)
    try data.write(to: url)
    return url.path
}

/// Deterministic pseudo-random values (xorshift), exactly representable in F16.
private func values(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed
    return (0..<n).map { _ in s ^= s << 13; s ^= s >> 7; s ^= s << 17; return Float(Int(s % 257) - 128) / 64 }
}

final class GGUFTests: XCTestCase {
    // MARK: - Dequantization of hand-built blocks

    private func dequant(_ bytes: Data, _ type: GGMLType, blocks: Int, elements: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: elements)
        bytes.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { ggmlDequantize(src.baseAddress!, type: type, blocks: blocks, into: $0.baseAddress!) } }
        return out
    }

    func testQ4_0Block() {
        // d = 0.5; byte j has low nibble j and high nibble 15 - j.
        let block = h(0x3800) + Data((0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 })
        let lo: [Float] = (0..<16).map { (j: Int) -> Float in Float(j - 8) * 0.5 }
        let hi: [Float] = (0..<16).map { (j: Int) -> Float in Float(7 - j) * 0.5 }
        let expect = lo + hi
        XCTAssertEqual(dequant(block + block, .q4_0, blocks: 2, elements: 64), expect + expect)
    }

    func testQ4_1Block() {
        // d = 0.25, m = -1: value = q / 4 - 1.
        let block = h(0x3400) + h(0xBC00) + Data((0..<16).map { UInt8($0) | UInt8(($0 * 7) % 16) << 4 })
        let lo: [Float] = (0..<16).map { (j: Int) -> Float in Float(j) * 0.25 - 1 }
        let hi: [Float] = (0..<16).map { (j: Int) -> Float in Float((j * 7) % 16) * 0.25 - 1 }
        let expect = lo + hi
        XCTAssertEqual(dequant(block, .q4_1, blocks: 1, elements: 32), expect)
    }

    func testQ8_0Block() {
        let qs: [Int8] = (0..<32).map { Int8(truncatingIfNeeded: $0 * 9 - 128) }
        let block = h(0x4000) + Data(qs.map { UInt8(bitPattern: $0) })   // d = 2
        XCTAssertEqual(dequant(block, .q8_0, blocks: 1, elements: 32), qs.map { Float($0) * 2 })
    }

    func testF16AndBF16() {
        let half: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x3555, 0x8000]
        let want: [Float] = [1, -2, 65504, 5.9604645e-8, 0.333251953125, -0.0]
        XCTAssertEqual(dequant(half.reduce(Data()) { $0 + h($1) }, .f16, blocks: 6, elements: 6), want)
        let bf: [UInt16] = [0x3F80, 0xC040, 0x4049]
        XCTAssertEqual(dequant(bf.reduce(Data()) { $0 + h($1) }, .bf16, blocks: 3, elements: 3), [1, -3, 3.140625])
    }

    // MARK: - q/k permutation

    func testUnpermuteInvertsPermute() {
        for (heads, hd, cols) in [(9, 64, 5), (3, 64, 7), (2, 4, 1)] {
            let t = Tensor(shape: [heads * hd, cols], data: values(heads * hd * cols, seed: 7))
            let p = rotateHalfToInterleaved(t, heads: heads)
            XCTAssertNotEqual(p, t)
            XCTAssertEqual(interleavedToRotateHalf(p, heads: heads), t)
        }
        // Explicit row order for one head of 4 rows: interleaved rows (0,1,2,3) → rotate-half (0,2,1,3).
        let t = Tensor(shape: [4], data: [0, 1, 2, 3])
        XCTAssertEqual(interleavedToRotateHalf(t, heads: 1).data, [0, 2, 1, 3])
    }

    // MARK: - Tiny hand-built llama GGUF

    /// 1 layer, d 32, 2 heads of 16, 1 kv head, ffn 32, vocab 4; q is Q8_0, k is F16, the rest F32.
    private func tinyLlama(arch: String = "llama") -> (GGUFBuilder, q: [Float], k: [Float]) {
        var b = GGUFBuilder()
        b.add("general.architecture", string: arch)
        b.add("llama.embedding_length", u32: 32); b.add("llama.block_count", u32: 1)
        b.add("llama.feed_forward_length", u32: 32); b.add("llama.attention.head_count", u32: 2)
        b.add("llama.attention.head_count_kv", u32: 1); b.add("llama.context_length", u32: 64)
        b.add("llama.attention.layer_norm_rms_epsilon", f32: 1e-5); b.add("llama.rope.freq_base", f32: 100000)
        b.add("tokenizer.ggml.model", string: "gpt2"); b.add("tokenizer.ggml.pre", string: "smollm")
        b.add("tokenizer.ggml.tokens", strings: ["a", "b", "<s>", "</s>"]); b.add("tokenizer.ggml.merges", strings: ["a b"])
        b.add("tokenizer.ggml.token_type", i32s: [1, 1, 3, 3])
        b.add("tokenizer.ggml.bos_token_id", u32: 2); b.add("tokenizer.ggml.eos_token_id", u32: 3)
        b.add("tokenizer.ggml.add_bos_token", bool: false)
        b.addF32("token_embd.weight", dims: [32, 4], values(128, seed: 1))
        b.addF32("output_norm.weight", dims: [32], values(32, seed: 2))
        b.addF32("blk.0.attn_norm.weight", dims: [32], values(32, seed: 3))
        b.addF32("blk.0.ffn_norm.weight", dims: [32], values(32, seed: 4))
        // q: Q8_0 with d = 1/64 so values are q/64 exactly.
        let qInts = (0..<1024).map { Int8(truncatingIfNeeded: $0 * 37) }
        var qData = Data()
        for blk in 0..<32 { qData += h(0x2400) + Data(qInts[blk * 32 ..< blk * 32 + 32].map { UInt8(bitPattern: $0) }) }
        b.tensors.append(("blk.0.attn_q.weight", [32, 32], 8, qData))
        let k = values(512, seed: 5)
        b.tensors.append(("blk.0.attn_k.weight", [32, 16], 1, k.reduce(Data()) { $0 + h(floatToHalf($1)) }))
        for (i, n) in ["attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"].enumerated() {
            let dims: [UInt64] = n == "attn_v" ? [32, 16] : [32, 32]
            b.addF32("blk.0.\(n).weight", dims: dims, values(Int(dims[0] * dims[1]), seed: 10 + UInt64(i)))
        }
        return (b, qInts.map { Float($0) / 64 }, k)
    }

    func testTinyLlamaLoads() throws {
        let (b, q, k) = tinyLlama()
        let path = try write(b.build(), in: self)
        let g = try GGUFFile(path: path)
        XCTAssertEqual(g.version, 3)
        XCTAssertEqual(g.tensors.count, 11)
        XCTAssertEqual(g.summary.typeHistogram, ["F32": 9, "Q8_0": 1, "F16": 1])
        XCTAssertEqual(g.tokenizerHints, TokenizerHints(bosId: 2, eosId: 3, addBOS: false))
        let ck = try loadGGUF(g)
        let c = ck.config
        XCTAssertEqual([c.dModel, c.nLayers, c.nHeads, c.nKVHeads, c.headDim, c.dFF, c.vocabSize, c.maxSeqLen], [32, 1, 2, 1, 16, 32, 4, 64])
        XCTAssertEqual(c.ropeTheta, 100000); XCTAssertEqual(c.normEps, 1e-5)
        XCTAssertTrue(c.tiedEmbeddings); XCTAssertNil(ck.tensors["lm_head.weight"])
        XCTAssertEqual(ck.sourceDType, "F32")
        XCTAssertEqual(ck.tensors.count, 11)
        XCTAssertEqual(ck.tensors["model.embed_tokens.weight"]?.data, values(128, seed: 1))
        XCTAssertEqual(ck.tensors["model.layers.0.mlp.down_proj.weight"]?.shape, [32, 32])
        XCTAssertEqual(ck.tensors["model.layers.0.self_attn.v_proj.weight"]?.shape, [16, 32])
        XCTAssertEqual(ck.tensors["model.layers.0.self_attn.q_proj.weight"],
                       interleavedToRotateHalf(Tensor(shape: [32, 32], data: q), heads: 2))
        XCTAssertEqual(ck.tensors["model.layers.0.self_attn.k_proj.weight"],
                       interleavedToRotateHalf(Tensor(shape: [16, 32], data: k), heads: 1))
        guard case .ggufBPE(let tokens, let merges, let types, let pre, _)? = ck.tokenizer else { return XCTFail("tokenizer") }
        XCTAssertEqual(tokens, ["a", "b", "<s>", "</s>"]); XCTAssertEqual(merges, ["a b"])
        XCTAssertEqual(types, [1, 1, 3, 3]); XCTAssertEqual(pre, "smollm")
    }

    func testMetadataValueTypes() throws {
        var b = GGUFBuilder()
        func le<T: FixedWidthInteger>(_ v: T) -> Data { GGUFBuilder.le(v) }
        let f32s: Data = le(UInt32(6)) + le(UInt64(2)) + le(Float(0.5).bitPattern) + le(Float(-1).bitPattern)
        let nested: Data = le(UInt32(9)) + le(UInt64(1)) + le(UInt32(0)) + le(UInt64(2)) + Data([1, 2])
        let entries: [(String, UInt32, Data)] = [
            ("u8", 0, Data([200])), ("i8", 1, Data([0xFE])), ("u16", 2, le(UInt16(65000))), ("i16", 3, le(Int16(-300))),
            ("i32", 5, le(Int32(-7))), ("u64", 10, le(UInt64(1) << 40)), ("i64", 11, le(Int64(-5))),
            ("f64", 12, le(Double(2.5).bitPattern)), ("f32s", 9, f32s), ("nested", 9, nested),
        ]
        b.kv += entries
        b.add("general.alignment", u32: 64)
        let g = try GGUFFile(path: try write(b.build(), in: self))
        XCTAssertEqual(g.metadata["u8"], .uint(200)); XCTAssertEqual(g.metadata["i8"], .int(-2))
        XCTAssertEqual(g.metadata["u16"], .uint(65000)); XCTAssertEqual(g.metadata["i16"], .int(-300))
        XCTAssertEqual(try g.int("i32"), -7); XCTAssertEqual(try g.int("u64"), 1 << 40); XCTAssertEqual(try g.int("i64"), -5)
        XCTAssertEqual(try g.double("f64"), 2.5)
        XCTAssertEqual(g.metadata["f32s"], .floatArray([0.5, -1]))
        XCTAssertEqual(g.metadata["nested"], .nestedArray([.intArray([1, 2])]))
        XCTAssertEqual(g.alignment, 64)
        XCTAssertThrowsError(try g.int("f32s"))
        XCTAssertEqual(g.metadataKeys.first, "u8")
    }

    // MARK: - Corrupt and unsupported inputs

    /// Loading `data` must throw the GGUFError `expected(path)`; the message must name the file.
    private func assertGGUFError(_ data: Data, _ expected: (String) -> GGUFError, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try write(data, in: self)
        XCTAssertThrowsError(try loadGGUF(path: path), file: file, line: line) { e in
            XCTAssertEqual(e as? GGUFError, expected(path), file: file, line: line)
            XCTAssertTrue(e.localizedDescription.contains(path), file: file, line: line)
        }
    }

    func testBadMagicAndVersion() throws {
        var data = tinyLlama().0.build()
        data[0] = UInt8(ascii: "X")
        try assertGGUFError(data) { .badMagic(path: $0) }
        for v: UInt32 in [1, 4, 0x0300_0000] {
            var b = tinyLlama().0; b.version = v
            try assertGGUFError(b.build()) { .unsupportedVersion(path: $0, version: v) }
        }
    }

    func testTruncatedAnywhereIsTypedError() throws {
        let data = tinyLlama().0.build()
        let dir = try Scratch.dir(self)
        for cut in stride(from: 4, to: data.count, by: 13) {
            let url = dir.appendingPathComponent("cut\(cut).gguf")
            try data.prefix(cut).write(to: url)
            XCTAssertThrowsError(try loadGGUF(path: url.path)) { e in
                guard let g = e as? GGUFError else { return XCTFail("cut \(cut): \(e)") }
                switch g {
                case .truncated, .tensorOutOfRange, .absurdCount: break
                default: XCTFail("cut \(cut): \(g)")
                }
            }
        }
        // 24-byte header + 45-byte first pair + 30-byte key: byte 99 starts the 2nd value type.
        try assertGGUFError(data.prefix(100)) { .truncated(path: $0, what: "llama.embedding_length", offset: 99) }
        try assertGGUFError(data.prefix(data.count - 8)) {
            .tensorOutOfRange(path: $0, tensor: "blk.0.ffn_down.weight", end: data.count, fileSize: data.count - 8)
        }
    }

    func testAbsurdCountsAndUnsupported() throws {
        var data = tinyLlama().0.build()
        data.replaceSubrange(8..<16, with: GGUFBuilder.le(UInt64(1) << 50))
        try assertGGUFError(data) { .absurdCount(path: $0, what: "tensor count", count: 1 << 50) }

        try assertGGUFError(tinyLlama(arch: "gpt2").0.build()) { .unsupportedArchitecture(path: $0, architecture: "gpt2") }

        var b = tinyLlama().0
        XCTAssertEqual(b.tensors[4].0, "blk.0.attn_q.weight")
        b.tensors[4] = (b.tensors[4].0, [32, 32], 6, Data(count: 32 * 22))   // Q5_0: known layout, no dequantizer
        try assertGGUFError(b.build()) { .unsupportedTensorType(path: $0, tensor: "blk.0.attn_q.weight", type: "Q5_0") }
    }

    // MARK: - Real SmolLM2-135M-Instruct (Q4_1)

    func testSmolLM2() throws {
        let path = try Assets.smolLM2()
        let t0 = Date()
        let g = try GGUFFile(path: path)
        let s = g.summary
        XCTAssertEqual(s.version, 3); XCTAssertEqual(s.tensorCount, 272)
        XCTAssertEqual(s.typeHistogram, ["Q8_0": 1, "Q4_1": 210, "F32": 61])
        XCTAssertEqual(g.architecture, "llama")
        XCTAssertEqual(g.tokenizerHints, TokenizerHints(bosId: 1, eosId: 2, addBOS: false))
        let ck = try loadGGUF(g)
        print("SmolLM2 GGUF open+dequant: \(String(format: "%.3f", Date().timeIntervalSince(t0))) s")
        let c = ck.config
        XCTAssertEqual([c.nLayers, c.dModel, c.dFF, c.nHeads, c.nKVHeads, c.headDim, c.vocabSize], [30, 576, 1536, 9, 3, 64, 49152])
        XCTAssertEqual(c.ropeTheta, 100000); XCTAssertEqual(c.normEps, 1e-5, accuracy: 1e-9)
        XCTAssertEqual(c.bosTokenId, 1); XCTAssertEqual(c.eosTokenId, 2)
        XCTAssertTrue(c.tiedEmbeddings); XCTAssertNil(ck.tensors["lm_head.weight"])
        XCTAssertEqual(ck.sourceDType, "Q4_1"); XCTAssertEqual(ck.format, "gguf")
        XCTAssertEqual(ck.tensors.count, 272)
        XCTAssertEqual(ck.tensors["model.embed_tokens.weight"]?.shape, [49152, 576])
        XCTAssertEqual(ck.tensors["model.layers.0.self_attn.q_proj.weight"]?.shape, [576, 576])
        XCTAssertEqual(ck.tensors["model.layers.29.self_attn.k_proj.weight"]?.shape, [192, 576])
        XCTAssertEqual(ck.tensors["model.layers.3.mlp.down_proj.weight"]?.shape, [576, 1536])
        XCTAssertEqual(ck.tensors["model.norm.weight"]?.shape, [576])
        guard case .ggufBPE(let tokens, let merges, let types, let pre, _)? = ck.tokenizer else { return XCTFail("tokenizer") }
        XCTAssertEqual(tokens.count, 49152); XCTAssertEqual(merges.count, 48900); XCTAssertEqual(types.count, 49152)
        XCTAssertEqual(tokens[1], "<|im_start|>"); XCTAssertNotNil(pre)
        try compareToGoldens(ck)
    }

    /// Dequantized, un-permuted values sampled by tools/gguf_goldens.py from transformers' own GGUF loader.
    private func compareToGoldens(_ ck: Checkpoint) throws {
        let url = URL(fileURLWithPath: try Fixtures.path("smollm2_goldens.json"))
        guard let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any],
              let samples = json["tensor_samples"] as? [[String: Any]], !samples.isEmpty else { return XCTFail("no tensor_samples") }
        for s in samples {
            guard let name = s["name"] as? String, let shape = s["shape"] as? [Int], let rows = s["rows"] as? [Int],
                  let vals = s["values"] as? [[Double]], let t = ck.tensors[name] else { return XCTFail("sample \(s["name"] ?? "?")") }
            XCTAssertEqual(t.shape, shape, name)
            for (r, want) in zip(rows, vals) {
                for (j, w) in want.enumerated() { XCTAssertEqual(Double(t.data[r * t.cols + j]), w, accuracy: 1e-6, "\(name)[\(r), \(j)]") }
            }
            if let sum = s["sum"] as? Double {
                XCTAssertEqual(t.data.reduce(0.0) { $0 + Double($1) }, sum, accuracy: 1e-3 * max(1, abs(sum)), "\(name) sum")
            }
        }
    }
}
