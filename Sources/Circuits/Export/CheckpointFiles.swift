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
            obj = try Self.hfConfig(source.config)
        }
        for k in compressedKeys { obj.removeValue(forKey: k) }
        if format == .sparseBitmask {
            let s = sparsity ?? SparsityConfigInfo(structure: "unstructured", targets: compress.sorted().map(Self.moduleName), globalSparsity: 0)
            // The shape compressed-tensors' own `update_config` writes for a sparse-only model: no top-level
            // "format" (≤ 0.14 would parse it as a quantization config and fail for want of config_groups).
            obj["quantization_config"] = [
                "quant_method": "compressed-tensors",
                "sparsity_config": ["format": "sparse-bitmask", "global_sparsity": s.globalSparsity,
                                    "sparsity_structure": s.structure, "targets": s.targets,
                                    "ignore": s.ignore ?? [source.config.family.names.lmHeadModule]] as [String: Any],
            ] as [String: Any]
        }
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    }

    static func moduleName(_ weight: String) -> String { weight.hasSuffix(".weight") ? String(weight.dropLast(7)) : weight }

    /// An HF config.json for a ModelConfig (what transformers' LlamaConfig / OPTConfig read): the family's typed
    /// encoder (`LlamaHFConfig(encoding:)`, `OPTHFConfig(encoding:)`), as an object so a compression block can be added.
    public static func hfConfig(_ c: ModelConfig) throws -> [String: Any] {
        let data = try c.family.encodeConfig(c)
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError.badConfig(file: "config.json", key: "(root)", reason: "the \(c.family) encoder did not write an object")
        }
        return obj
    }
}
