import Foundation
import XCTest
@testable import Transformer
import Tokenize
import TestSupport

// Hostile inputs by class (issue 12): sizes from file data, paths that are not regular
// files, config values that are absurd or contradict the weights, names quoted from
// corrupt files, shard paths leaving the model folder. Every case loads in-process
// (typed error, message naming file and key) and through the CLI (exit 1, `Error:`,
// no signal). Values differ from the fuzzing report's reproductions on purpose.

final class HostileInputTests: XCTestCase {
    private func editConfig(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: dir + "/config.json")
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&obj)
        try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]).write(to: url)
    }

    /// Loading fails with `ModelError.badConfig` for `key` whose message names every string in
    /// `names`; `workbench info` exits 1 with an `Error:` line naming them, without a signal.
    private func assertBadConfig(_ path: String, file expectedFile: String, key: String, names: [String],
                                 line: UInt = #line) throws {
        XCTAssertThrowsError(try ModelLoader.load(path), line: line) { e in
            guard case .badConfig(let f, let k, _)? = e as? ModelError else {
                return XCTFail("expected badConfig for \(key), got \(e)", line: line)
            }
            XCTAssertEqual(f, expectedFile, line: line)
            XCTAssertEqual(k, key, line: line)
            for n in names + [expectedFile, key] {
                XCTAssertTrue(e.localizedDescription.contains(n), "'\(e.localizedDescription)' should name '\(n)'", line: line)
            }
        }
        let r = try WorkbenchCLI.run(["info", "--model", path], timeout: 60)
        WorkbenchCLI.assertRuntimeError(r, mentions: names + [expectedFile, key], line: line)
    }

    // MARK: - config.json values, refused at load naming file and key

    func testAbsurdConfigValuesRefusedAtLoad() throws {
        // stories260K: hidden 64, 8 heads of 8, 4 kv heads, ffn 172, 5 layers, vocab 512.
        let cases: [(String, Any, [String])] = [
            ("max_position_embeddings", 1 << 45, ["35184372088832"]),     // would be a 2^45-row RoPE table
            ("max_position_embeddings", -7, ["-7"]),
            ("rope_theta", -250.0, ["-250"]),
            ("rope_theta", 0.0, ["0"]),
            ("rms_norm_eps", 0.0, ["0"]),
            ("rms_norm_eps", -0.25, ["-0.25"]),
            ("rms_norm_eps", 3.5, ["3.5"]),
            ("bos_token_id", 777, ["777", "512"]),
            ("eos_token_id", -4, ["-4"]),
            ("num_key_value_heads", 3, ["3", "8"]),
            ("num_attention_heads", 0, ["0"]),
            ("vocab_size", 1 << 30, ["1073741824"]),
        ]
        let hf = try Assets.path("stories260K/hf")
        for (key, value, names) in cases {
            let dir = try Scratch.dir(self).appendingPathComponent("m").path
            try FileManager.default.copyItem(atPath: hf, toPath: dir)
            try editConfig(dir) { $0[key] = value }
            try assertBadConfig(dir, file: dir + "/config.json", key: key, names: names)
        }
    }

    func testHeadsMustDivideHiddenSizeWithoutHeadDim() throws {
        let dir = try copyFixture("tiny-llama-bias", self)     // hidden 32, head_dim 8 stated
        try editConfig(dir) { $0["head_dim"] = nil; $0["num_attention_heads"] = 5; $0["num_key_value_heads"] = 5 }
        try assertBadConfig(dir, file: dir + "/config.json", key: "num_attention_heads", names: ["5", "hidden_size", "32"])
    }

    func testConfigContradictingWeightsNamesKeyAndBothValues() throws {
        let hf = try Assets.path("stories260K/hf")
        let cases: [(String, Int, [String])] = [
            ("hidden_size", 40, ["40", "64", "model.embed_tokens.weight"]),
            ("vocab_size", 300, ["300", "512"]),
            ("intermediate_size", 100, ["100", "172", "up_proj"]),
            ("num_hidden_layers", 2, ["2", "layers up to 4"]),
            ("num_hidden_layers", 7, ["7", "hold 5"]),
            ("num_key_value_heads", 8, ["64", "32", "k_proj"]),      // 8 kv heads × 8 = 64 rows; the file has 32
        ]
        for (key, value, names) in cases {
            let dir = try Scratch.dir(self).appendingPathComponent("m").path
            try FileManager.default.copyItem(atPath: hf, toPath: dir)
            try editConfig(dir) { $0[key] = value }
            try assertBadConfig(dir, file: dir + "/config.json", key: key, names: names)
        }
        // Flags and types: a flag needing tensors the file lacks, a number that is not an integer.
        let more: [(String, Any, [String])] = [
            ("tie_word_embeddings", false, ["lm_head.weight"]),
            ("attention_bias", true, ["model.layers.0.self_attn.q_proj.bias"]),
            ("mlp_bias", true, ["model.layers.0.mlp.up_proj.bias"]),
            ("hidden_size", 64.5, ["expected an integer", "64.5"]),
            ("num_hidden_layers", 1e19, ["expected an integer"]),
        ]
        for (key, value, names) in more {
            let dir = try Scratch.dir(self).appendingPathComponent("m").path
            try FileManager.default.copyItem(atPath: hf, toPath: dir)
            try editConfig(dir) { $0[key] = value }
            try assertBadConfig(dir, file: dir + "/config.json", key: key, names: names)
        }
        // OPT: the learned position table is the context + 2 rows.
        let opt = try copyFixture("tiny-opt", self)
        let rows = try XCTUnwrap(try SafetensorsFile(path: opt + "/model.safetensors").entries["model.decoder.embed_positions.weight"]).shape[0]
        try editConfig(opt) { $0["max_position_embeddings"] = rows + 5 }
        try assertBadConfig(opt, file: opt + "/config.json", key: "max_position_embeddings", names: ["\(rows + 5)", "\(rows) rows"])
    }

    // MARK: - RoPE table sized by use

    func testLargeDeclaredContextAllocatesOnlyWhatIsUsed() throws {
        let dir = try Scratch.dir(self).appendingPathComponent("m").path
        try FileManager.default.copyItem(atPath: try Assets.path("stories260K/hf"), toPath: dir)
        try editConfig(dir) { $0["max_position_embeddings"] = 1 << 26 }    // legal, and 2 × 2 GiB if allocated eagerly
        let m = try ModelLoader.load(dir, needTokenizer: false).model
        let rope = try XCTUnwrap(m.rope)
        XCTAssertEqual(rope.coveredPositions, 0)
        let logits = m.forward([1, 403, 407, 148])
        XCTAssertEqual(rope.coveredPositions, 256)             // the first growth step, not 2^26
        // Same numbers as with the original context (the table's rows do not depend on its size).
        let ref = try ModelLoader.load(try Assets.path("stories260K/hf"), needTokenizer: false).model
        let want = ref.forward([1, 403, 407, 148])
        XCTAssertEqual(logits.count, want.count)
        XCTAssertFalse(logits.contains { !$0.isFinite }, "logits of the large-context model")
        XCTAssertFalse(want.contains { !$0.isFinite }, "logits of the reference model")
        let worst = zip(logits, want).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertEqual(worst, 0, "max |Δlogit| \(worst)")
    }

    func testRopeTableGrowsWithIdenticalRows() {
        let small = RopeTable(headDim: 16, maxPos: 8, theta: 10000)
        let big = RopeTable(headDim: 16, maxPos: 4096, theta: 10000)
        let a = small.tables(upTo: 3000), b = big.tables(upTo: 3000)   // small grows past its context on demand
        XCTAssertEqual(a.cos.count, 3000 * 8)
        XCTAssertEqual(Array(a.cos.prefix(3000 * 8)), Array(b.cos.prefix(3000 * 8)))
        XCTAssertEqual(Array(a.sin.prefix(3000 * 8)), Array(b.sin.prefix(3000 * 8)))
        XCTAssertEqual(a.cos[8 * 2999 + 1], Float(cos(2999 * pow(10000.0, -2.0 / 16))), accuracy: 1e-6)
    }

    func testKVCacheGrowthGivesSameLogits() throws {
        let m = try ModelLoader.load(try Assets.path("stories260K/hf"), needTokenizer: false).model
        let prompt = [1, 403, 407, 148, 271, 263]
        let full = KVCache(config: m.config, capacity: 12)
        var grown = KVCache(config: m.config, capacity: prompt.count)
        XCTAssertEqual(m.step(prompt, cache: full), m.step(prompt, cache: grown))
        for t in [300, 17, 42, 99] {
            if grown.length == grown.capacity { grown = grown.grown(to: grown.capacity + 1) }
            XCTAssertEqual(m.step([t], cache: full), m.step([t], cache: grown))
        }
        XCTAssertEqual(grown.length, 10)
    }

    // MARK: - GGUF metadata

    private func setKV(_ g: inout TinyGGUF, _ key: String, type: UInt32, _ value: Data) {
        g.kv.removeAll { $0.0 == key }
        g.kv.append((key, type, value))
    }

    private func writeGGUF(_ g: TinyGGUF) throws -> String {
        let url = try Scratch.dir(self).appendingPathComponent("hostile.gguf")
        try g.build().write(to: url)
        return url.path
    }

    func testGGUFAbsurdMetadataRefusedNamingKey() throws {
        let cases: [(String, UInt32, Data, [String])] = [
            ("llama.context_length", 10, TinyGGUF.le(UInt64(1) << 33), ["8589934592"]),
            ("llama.context_length", 5, TinyGGUF.le(Int32(-3)), ["-3"]),
            ("llama.attention.layer_norm_rms_epsilon", 6, TinyGGUF.le(Float(-1e-6).bitPattern), ["-1e-06"]),
            ("llama.attention.layer_norm_rms_epsilon", 6, TinyGGUF.le(Float.nan.bitPattern), ["nan"]),
            ("llama.rope.freq_base", 6, TinyGGUF.le(Float.infinity.bitPattern), ["inf"]),
            ("llama.rope.freq_base", 6, TinyGGUF.le(Float(0).bitPattern), ["0"]),
            ("tokenizer.ggml.bos_token_id", 4, TinyGGUF.le(UInt32(9)), ["9", "4"]),
            ("tokenizer.ggml.eos_token_id", 11, TinyGGUF.le(Int64(-2)), ["-2"]),
            ("llama.embedding_length", 4, TinyGGUF.le(UInt32(48)), ["48", "32", "model.embed_tokens.weight"]),
            ("llama.feed_forward_length", 4, TinyGGUF.le(UInt32(40)), ["40", "32"]),
        ]
        for (key, type, value, names) in cases {
            var g = TinyGGUF.llama()
            setKV(&g, key, type: type, value)
            let path = try writeGGUF(g)
            XCTAssertThrowsError(try ModelLoader.load(path)) { e in
                for n in names + [path, key] {
                    XCTAssertTrue(e.localizedDescription.contains(n), "'\(e.localizedDescription)' should name '\(n)'")
                }
            }
            WorkbenchCLI.assertRuntimeError(try WorkbenchCLI.run(["info", "--model", path], timeout: 60), mentions: [path, key])
        }
    }

    func testGGUFHugeBlockCountFailsFast() throws {
        for count: UInt32 in [3, 250_000, 1 << 23] {
            var g = TinyGGUF.llama()
            setKV(&g, "llama.block_count", type: 4, TinyGGUF.le(count))
            let path = try writeGGUF(g)
            let t0 = Date()
            XCTAssertThrowsError(try ModelLoader.load(path)) { e in
                XCTAssertTrue(e.localizedDescription.contains("llama.block_count"), e.localizedDescription)
                XCTAssertTrue(e.localizedDescription.contains("\(count)"), e.localizedDescription)
            }
            XCTAssertLessThan(Date().timeIntervalSince(t0), 1.0)
        }
    }

    func testGGUFDuplicateMetadataKeyRefused() throws {
        var g = TinyGGUF.llama()
        g.u32("llama.block_count", 1)                        // a second copy of the key
        let path = try writeGGUF(g)
        XCTAssertThrowsError(try ModelLoader.load(path)) { e in
            XCTAssertEqual(e as? GGUFError, .badKey(path: path, key: "llama.block_count", reason: "appears twice"))
        }
    }

    // MARK: - Names quoted from corrupt files

    func testNamesFromCorruptFilesAreTruncatedAndEscaped() throws {
        var g = TinyGGUF.llama()
        let junk = "blk.\u{1B}[31m" + String(repeating: "\u{07}x", count: 3000)
        g.f32Tensor(junk, [4], seed: 1)
        let path = try writeGGUF(g)
        XCTAssertThrowsError(try ModelLoader.load(path)) { e in
            let m = e.localizedDescription
            XCTAssertLessThan(m.count, path.count + 300, m)
            XCTAssertFalse(m.unicodeScalars.contains { $0.value < 0x20 }, m)
            XCTAssertTrue(m.contains("blk.\\u{1b}[31m\\u{7}x"), m)
            XCTAssertTrue(m.contains("(6009 characters)"), m)
        }
        let r = try WorkbenchCLI.run(["info", "--model", path], timeout: 60)
        WorkbenchCLI.assertRuntimeError(r, mentions: [path])
        XCTAssertLessThan(r.stderr.utf8.count, 2000)

        XCTAssertEqual(QuotedName.safe("model.layers.0.mlp.up_proj.weight"), "model.layers.0.mlp.up_proj.weight")
        XCTAssertEqual(QuotedName.safe("a\u{0}b\\c\u{202E}", limit: 80), "a\\u{0}b\\\\c\\u{202e}")
        XCTAssertEqual(QuotedName.safe(String(repeating: "é", count: 10), limit: 4), "éééé…(10 characters)")
    }

    // MARK: - sparse-bitmask sizes

    /// A sparse-bitmask checkpoint of tiny-llama-bias with one weight's `.shape` replaced.
    private func sparseCheckpoint(shape: [Int], bitmask: (Int, Int)? = nil, victim: String = "model.layers.1.mlp.down_proj") throws -> String {
        let dir = try copyFixture("tiny-llama-bias", self)
        let st = try SafetensorsFile(path: dir + "/model.safetensors")
        var records = [SafetensorsRecord]()
        for name in st.names {
            let t = try st.tensor(name)
            if name == victim + ".weight" {
                records += SparseBitmask.encode(name: name, weight: t.data, rows: t.shape[0], cols: t.shape[1]).map { r in
                    if r.name == victim + ".shape" { return SafetensorsRecord(name: r.name, i64: shape, shape: [2]) }
                    if let (rows, bytes) = bitmask, r.name == victim + ".bitmask" {
                        return SafetensorsRecord(name: r.name, u8: [UInt8](repeating: 0, count: rows * bytes), shape: [rows, bytes])
                    }
                    if bitmask != nil, r.name == victim + ".compressed" { return SafetensorsRecord(name: r.name, tensor: Tensor(shape: [0], data: [])) }
                    if let (rows, _) = bitmask, r.name == victim + ".row_offsets" {
                        return SafetensorsRecord(name: r.name, i64: [Int](repeating: 0, count: rows), shape: [rows])
                    }
                    return r
                }
            } else {
                records.append(SafetensorsRecord(name: name, tensor: t))
            }
        }
        try Safetensors.write(records, metadata: ["format": "pt"], to: dir + "/model.safetensors")
        return dir
    }

    func testSparseBitmaskShapeThatWrapsIsRefused() throws {
        // down_proj is [32, 48]: bitmask [32, 6]. 32 × (6 + 2^59) wraps to 192 = 32 × 6 bytes, and
        // 32 × (48 + 2^62) wraps to 1536 = 32 × 48 values: every unchecked equality would pass.
        let control = try sparseCheckpoint(shape: [32, 48])
        XCTAssertEqual(try ModelLoader.load(control, needTokenizer: false).format, "hf-safetensors")
        for (shape, bitmask) in [([32, 48 + (1 << 62)], nil), ([2, -9], (2, 0)), ([-3, 16], (0, 2)), ([1 << 40, 1 << 40], nil)] as [([Int], (Int, Int)?)] {
            let dir = try sparseCheckpoint(shape: shape, bitmask: bitmask)
            let f = dir + "/model.safetensors"
            XCTAssertThrowsError(try ModelLoader.load(dir, needTokenizer: false)) { e in
                guard case .invalidHeader(let file, let reason)? = e as? SafetensorsError else { return XCTFail("\(e)") }
                XCTAssertEqual(file, f)
                XCTAssertTrue(reason.contains("model.layers.1.mlp.down_proj.shape"), reason)
                XCTAssertTrue(reason.contains("\(shape)"), reason)
            }
            WorkbenchCLI.assertRuntimeError(try WorkbenchCLI.run(["sparsity", "--model", dir], timeout: 60), mentions: [f, "down_proj.shape"])
        }
    }

    func testCheckedSize() {
        XCTAssertEqual(CheckedSize.product(32, 6), 192)
        XCTAssertNil(CheckedSize.product(32, 6 + (1 << 59)))            // wraps to 192 unchecked
        XCTAssertNil(CheckedSize.product(2, -9))
        XCTAssertEqual(CheckedSize.product([3, 5, 7]), 105)
        XCTAssertEqual(CheckedSize.product([]), 1)
        XCTAssertNil(CheckedSize.product([1 << 31, 1 << 31, 4]))
        XCTAssertEqual(CheckedSize.ceilDiv(Int.max, 8), Int.max / 8 + 1)  // (a + 7) / 8 would overflow
        XCTAssertEqual(CheckedSize.ceilDiv(16, 8), 2)
        XCTAssertNil(CheckedSize.ceilDiv(-1, 8))
        XCTAssertNil(CheckedSize.sum(Int.max, 1))
    }
}

