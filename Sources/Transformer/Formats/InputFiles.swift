import Foundation

// MARK: - The files a model load depends on

extension ModelLoader {
    /// What loading an HF directory reads: config.json, the weight files (`weights`: the shards
    /// named by the index, or model.safetensors) and the tokenizer files. The optional names
    /// are listed whether or not they exist — the loader looks for them, so creating one
    /// (say `tokenizer.json` beside a `tokenizer.model`, or a shard index) would change what loads.
    static func hfInputFiles(_ dir: String, weights: [String]) -> [String] {
        let looked = ["config.json", "model.safetensors.index.json", "model.safetensors", sparseBitmaskWeightsFile, "tokenizer.json", "tokenizer.model",
                      "vocab.json", "merges.txt", "tokenizer.bin", "tokenizer_config.json"]
        return [dir] + looked.map { dir + "/" + $0 } + weights
    }
}
