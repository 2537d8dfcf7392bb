import Foundation
import Tokenize
import Transformer

// MARK: - config.json and tokenizer files of a written checkpoint
//
// HF input: config.json is copied byte for byte (re-serialised only to add or
// drop the compressed-tensors block) and the tokenizer files are copied.
// GGUF / llama2.c input: config.json is generated from ModelConfig, and the
// tokenizer is exported (GGUF byte-level BPE → tokenizer.json; llama2.c →
// its tokenizer.model / tokenizer.bin copied under the canonical name).

extension CheckpointWriter {

    /// Files copied from an HF input directory when present.
    public static let hfTokenizerFiles = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "merges.txt",
                                          "special_tokens_map.json", "added_tokens.json", "tokenizer.bin", "generation_config.json"]

    // MARK: - config.json

    func configJSON() throws -> Data {
        let compressedKeys = ["quantization_config", "compression_config"]
        var obj: [String: Any]
        if source.isHFDirectory {
            let path = source.path + "/config.json"
            guard let data = FileManager.default.contents(atPath: path) else { throw ModelError.fileNotFound(path: path) }
            guard let parsed = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw ModelError.badConfig(file: path, key: "(root)", reason: "not a JSON object")
            }
            // Verbatim unless a compression block must be added, or a stale one (the input was
            // itself compressed) removed because the weights are now written dense.
            let stale = compressedKeys.contains { parsed[$0] != nil }
            if format == .dense && !stale { return data }
            obj = parsed
        } else {
            obj = Self.hfConfig(source.config)
        }
        for k in compressedKeys { obj.removeValue(forKey: k) }
        if format == .sparseBitmask {
            let s = sparsity ?? SparsityConfigInfo(structure: "unstructured", targets: compress.sorted().map(Self.moduleName), globalSparsity: 0)
            obj["quantization_config"] = [
                "quant_method": "compressed-tensors",
                "format": "sparse-bitmask",
                "sparsity_config": ["format": "sparse-bitmask", "global_sparsity": s.globalSparsity,
                                    "sparsity_structure": s.structure, "targets": s.targets, "ignore": s.ignore] as [String: Any],
            ] as [String: Any]
        }
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    }

    static func moduleName(_ weight: String) -> String { weight.hasSuffix(".weight") ? String(weight.dropLast(7)) : weight }

    /// An HF config.json for a ModelConfig (what transformers' LlamaConfig / OPTConfig read).
    public static func hfConfig(_ c: ModelConfig) -> [String: Any] {
        // Float → shortest decimal ("1e-05"), not 9.99999974738e-06.
        func num(_ f: Float) -> Double { Double("\(f)") ?? Double(f) }
        var o: [String: Any] = [
            "vocab_size": c.vocabSize, "hidden_size": c.dModel, "num_hidden_layers": c.nLayers,
            "num_attention_heads": c.nHeads, "max_position_embeddings": c.maxSeqLen,
            "tie_word_embeddings": c.tiedEmbeddings, "torch_dtype": "float32", "use_cache": true,
        ]
        if let b = c.bosTokenId { o["bos_token_id"] = b }
        if let e = c.eosTokenId { o["eos_token_id"] = e }
        switch c.family {
        case .llama:
            o["architectures"] = ["LlamaForCausalLM"]; o["model_type"] = "llama"
            o["intermediate_size"] = c.dFF; o["num_key_value_heads"] = c.nKVHeads; o["head_dim"] = c.headDim
            o["rms_norm_eps"] = num(c.normEps); o["rope_theta"] = num(c.ropeTheta); o["hidden_act"] = "silu"
            o["attention_bias"] = c.attentionBias; o["mlp_bias"] = c.mlpBias
            o["attention_dropout"] = 0.0; o["pretraining_tp"] = 1
        case .opt:
            o["architectures"] = ["OPTForCausalLM"]; o["model_type"] = "opt"
            o["ffn_dim"] = c.dFF; o["word_embed_proj_dim"] = c.dModel; o["do_layer_norm_before"] = true
            o["activation_function"] = "relu"; o["enable_bias"] = true; o["layer_norm_elementwise_affine"] = true
            o["dropout"] = 0.0; o["attention_dropout"] = 0.0
        }
        return o
    }

    // MARK: - Tokenizer files

    func writeTokenizerFiles(into dir: String) throws {
        let fm = FileManager.default
        func copy(_ from: String, _ to: String) throws {
            do { try fm.copyItem(atPath: from, toPath: dir + "/" + to) } catch {
                throw CheckpointWriteError.cannotWrite(path: dir + "/" + to, reason: error.localizedDescription)
            }
        }
        if source.isHFDirectory {
            for f in Self.hfTokenizerFiles where fm.fileExists(atPath: source.path + "/" + f) { try copy(source.path + "/" + f, f) }
            return
        }
        switch source.tokenizer {
        case .ggufBPE(let tokens, let merges, let types, let pre)?:
            try writeFile(try Self.tokenizerJSON(tokens: tokens, merges: merges, tokenTypes: types, pre: pre), dir + "/tokenizer.json")
            var cfg: [String: Any] = ["add_bos_token": source.addBOS ?? false, "add_eos_token": false,
                                      "model_max_length": source.config.maxSeqLen, "tokenizer_class": "GPT2Tokenizer",
                                      "clean_up_tokenization_spaces": false]
            if let b = source.config.bosTokenId, tokens.indices.contains(b) { cfg["bos_token"] = tokens[b] }
            if let e = source.config.eosTokenId, tokens.indices.contains(e) { cfg["eos_token"] = tokens[e] }
            try writeFile(try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys]),
                          dir + "/tokenizer_config.json")
        case .sentencePiece(let path)?:
            try copy(path, "tokenizer.model")
            let cfg: [String: Any] = ["tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                      "add_bos_token": source.addBOS ?? true, "add_eos_token": false,
                                      "model_max_length": source.config.maxSeqLen, "clean_up_tokenization_spaces": false]
            try writeFile(try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys]),
                          dir + "/tokenizer_config.json")
        case .llama2c(let path)?:
            // Only the tokenizer the input actually used: copying a tokenizer.model as well would make
            // the HF loader prefer it (SentencePiece) and could change tokenization.
            try copy(path, "tokenizer.bin")
        case .tokenizerJSON(let path)?:
            try copy(path, "tokenizer.json")
        case .vocabMerges(let vocab, let merges)?:
            try copy(vocab, "vocab.json"); try copy(merges, "merges.txt")
        case nil:
            break
        }
    }

    /// A byte-level BPE `tokenizer.json` from GGUF `tokenizer.ggml.*` arrays: model.vocab /
    /// model.merges, added_tokens for control (type 3, special) and user-defined (type 4) tokens,
    /// pre-tokenizer Sequence[Digits(individual_digits), ByteLevel] for pre = "smollm" (SmolLM2's
    /// own tokenizer.json) else ByteLevel, ByteLevel decoder and post-processor.
    /// The ~100k-entry vocab and merges are emitted by hand (vocab in id order, as HF writes it):
    /// JSONSerialization takes seconds on them on Linux.
    public static func tokenizerJSON(tokens: [String], merges: [String], tokenTypes: [Int32], pre: String?) throws -> Data {
        var added: [[String: Any]] = []
        for (id, type) in tokenTypes.enumerated() where (type == 3 || type == 4) && id < tokens.count {
            added.append(["id": id, "content": tokens[id], "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": type == 4, "special": type == 3])
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let preTok: [String: Any] = pre?.lowercased() == "smollm"
            ? ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
            : byteLevel
        func small(_ v: Any) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
        }
        var out = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
        out += "\"added_tokens\":\(try small(added)),\"normalizer\":null,\"pre_tokenizer\":\(try small(preTok)),"
        out += "\"post_processor\":\(try small(["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true])),"
        out += "\"decoder\":\(try small(["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true])),"
        out += "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
        out += "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{"
        var seen = Set<String>()
        var first = true
        for (id, t) in tokens.enumerated() where seen.insert(t).inserted {      // first id wins, as the GGUF loader does
            if !first { out += "," }
            first = false
            out += JSONText.quote(t) + ":" + String(id)
        }
        out += "},\"merges\":[" + merges.map(JSONText.quote).joined(separator: ",") + "]}}"
        return Data(out.utf8)
    }
}
