import Foundation
import XCTest
@testable import Transformer
import Tokenize
import TestSupport

// MARK: - Helpers: corrupting copies of committed fixtures

/// Copies Tests/Fixtures/<name> into a fresh temporary directory and returns the copy's path.
func copyFixture(_ name: String, _ test: XCTestCase) throws -> String {
    let dst = try Scratch.dir(test).appendingPathComponent(name)
    try FileManager.default.copyItem(atPath: try Fixtures.path(name), toPath: dst.path)
    return dst.path
}

/// Rewrites a safetensors file's JSON header with `edit`; the data buffer is kept byte for byte.
private func rewriteSafetensorsHeader(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
    var header = try XCTUnwrap(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
    edit(&header)
    var h = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    while h.count % 8 != 0 { h.append(0x20) }
    var out = withUnsafeBytes(of: UInt64(h.count).littleEndian) { Data($0) }
    out += h
    out += data.subdata(in: (8 + n)..<data.count)
    try out.write(to: URL(fileURLWithPath: path))
}

/// Re-writes a safetensors file with `Safetensors.write`, through `transform` on its F32 tensors.
private func rewriteSafetensors(_ path: String, _ transform: ([SafetensorsRecord]) -> [SafetensorsRecord]) throws {
    let st = try SafetensorsFile(path: path)
    let records = try st.names.map { SafetensorsRecord(name: $0, tensor: try st.tensor($0)) }
    try Safetensors.write(transform(records), metadata: ["format": "pt"], to: path)
}

/// Minimal GGUF v3 writer (little-endian) for hand-built files.
struct TinyGGUF {
    var version: UInt32 = 3
    var kv: [(String, UInt32, Data)] = []
    var tensors: [(name: String, dims: [UInt64], type: UInt32, data: Data)] = []

    static func le<T: FixedWidthInteger>(_ v: T) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func str(_ s: String) -> Data { le(UInt64(s.utf8.count)) + Data(s.utf8) }
    mutating func u32(_ k: String, _ v: UInt32) { kv.append((k, 4, Self.le(v))) }
    mutating func f32(_ k: String, _ v: Float) { kv.append((k, 6, Self.le(v.bitPattern))) }
    mutating func string(_ k: String, _ v: String) { kv.append((k, 8, Self.str(v))) }
    mutating func strings(_ k: String, _ v: [String]) {
        kv.append((k, 9, Self.le(UInt32(8)) + Self.le(UInt64(v.count)) + v.reduce(Data()) { $0 + Self.str($1) }))
    }
    mutating func f32Tensor(_ name: String, _ dims: [UInt64], seed: Int) {
        let n = Int(dims.reduce(1, *))
        let vals = (0..<n).map { Float(($0 * 31 + seed * 17) % 23 - 11) / 64 }
        tensors.append((name, dims, 0, vals.reduce(Data()) { $0 + Self.le($1.bitPattern) }))
    }

    /// A complete 1-layer llama: d 32, 2 heads, 1 kv head, ffn 32, vocab 4.
    static func llama() -> TinyGGUF {
        var g = TinyGGUF()
        g.string("general.architecture", "llama")
        g.u32("llama.embedding_length", 32); g.u32("llama.block_count", 1); g.u32("llama.feed_forward_length", 32)
        g.u32("llama.attention.head_count", 2); g.u32("llama.attention.head_count_kv", 1); g.u32("llama.context_length", 64)
        g.f32("llama.attention.layer_norm_rms_epsilon", 1e-5); g.f32("llama.rope.freq_base", 10000)
        g.string("tokenizer.ggml.model", "gpt2"); g.strings("tokenizer.ggml.tokens", ["a", "b", "<s>", "</s>"])
        g.strings("tokenizer.ggml.merges", ["a b"])
        g.f32Tensor("token_embd.weight", [32, 4], seed: 1)
        g.f32Tensor("output_norm.weight", [32], seed: 2)
        g.f32Tensor("blk.0.attn_norm.weight", [32], seed: 3)
        g.f32Tensor("blk.0.ffn_norm.weight", [32], seed: 4)
        g.f32Tensor("blk.0.attn_q.weight", [32, 32], seed: 5)
        g.f32Tensor("blk.0.attn_k.weight", [32, 16], seed: 6)
        g.f32Tensor("blk.0.attn_v.weight", [32, 16], seed: 7)
        g.f32Tensor("blk.0.attn_output.weight", [32, 32], seed: 8)
        g.f32Tensor("blk.0.ffn_gate.weight", [32, 32], seed: 9)
        g.f32Tensor("blk.0.ffn_up.weight", [32, 32], seed: 10)
        g.f32Tensor("blk.0.ffn_down.weight", [32, 32], seed: 11)
        return g
    }

    func build() -> Data {
        var d = Data("GGUF".utf8) + Self.le(version) + Self.le(UInt64(tensors.count)) + Self.le(UInt64(kv.count))
        for (k, t, v) in kv { d += Self.str(k) + Self.le(t) + v }
        var offset: UInt64 = 0, blobs = Data()
        for t in tensors {
            d += Self.str(t.name) + Self.le(UInt32(t.dims.count)) + t.dims.reduce(Data()) { $0 + Self.le($1) } + Self.le(t.type) + Self.le(offset)
            let padded = (t.data.count + 31) / 32 * 32
            blobs += t.data + Data(count: padded - t.data.count)
            offset += UInt64(padded)
        }
        d += Data(count: (32 - d.count % 32) % 32)
        return d + blobs
    }
}

// MARK: - One test per bad input: typed error, message naming the culprit, CLI exit 1 with `Error:`

final class BadInputTests: XCTestCase {
    /// `ModelLoader.load(path)` must throw an error equal to `expected`, whose message contains every string in `names`;
    /// `workbench info --model path` must exit 1 with an `Error:` line containing them too (and not crash).
    private func assertLoadFails<E: Error & Equatable>(_ path: String, _ expected: E, names: [String],
                                                       file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertThrowsError(try ModelLoader.load(path), file: file, line: line) { e in
            XCTAssertEqual(e as? E, expected, "got \(type(of: e)).\(e)", file: file, line: line)
            for n in names {
                XCTAssertTrue(e.localizedDescription.contains(n), "message '\(e.localizedDescription)' should name '\(n)'", file: file, line: line)
            }
        }
        let r = try WorkbenchCLI.run(["info", "--model", path])
        WorkbenchCLI.assertRuntimeError(r, mentions: names, file: file, line: line)
    }

    // MARK: files

    func testMissingModelFile() throws {
        let path = try Scratch.dir(self).appendingPathComponent("no-such-model.bin").path
        try assertLoadFails(path, ModelError.fileNotFound(path: path), names: [path])
        let r = try WorkbenchCLI.run(["generate", "--model", path, "--prompt", "hi"])
        WorkbenchCLI.assertRuntimeError(r, mentions: [path])
    }

    func testUnknownFormat() throws {
        let url = try Scratch.dir(self).appendingPathComponent("weights.pt")
        try Data("not a model".utf8).write(to: url)
        try assertLoadFails(url.path, ModelError.unknownFormat(path: url.path), names: [url.path])
    }

    func testDirectoryWithoutWeights() throws {
        let dir = try copyFixture("tiny-opt", self)
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        try assertLoadFails(dir, ModelError.fileNotFound(path: dir + "/model.safetensors"), names: [dir + "/model.safetensors"])
    }

    // MARK: safetensors

    func testTruncatedSafetensors() throws {
        let dir = try copyFixture("tiny-opt", self)
        let f = dir + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: f))
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: f))
        let st = try XCTUnwrap(try? SafetensorsFile(path: try Fixtures.path("tiny-opt/model.safetensors")))
        let dataEnd = st.dataStart + (st.entries.values.map(\.end).max() ?? 0)
        XCTAssertEqual(dataEnd, data.count)
        try assertLoadFails(dir, SafetensorsError.incompleteBuffer(file: f, dataEnd: data.count, fileSize: data.count - 100), names: [f])
    }

    func testTruncatedInsideHeader() throws {
        let dir = try copyFixture("tiny-opt", self)
        let f = dir + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: f))
        try data.prefix(50).write(to: URL(fileURLWithPath: f))
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian
        try assertLoadFails(dir, SafetensorsError.invalidHeaderLength(file: f, length: n, fileSize: 50), names: [f])
    }

    func testCorruptSafetensorsHeader() throws {
        let dir = try copyFixture("tiny-opt", self)
        let f = dir + "/model.safetensors"
        var data = try Data(contentsOf: URL(fileURLWithPath: f))
        XCTAssertEqual(data[8], UInt8(ascii: "{"))
        data[8] = UInt8(ascii: "#")                                   // header no longer parses as JSON
        try data.write(to: URL(fileURLWithPath: f))
        try assertLoadFails(dir, SafetensorsError.invalidHeader(file: f, reason: "header is not valid JSON"), names: [f])
    }

    func testAbsurdHeaderLength() throws {
        let dir = try copyFixture("tiny-opt", self)
        let f = dir + "/model.safetensors"
        var data = try Data(contentsOf: URL(fileURLWithPath: f))
        data.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1) << 40) { Data($0) })
        try data.write(to: URL(fileURLWithPath: f))
        try assertLoadFails(dir, SafetensorsError.headerTooLarge(file: f, length: 1 << 40), names: [f])
    }

    func testUnknownDType() throws {
        let dir = try copyFixture("tiny-opt", self)
        let f = dir + "/model.safetensors"
        let victim = "model.decoder.layers.0.fc1.weight"
        try rewriteSafetensorsHeader(f) { h in
            var e = h[victim] as! [String: Any]
            e["dtype"] = "F12"
            h[victim] = e
        }
        try assertLoadFails(dir, SafetensorsError.unknownDType(file: f, tensor: victim, dtype: "F12"), names: [f, victim, "F12"])
    }

    func testTensorMissing() throws {
        let dir = try copyFixture("tiny-opt", self)
        let victim = "model.decoder.layers.1.fc1.weight"
        try rewriteSafetensors(dir + "/model.safetensors") { rs in
            XCTAssertTrue(rs.contains { $0.name == victim })
            return rs.filter { $0.name != victim }
        }
        XCTAssertNil(try SafetensorsFile(path: dir + "/model.safetensors").entries[victim])
        try assertLoadFails(dir, ModelError.missingTensor(name: victim, file: dir), names: [victim, dir])
    }

    func testTensorWrongShape() throws {
        let dir = try copyFixture("tiny-opt", self)
        let victim = "model.decoder.layers.0.fc1.weight"    // [ffn 64, hidden 32]
        try rewriteSafetensors(dir + "/model.safetensors") { rs in
            rs.map { r in
                guard r.name == victim else { return r }
                XCTAssertEqual(r.shape, [64, 32])
                return SafetensorsRecord(name: r.name, dtype: r.dtype, shape: [32, 64], bytes: r.bytes)
            }
        }
        try assertLoadFails(dir, ModelError.shapeMismatch(name: victim, file: dir, expected: [64, 32], found: [32, 64]),
                            names: [victim, dir, "[32, 64]"])
    }

    // MARK: config.json

    private func editConfig(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: dir + "/config.json")
        var obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&obj)
        try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]).write(to: url)
    }

    func testUnknownModelType() throws {
        let dir = try copyFixture("tiny-opt", self)
        try editConfig(dir) { $0["model_type"] = "gpt_neox" }
        try assertLoadFails(dir, ModelError.unknownModelType(file: dir + "/config.json", modelType: "gpt_neox"),
                            names: [dir + "/config.json", "gpt_neox"])
    }

    func testConfigMissingKey() throws {
        let dir = try copyFixture("tiny-llama-bias", self)
        try editConfig(dir) { $0["hidden_size"] = nil }
        try assertLoadFails(dir, ModelError.badConfig(file: dir + "/config.json", key: "hidden_size", reason: "missing"),
                            names: [dir + "/config.json", "hidden_size"])
    }

    func testConfigNotJSON() throws {
        let dir = try copyFixture("tiny-opt", self)
        try Data("{\"model_type\": \"opt\",".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        try assertLoadFails(dir, ModelError.badConfig(file: dir + "/config.json", key: "(root)", reason: "not valid JSON"),
                            names: [dir + "/config.json"])
    }

    // MARK: GGUF

    private func writeGGUF(_ g: TinyGGUF) throws -> String {
        let url = try Scratch.dir(self).appendingPathComponent("tiny.gguf")
        try g.build().write(to: url)
        return url.path
    }

    func testHandBuiltGGUFLoads() throws {
        // The baseline for the two GGUF cases below: unmodified, the hand-built file loads.
        let path = try writeGGUF(TinyGGUF.llama())
        let m = try ModelLoader.load(path)
        XCTAssertEqual(m.model.config.dModel, 32)
        XCTAssertEqual(m.format, "gguf")
        XCTAssertEqual(m.model.forward([0, 1, 0]).count, 3 * 4)
    }

    func testUnsupportedGGUFVersion() throws {
        var g = TinyGGUF.llama()
        g.version = 7
        let path = try writeGGUF(g)
        try assertLoadFails(path, GGUFError.unsupportedVersion(path: path, version: 7), names: [path, "version 7"])
    }

    func testUnsupportedGGUFTensorType() throws {
        var g = TinyGGUF.llama()
        let i = try XCTUnwrap(g.tensors.firstIndex { $0.name == "blk.0.ffn_up.weight" })
        g.tensors[i].type = 7                                  // Q5_1: known block layout (32 → 24 bytes), no dequantizer
        g.tensors[i].data = Data(repeating: 0, count: 32 * 32 / 32 * 24)
        let path = try writeGGUF(g)
        try assertLoadFails(path, GGUFError.unsupportedTensorType(path: path, tensor: "blk.0.ffn_up.weight", type: "Q5_1"),
                            names: [path, "blk.0.ffn_up.weight", "Q5_1"])
    }

    func testGGUFUnknownTensorTypeNumber() throws {
        var g = TinyGGUF.llama()
        let i = try XCTUnwrap(g.tensors.firstIndex { $0.name == "blk.0.attn_v.weight" })
        g.tensors[i].type = 200                               // no such ggml type
        let path = try writeGGUF(g)
        try assertLoadFails(path, GGUFError.unsupportedTensorType(path: path, tensor: "blk.0.attn_v.weight", type: "type 200"),
                            names: [path, "blk.0.attn_v.weight"])
    }

    // MARK: llama2.c

    func testTruncatedLlama2CBin() throws {
        let src = try Assets.path("stories260K/stories260K.bin")
        let dir = try Scratch.dir(self)
        let bin = dir.appendingPathComponent("stories260K.bin").path
        let data = try Data(contentsOf: URL(fileURLWithPath: src))
        try data.prefix(data.count - 4).write(to: URL(fileURLWithPath: bin))
        try assertLoadFails(bin, Llama2CError.sizeMismatch(path: bin, expected: 1_056_540, actual: 1_056_536), names: [bin])
    }

    // MARK: tokenizer and prompt

    func testMissingTokenizer() throws {
        let dir = try Fixtures.path("tiny-opt")
        let m = try ModelLoader.load(dir)                 // loads: the tokenizer is only needed to encode text
        XCTAssertNil(m.tokenizer)
        XCTAssertThrowsError(try m.requireTokenizer()) { e in
            XCTAssertEqual(e as? ModelError, .missingTokenizer(path: dir))
            XCTAssertTrue(e.localizedDescription.contains(dir))
        }
        for args in [["generate", "--model", dir, "--prompt", "hello"], ["tokenize", "--model", dir, "--text", "hello"]] {
            WorkbenchCLI.assertRuntimeError(try WorkbenchCLI.run(args), mentions: [dir, "no tokenizer"])
        }
    }

    func testEmptyPrompt() throws {
        let bin = try Assets.path("stories260K/stories260K.bin")
        let m = try ModelLoader.load(bin, needTokenizer: false).model
        var s = Sampler()
        XCTAssertThrowsError(try m.generate(prompt: [], maxNewTokens: 4, sampler: &s)) { e in
            XCTAssertEqual(e as? ModelError, .emptyPrompt)
            XCTAssertEqual(e.localizedDescription, "the prompt is empty")
        }
        let r = try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", ""])
        WorkbenchCLI.assertRuntimeError(r, mentions: ["the prompt is empty"])
        XCTAssertEqual(r.stdout, "", r.summary)
    }

    func testPromptLongerThanContext() throws {
        let bin = try Assets.path("stories260K/stories260K.bin")
        let lm = try ModelLoader.load(bin)
        let tok = try lm.requireTokenizer()
        let prompt = Array(repeating: "Lily saw a big red ball in the park.", count: 43).joined(separator: " ")
        let ids = try tok.encode(prompt)
        XCTAssertGreaterThan(ids.count, 512)
        XCTAssertLessThan(ids.count, 700)          // ~600 tokens
        var s = Sampler()
        XCTAssertThrowsError(try lm.model.generate(prompt: ids, maxNewTokens: 4, sampler: &s)) { e in
            // The llama2.c header's field is named, so the user knows which value sets the limit.
            XCTAssertEqual(e as? ModelError, .promptTooLong(tokens: ids.count, limit: 512, origin: "\(bin) key 'seq_len'"))
            XCTAssertTrue(e.localizedDescription.hasSuffix("context is 512 tokens (\(bin) key 'seq_len')"), e.localizedDescription)
            XCTAssertTrue(e.localizedDescription.contains("\(ids.count) tokens"))
            XCTAssertTrue(e.localizedDescription.contains("512"))
        }
        // Exactly the context is also too long (no room for a new token); one less is fine.
        XCTAssertThrowsError(try lm.model.generate(prompt: Array(ids.prefix(512)), maxNewTokens: 1, sampler: &s))
        XCTAssertEqual(try lm.model.generate(prompt: Array(ids.prefix(511)), maxNewTokens: 5, sampler: &s).tokens.count, 1)
        let r = try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", prompt, "--max-new-tokens", "4"])
        WorkbenchCLI.assertRuntimeError(r, mentions: ["\(ids.count) tokens", "512"])
        XCTAssertEqual(r.stdout, "", r.summary)
    }

    func testPerplexityTextFileMissing() throws {
        let hf = try Assets.path("stories260K/hf")
        let missing = try Scratch.dir(self).appendingPathComponent("wiki.missing.raw").path
        let r = try WorkbenchCLI.run(["perplexity", "--model", hf, "--text", missing])
        WorkbenchCLI.assertRuntimeError(r, mentions: [missing])
    }

    func testPerplexityTextTooShort() throws {
        let hf = try Assets.path("stories260K/hf")
        let url = try Scratch.dir(self).appendingPathComponent("short.txt")
        try Data("Once upon a time.\r\n".utf8).write(to: url)
        let r = try WorkbenchCLI.run(["perplexity", "--model", hf, "--text", url.path, "--seqlen", "64"])
        WorkbenchCLI.assertRuntimeError(r, mentions: ["fewer than one window of 64"])
    }

    // MARK: numbers at the edge of Int, token ids outside the vocabulary

    /// BUG (Generate.swift:85): `min(prompt.count + maxNewTokens, limit)` overflows for `--max-new-tokens` near Int.max:
    /// SIGILL (overflow trap) in debug, SIGSEGV in release (-Ounchecked wraps to a negative KV-cache capacity).
    /// Expected: generation simply stops at the context limit.
    func testHugeMaxNewTokensStopsAtContext() throws {
        let bin = try Assets.path("stories260K/stories260K.bin")
        let r = try WorkbenchCLI.run(["generate", "--model", bin, "--prompt", "Once upon a time", "--max-new-tokens", "\(Int.max)"])
        XCTAssertFalse(r.crashed, "CRASH (signal) on --max-new-tokens Int.max\n" + r.summary)
        XCTAssertEqual(r.status, 0, r.summary)
        XCTAssertTrue(r.stdout.hasPrefix(", there was a little girl named Lily."), r.summary)
    }

    /// BUG (BenchCommand.swift:95): `decodeTokens + 1` overflows for `--tokens` = Int.max (SIGILL in debug).
    /// Expected: a clean run (capped at the context) or a usage error, never a signal.
    func testBenchHugeTokensDoesNotCrash() throws {
        let bin = try Assets.path("stories260K/stories260K.bin")
        let r = try WorkbenchCLI.run(["bench", "--model", bin, "--tokens", "\(Int.max)", "--lengths", "8"])
        XCTAssertFalse(r.crashed, "CRASH (signal) on bench --tokens Int.max\n" + r.summary)
        XCTAssertTrue([0, 64].contains(r.status), r.summary)
    }

    /// A tokenizer larger than the model's vocabulary would produce ids with no embedding row
    /// (perplexity once read out of bounds with them). It is refused at load, naming the tokenizer
    /// file and the model's vocabulary key, by every command that loads a tokenizer.
    func testTokenizerLargerThanVocabularyRefused() throws {
        let hf = try Assets.path("stories260K/hf")
        let llama2Tok = try Assets.path("tokenizers/llama2/tokenizer.model")
        let dir = try Scratch.dir(self).appendingPathComponent("stories-bigtok").path
        try FileManager.default.copyItem(atPath: hf, toPath: dir)
        try FileManager.default.removeItem(atPath: dir + "/tokenizer.model")
        try FileManager.default.copyItem(atPath: llama2Tok, toPath: dir + "/tokenizer.model")   // 32,000 pieces vs vocab 512
        let names = [dir + "/tokenizer.model", "32000 tokens", "vocab_size", "512"]
        let g = try WorkbenchCLI.run(["generate", "--model", dir, "--prompt", "Hello world", "--max-new-tokens", "2"])
        WorkbenchCLI.assertRuntimeError(g, mentions: names)
        let text = try Scratch.dir(self).appendingPathComponent("t.raw")
        try Data(String(repeating: "Hello world, this is a test of the tokenizer.\r\n", count: 20).utf8).write(to: text)
        let r = try WorkbenchCLI.run(["perplexity", "--model", dir, "--text", text.path, "--seqlen", "32", "--json"])
        WorkbenchCLI.assertRuntimeError(r, mentions: names)
    }
}