extension HostileInputTests {
    func testNonIntegerJSONNumbersRefused() throws {
        XCTAssertEqual(JSONInteger.exact(NSNumber(value: 494_592)), 494_592)
        XCTAssertEqual(JSONInteger.exact(NSNumber(value: (1 << 62) + 1)), (1 << 62) + 1)
        XCTAssertNil(JSONInteger.exact(NSNumber(value: 494_592.5)))
        XCTAssertNil(JSONInteger.exact(NSNumber(value: 1e30)))
        XCTAssertNil(JSONInteger.exact(NSNumber(value: Double.nan)))
        XCTAssertNil(JSONInteger.exact("12"))
        // A safetensors offset written as a float is refused, naming the file and tensor.
        let dir = try copyFixture("tiny-opt", self)
        let f = dir + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: f))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
        var header = String(decoding: data.subdata(in: 8..<(8 + n)), as: UTF8.self)
        let victim = "model.decoder.final_layer_norm.weight"
        let st = try SafetensorsFile(path: f)
        let end = try XCTUnwrap(st.entries[victim]).end
        let old = "\"\(victim)\":{\"dtype\":\"F32\",\"shape\":[32],\"data_offsets\":[\(end - 128),\(end)]}"
        XCTAssertTrue(header.contains(old), header)
        header = header.replacingOccurrences(of: old, with: "\"\(victim)\":{\"dtype\":\"F32\",\"shape\":[32.0],\"data_offsets\":[\(end - 128),\(end).5]}")
        var h = Data(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        try (withUnsafeBytes(of: UInt64(h.count).littleEndian) { Data($0) } + h + data.subdata(in: (8 + n)..<data.count))
            .write(to: URL(fileURLWithPath: f))
        XCTAssertThrowsError(try SafetensorsFile(path: f)) { e in
            XCTAssertEqual(e as? SafetensorsError, .invalidOffset(file: f, tensor: victim, reason: "not a non-negative integer"))
        }
    }
}

