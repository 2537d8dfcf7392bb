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
            let data = try readInputFile(path, limit: 64 << 20)
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
}
