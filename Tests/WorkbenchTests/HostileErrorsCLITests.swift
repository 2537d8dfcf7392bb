import Foundation
import TestSupport
import Transformer
import XCTest

/// The "unclear" classes of the 10^5-run seed-7 fuzz campaign (issue 12): every error names the flag,
/// file or key, and echoes no user value whole (stderr stays short for a 100 KB argument) and no raw
/// control byte. One test per class, with other values than the campaign's.
final class HostileErrorsCLITests: XCTestCase {
    private let huge = String(repeating: "x", count: 100_000)

    /// Exit `status`, an `Error:` line naming each of `mentions`, stderr under 1 KB, no control bytes.
    private func assertClear(_ r: WorkbenchRun, status: Int32, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        if status == 64 { WorkbenchCLI.assertUsageError(r, file: file, line: line) } else {
            WorkbenchCLI.assertRuntimeError(r, mentions: [], file: file, line: line)
        }
        XCTAssertLessThan(r.stderr.utf8.count, 1024, "stderr echoes a value whole\n" + r.summary.prefix(800), file: file, line: line)
        XCTAssertFalse(r.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7F },
                       "raw control bytes on stderr\n" + r.summary.prefix(800), file: file, line: line)
        let errLine = r.stderrLines.first { $0.hasPrefix("Error: ") } ?? ""
        for m in mentions { XCTAssertTrue(errLine.contains(m), "Error line should name '\(m)'\n" + r.summary.prefix(800), file: file, line: line) }
    }

    /// A copy of a checked-in fixture model in a scratch folder.
    private func fixtureCopy(_ name: String) throws -> String {
        let dir = try Scratch.dir(self).appendingPathComponent(name).path
        try FileManager.default.copyItem(atPath: try Fixtures.path(name), toPath: dir)
        return dir
    }

    private func editConfig(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: dir + "/config.json")
        var c = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&c)
        try JSONSerialization.data(withJSONObject: c).write(to: url)
    }

    /// Overwrites bytes of `file` at `offset` (a same-length edit of a safetensors header or data).
    private func patch(_ file: String, at offset: Int, _ bytes: [UInt8]) throws {
        var d = try Data(contentsOf: URL(fileURLWithPath: file))
        d.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        try d.write(to: URL(fileURLWithPath: file))
    }

    /// Byte offset of a tensor's first value in a safetensors file.
    private func dataOffset(_ file: String, _ tensor: String) throws -> Int {
        let f = try SafetensorsFile(path: file)
        return f.dataStart + (try XCTUnwrap(f.entries[tensor])).begin
    }

    private func write(_ text: String, _ name: String) throws -> String {
        let p = try Scratch.dir(self).appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    // MARK: 1. long values are truncated, for every path flag and the other echoed values

    func testHugePathValuesAreUsageErrorsNamingTheFlag() throws {
        let model = try Fixtures.path("tiny-llama-bias")
        let prompts = try write(#"{"ids": [1, 2, 3]}"# + "\n", "p.jsonl")
        for (argv, flag) in [(["info", "--model", huge], "--model"),
                             (["perplexity", "--model", model, "--text", huge], "--text"),
                             (["attribute", "--model", model, "--prompts", huge, "--out", "/nonexistent/x.safetensors"], "--prompts"),
                             (["attribute", "--model", model, "--prompts", prompts, "--out", huge], "--out"),
                             (["prune", "--model", model, "--scores", huge, "--scheme", "row", "--sparsity", "0.5", "--out", "/nonexistent/o"], "--scores")] {
            let r = try WorkbenchCLI.run(argv)
            assertClear(r, status: 64, mentions: [flag, "(100000 characters)", "at most 4096 bytes"])
        }
        // A path with a control byte is refused before any message could echo it.
        let r = try WorkbenchCLI.run(["info", "--model", "m\u{1B}[2J"])
        assertClear(r, status: 64, mentions: ["--model", "control character \\u{1b}"])
    }

    func testHugeLayersAndTargetTextAreTruncated() throws {
        let model = try Fixtures.path("tiny-llama-bias")
        let layers = try WorkbenchCLI.run(["prune", "--model", model, "--method", "magnitude", "--scheme", "row", "--sparsity", "0.5",
                                           "--layers", huge, "--out", try Scratch.dir(self).appendingPathComponent("o").path])
        XCTAssertFalse(layers.crashed)
        XCTAssertTrue([1, 64].contains(layers.status), layers.summary.prefix(600) + "")
        XCTAssertLessThan(layers.stderr.utf8.count, 1024, String(layers.summary.prefix(600)))
        XCTAssertTrue(layers.stderrLines.contains { $0.hasPrefix("Error: --layers '") && $0.contains("(100000 characters)") },
                      String(layers.summary.prefix(600)))
        // A 20 000-character target text that is not one token: its text and its token ids are both cut.
        let stories = try Assets.path("stories260K/hf")
        let text = String(repeating: "ab ", count: 20_000)
        let r = try WorkbenchCLI.run(["heatmap", "--model", stories, "--prompt", "Once upon a time", "--target", "0:\"\(text)\"",
                                      "--out", try Scratch.dir(self).appendingPathComponent("h.html").path])
        XCTAssertFalse(r.crashed)
        XCTAssertNotEqual(r.status, 0, r.summary)
        XCTAssertLessThan(r.stderr.utf8.count, 1024, String(r.summary.prefix(800)))
        let errLine = r.stderrLines.first { $0.hasPrefix("Error: ") } ?? ""
        XCTAssertTrue(errLine.contains("field '--target'") && errLine.contains("(60000 characters)") && errLine.contains("in all)"), errLine)
    }

    // MARK: 2. an empty path names its flag

    func testEmptyPathsAreUsageErrorsNamingTheFlag() throws {
        let model = try Fixtures.path("tiny-llama-bias")
        for (argv, flag) in [(["sparsity", "--model", ""], "--model"),
                             (["info", "--model", model, "--model="], "--model"),
                             (["perplexity", "--model", model, "--text", ""], "--text"),
                             (["attribute", "--model", model, "--prompts", "", "--out", "/nonexistent/x.safetensors"], "--prompts")] {
            let r = try WorkbenchCLI.run(argv)
            assertClear(r, status: 64, mentions: ["'\(flag)'", "the path is empty"])
        }
    }

    // MARK: 3. config values are escaped and cut

    func testConfigValuesAreEscapedAndTruncated() throws {
        let dir = try fixtureCopy("tiny-llama-bias")
        try editConfig(dir) { $0["hidden_act"] = "\u{0}\u{1B}]0;x\u{07}" }
        let r = try WorkbenchCLI.run(["info", "--model", dir])
        assertClear(r, status: 1, mentions: [dir + "/config.json", "key 'hidden_act'", "'\\u{0}\\u{1b}]0;x\\u{7}' is not supported"])
        try editConfig(dir) { $0["hidden_act"] = String(repeating: "A", count: 50_000) }
        let long = try WorkbenchCLI.run(["info", "--model", dir])
        assertClear(long, status: 1, mentions: ["key 'hidden_act'", "(50000 characters)"])
    }

    // MARK: 4. GGUF tokenizer keys present but unreadable

    /// A 1-layer llama GGUF (d 32, 2 heads, 1 KV head, ffn 32, vocab 4) with `tokenizerKeys` as its tokenizer metadata.
    private func tinyGGUF(_ tokenizerKeys: [GGUFMetadataItem]) throws -> String {
        let path = try Scratch.dir(self).appendingPathComponent("model.gguf").path
        var meta = [GGUFMetadataItem("general.architecture", .string("llama"), as: .string)]
        for (k, v) in [("embedding_length", 32), ("block_count", 1), ("feed_forward_length", 32), ("attention.head_count", 2),
                       ("attention.head_count_kv", 1), ("context_length", 64)] {
            meta.append(GGUFMetadataItem("llama." + k, .uint(UInt64(v)), as: .u32))
        }
        meta.append(GGUFMetadataItem("llama.vocab_size", .uint(4), as: .u32))
        meta += tokenizerKeys
        var tensors: [GGUFTensorRecord] = []
        for (i, (name, dims)) in [("token_embd.weight", [32, 4]), ("output_norm.weight", [32]), ("blk.0.attn_norm.weight", [32]),
                                  ("blk.0.ffn_norm.weight", [32]), ("blk.0.attn_q.weight", [32, 32]), ("blk.0.attn_k.weight", [32, 16]),
                                  ("blk.0.attn_v.weight", [32, 16]), ("blk.0.attn_output.weight", [32, 32]),
                                  ("blk.0.ffn_gate.weight", [32, 32]), ("blk.0.ffn_up.weight", [32, 32]),
                                  ("blk.0.ffn_down.weight", [32, 32])].enumerated() {
            let n = dims.reduce(1, *)
            let values = (0..<n).map { Float(($0 * 31 + i * 17) % 23 - 11) / 64 }
            tensors.append(GGUFTensorRecord(name: name, dims: dims, type: .f32,
                                            data: values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }))
        }
        try GGUFWriter.write(to: path, metadata: meta, tensors: tensors)
        return path
    }

    func testMalformedGGUFTokenizerKeysNameTheKey() throws {
        let tokens = GGUFMetadataItem("tokenizer.ggml.tokens", .stringArray(["a", "b", "<s>", "</s>"]), as: .array(8))
        let merges = GGUFMetadataItem("tokenizer.ggml.merges", .stringArray(["a b"]), as: .array(8))
        let gpt2 = GGUFMetadataItem("tokenizer.ggml.model", .string("gpt2"), as: .string)
        let prompts = try write("Once upon a time\n", "prompts.txt")
        for (keys, key) in [([gpt2, GGUFMetadataItem("tokenizer.ggml.tokens", .uint(999_999), as: .u64), merges], "tokenizer.ggml.tokens"),
                            ([GGUFMetadataItem("tokenizer.ggml.model", .bool(true), as: .bool), tokens, merges], "tokenizer.ggml.model"),
                            ([gpt2, tokens], "tokenizer.ggml.merges"),
                            ([tokens, merges], "tokenizer.ggml.model")] {
            let gguf = try tinyGGUF(keys)
            let r = try WorkbenchCLI.run(["attribute", "--model", gguf, "--prompts", prompts, "--method", "activation",
                                          "--out", try Scratch.dir(self).appendingPathComponent("r.safetensors").path, "--quiet"])
            assertClear(r, status: 1, mentions: [gguf, "'\(key)'"])
        }
        // Without any tokenizer key the model loads, and token-id prompts work.
        let bare = try tinyGGUF([])
        let ids = try write(#"{"ids": [0, 1, 2, 3]}"# + "\n", "ids.jsonl")
        let ok = try WorkbenchCLI.run(["attribute", "--model", bare, "--prompts", ids, "--method", "activation",
                                       "--out", try Scratch.dir(self).appendingPathComponent("r.safetensors").path, "--quiet"])
        XCTAssertEqual(ok.status, 0, ok.summary)
        // A well-formed tokenizer of a kind not built in (SentencePiece "llama"): the model loads and token ids
        // still work, but every text path names the key that explains why there is no tokenizer.
        let spm = try tinyGGUF([GGUFMetadataItem("tokenizer.ggml.model", .string("llama"), as: .string), tokens])
        let spmIds = try WorkbenchCLI.run(["attribute", "--model", spm, "--prompts", ids, "--method", "activation",
                                           "--out", try Scratch.dir(self).appendingPathComponent("r2.safetensors").path, "--quiet"])
        XCTAssertEqual(spmIds.status, 0, spmIds.summary)
        let spmText = try WorkbenchCLI.run(["attribute", "--model", spm, "--prompts", prompts, "--method", "activation",
                                            "--out", try Scratch.dir(self).appendingPathComponent("r3.safetensors").path, "--quiet"])
        assertClear(spmText, status: 1, mentions: [prompts + ":1", "need a tokenizer"])
        XCTAssertTrue(spmText.stderrLines.contains("warning: \(spm): tokenizer.ggml.model is \"llama\", a kind not built in (only \"gpt2\" byte-level BPE is); give token ids"), spmText.summary)
        let spmTok = try WorkbenchCLI.run(["tokenize", "--model", spm, "--text", "zz"])
        assertClear(spmTok, status: 1, mentions: ["\(spm): tokenizer.ggml.model is \"llama\", a kind not built in"])
        let info = try WorkbenchCLI.run(["info", "--model", spm])
        XCTAssertEqual(info.status, 0, info.summary)
        XCTAssertTrue(info.stdout.contains("tokenizer: none (tokenizer.ggml.model is \"llama\""), info.stdout)
        // A well-formed vocabulary without byte tokens: the encode error names the file and the key.
        let noBytes = try tinyGGUF([gpt2, tokens, merges])
        let r = try WorkbenchCLI.run(["tokenize", "--model", noBytes, "--text", "zz"])
        assertClear(r, status: 1, mentions: [noBytes + " (tokenizer.ggml.tokens)", "no token for the byte"])
    }

    // MARK: 5. config against the weights names the offending tensor and its file

    func testLayerBeyondTheConfigNamesTheTensorAndItsFile() throws {
        let dir = try fixtureCopy("tiny-llama-bias")
        let st = dir + "/model.safetensors"
        // A same-length rename in the header: layer 0's up_proj becomes layer 9's.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: st))
        let old = Data("model.layers.0.mlp.up_proj.weight".utf8)
        let at = try XCTUnwrap(bytes.range(of: old)).lowerBound
        try patch(st, at: at, Array("model.layers.9.mlp.up_proj.weight".utf8))
        let r = try WorkbenchCLI.run(["info", "--model", dir])
        assertClear(r, status: 1, mentions: [dir + "/config.json", "key 'num_hidden_layers'", "layers up to 9",
                                             "tensor 'model.layers.9.mlp.up_proj.weight' in \(st)"])
    }

    // MARK: 6. overflowing and non-finite weights name --model and the shard

    func testNonFiniteWeightsNameTheShardAndOverflowNamesTheFlag() throws {
        let dir = try fixtureCopy("tiny-llama-bias")
        let st = dir + "/model.safetensors"
        let ids = try write(#"{"ids": [1, 5, 17, 42]}"# + "\n", "ids.jsonl")
        let out = try Scratch.dir(self).appendingPathComponent("r.safetensors").path
        // Finite but huge: the forward pass overflows; the message names the flag and the path.
        let norm = try dataOffset(st, "model.norm.weight")
        let big = withUnsafeBytes(of: Float.greatestFiniteMagnitude.bitPattern.littleEndian, Array.init)
        for k in 0..<32 { try patch(st, at: norm + 4 * k, big) }
        let overflow = try WorkbenchCLI.run(["attribute", "--model", dir, "--prompts", ids, "--method", "gradient", "--out", out, "--quiet"])
        assertClear(overflow, status: 1, mentions: ["check the weights of --model \(dir)"])
        // A NaN: refused at load, naming the file that holds it.
        let q = try dataOffset(st, "model.layers.1.self_attn.q_proj.weight")
        try patch(st, at: q + 12, withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init))
        let nan = try WorkbenchCLI.run(["info", "--model", dir])
        assertClear(nan, status: 1, mentions: [st + ": tensor 'model.layers.1.self_attn.q_proj.weight' holds a non-finite weight", "flat index 3"])
    }

    func testMissingTensorNamesTheModelDirectory() throws {
        let dir = try fixtureCopy("tiny-llama-bias")
        let st = dir + "/model.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: st))
        let at = try XCTUnwrap(bytes.range(of: Data("model.layers.0.mlp.down_proj.weight".utf8))).lowerBound
        try patch(st, at: at, Array("model.layers.0.mlp.down_proj.weighs".utf8))     // no longer a weight the loader takes
        let r = try WorkbenchCLI.run(["info", "--model", dir])
        assertClear(r, status: 1, mentions: [dir + ": tensor 'model.layers.0.mlp.down_proj.weight' is missing"])
    }
}