extension HostileInputTests {
    func testTokenizerIdsBoundedAndCheckedAgainstTheModel() throws {
        // A stray id of 2^30 would size every id table at 2^30 entries.
        XCTAssertThrowsError(try ByteLevelBPETokenizer(vocab: ["a": 0, "b": 1 << 30], merges: [], name: "v.json")) { e in
            XCTAssertEqual(e as? TokenizerError, .invalidFile(path: "v.json", reason: "token id 1073741824 is implausible for a vocabulary of 2 entries"))
        }
        let ck = try ModelLoader.checkpoint(try Assets.path("stories260K/hf"))
        let tok = try ByteLevelBPETokenizer(vocab: Dictionary(uniqueKeysWithValues: (0..<300).map { ("t\($0)", $0) }), merges: [],
                                            name: "tok.json", bosId: 611)
        XCTAssertThrowsError(try ModelLoader.checkTokenizer(tok, source: .tokenizerJSON(path: "tok.json"), config: ck.config,
                                                            configSource: ck.configSource, modelPath: ck.path)) { e in
            let m = e.localizedDescription
            for n in ["tok.json", "BOS id", "611", "config.json vocab_size", "512"] { XCTAssertTrue(m.contains(n), m) }
        }
        tok.bosId = 1
        XCTAssertNoThrow(try ModelLoader.checkTokenizer(tok, source: .tokenizerJSON(path: "tok.json"), config: ck.config,
                                                        configSource: ck.configSource, modelPath: ck.path))
    }
}
