import Foundation
import Tokenize

// MARK: - Family-neutral configuration
//
// Each family file (Families/Llama.swift, OPT.swift) decodes its own HF `config.json`
// with typed CodingKeys and converts it to this struct; everything downstream
// (forward, LRP, pruning) reads only `ModelConfig`.

public struct ModelConfig: Codable, Equatable, Sendable {
    public var family: ModelFamily
    public var vocabSize: Int
    public var dModel: Int            // hidden size
    public var nLayers: Int
    public var nHeads: Int
    public var nKVHeads: Int          // == nHeads without GQA
    public var headDim: Int
    public var dFF: Int               // MLP intermediate size (Llama) / ffn_dim (OPT)
    public var maxSeqLen: Int         // max_position_embeddings
    public var normEps: Float
    public var ropeTheta: Float       // Llama only
    public var tiedEmbeddings: Bool
    public var attentionBias: Bool    // q/k/v/o biases
    public var mlpBias: Bool          // gate/up/down (Llama) or fc1/fc2 (OPT) biases
    public var bosTokenId: Int?
    public var eosTokenId: Int?

    public init(family: ModelFamily, vocabSize: Int, dModel: Int, nLayers: Int, nHeads: Int, nKVHeads: Int,
                headDim: Int, dFF: Int, maxSeqLen: Int, normEps: Float, ropeTheta: Float = 10000,
                tiedEmbeddings: Bool, attentionBias: Bool = false, mlpBias: Bool = false,
                bosTokenId: Int? = nil, eosTokenId: Int? = nil) {
        self.family = family; self.vocabSize = vocabSize; self.dModel = dModel; self.nLayers = nLayers
        self.nHeads = nHeads; self.nKVHeads = nKVHeads; self.headDim = headDim; self.dFF = dFF
        self.maxSeqLen = maxSeqLen; self.normEps = normEps; self.ropeTheta = ropeTheta
        self.tiedEmbeddings = tiedEmbeddings; self.attentionBias = attentionBias; self.mlpBias = mlpBias
        self.bosTokenId = bosTokenId; self.eosTokenId = eosTokenId
    }

    public var qDim: Int { nHeads * headDim }
    public var kvDim: Int { nKVHeads * headDim }
}

// MARK: - Checkpoint (what every loader produces)

/// A loaded checkpoint: config plus every tensor keyed by its **HF name**
/// (`model.layers.3.self_attn.q_proj.weight`, `model.decoder.layers.0.fc1.bias`).
/// Loaders for non-HF formats (GGUF, llama2.c) rename and re-order into HF
/// conventions here, so q/k rows are always in HF rotate-half order.
public struct Checkpoint {
    public var config: ModelConfig
    public var tensors: [String: Tensor]
    public var tokenizer: TokenizerSource?
    public var format: String           // "hf-safetensors", "gguf", "llama2c"
    public var sourceDType: String      // e.g. "F32", "Q4_1", "BF16" (dominant dtype)
    public var path: String
    /// Whether the tokenizer should prepend BOS, when the checkpoint says so
    /// (tokenizer_config.json `add_bos_token`, GGUF `tokenizer.ggml.add_bos_token`).
    public var addBOS: Bool? = nil
    /// Where the config's values came from (file and key names), for errors; nil for
    /// checkpoints built in code, which are reported with config.json's key names.
    public var configSource: ConfigSource? = nil
    /// Every file loading read, and the optional ones it looked for and did not find
    /// (see `ModelLoader.hfInputFiles`): no command may write its output over one of them.
    public var inputFiles: [String] = []
    /// The file holding each tensor (a shard of an HF folder), for errors; tensors not listed
    /// are in `path` (a .gguf or .bin, or a checkpoint built in code).
    public var tensorFiles: [String: String] = [:]
    /// Why a checkpoint that names a tokenizer has none (e.g. a GGUF `tokenizer.ggml.model` not built in),
    /// so an error about a missing tokenizer can say so; nil when the checkpoint names no tokenizer.
    public var tokenizerAbsence: String? = nil

    /// The file that holds tensor `name`.
    public func file(of name: String) -> String { tensorFiles[name] ?? path }

    /// The weight files, for an error about a tensor none of them has: the file, or the shards.
    public var weightFiles: String {
        let files = Set(tensorFiles.values).sorted()
        switch files.count {
        case 0: return path
        case 1: return files[0]
        default: return "\(files.count) shards (\(files[0]), …)"
        }
    }

    public init(config: ModelConfig, tensors: [String: Tensor], tokenizer: TokenizerSource?,
                format: String, sourceDType: String, path: String) {
        self.config = config; self.tensors = tensors; self.tokenizer = tokenizer
        self.format = format; self.sourceDType = sourceDType; self.path = path
    }
}

/// Every size in a config.json must be positive (a zero would build an empty or
/// degenerate model and fail later far from the cause).
func requirePositive(file: String, _ values: [(String, Int)]) throws {
    for (key, v) in values where v <= 0 {
        throw ModelError.badConfig(file: file, key: key, reason: "must be positive, found \(v)")
    }
}
