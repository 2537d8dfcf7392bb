import Foundation
import Tokenize

// HF-named, HF-layout Llama checkpoint → the tensors and `llama.*` metadata a GGUF needs, in the
// layout llama.cpp's convert_hf_to_gguf.py writes: GGUF names (`blk.N.attn_q.weight`), ggml dims
// (HF shape reversed), and q/k rows permuted from HF rotate-half to the interleaved RoPE order
// (q with n_head, k with n_head_kv; biases alike). Encoding each tensor is the caller's (the
// quantiser picks a type per tensor), so this only lays them out.

public struct GGUFLlamaTensor {
    /// GGUF name, e.g. `blk.3.ffn_down.weight`.
    public var name: String
    /// The HF name it came from (what score files use).
    public var hf: String
    /// ggml dims (fastest-varying first).
    public var dims: [Int]
    /// Values in GGUF row order (q/k interleaved), row-major.
    public var values: [Float]
    /// Heads the rows were interleaved by (q/k), nil otherwise: scores for this tensor need the same permutation.
    public var ropeHeads: Int?
}

public enum GGUFLlamaExport {
    /// The checkpoint's tensors in llama.cpp's order and layout (token_embd, blocks, output_norm, output).
    public static func tensors(_ ck: Checkpoint) throws -> [GGUFLlamaTensor] {
        guard ck.config.family.rawValue == "llama" else { throw ModelError.unsupported(file: ck.path, feature: "GGUF export of a non-Llama model") }
        var out = [GGUFLlamaTensor]()
        func add(_ gguf: String, _ hf: String, rope: Int? = nil) throws {
            guard var t = ck.tensors[hf] else { throw ModelError.missingTensor(name: hf, file: ck.path) }
            if let h = rope { t = rotateHalfToInterleaved(t, heads: h) }
            out.append(GGUFLlamaTensor(name: gguf, hf: hf, dims: t.shape.reversed(), values: t.data, ropeHeads: rope))
        }
        let globals = LlamaNames.ggufGlobals
        func global(_ hf: String) -> String { globals.first { $0.value == hf }!.key }
        try add(global(LlamaNames.embed), LlamaNames.embed)
        let c = ck.config
        for l in 0..<c.nLayers {
            for w in LlamaNames.LayerTensor.allCases {
                for kind in ["weight", "bias"] {
                    let hf = w.name(l, kind)
                    if kind == "bias", ck.tensors[hf] == nil { continue }
                    try add("blk.\(l).\(w.gguf).\(kind)", hf, rope: w.ropeHeads(c))
                }
            }
        }
        try add(global(LlamaNames.norm), LlamaNames.norm)
        if !c.tiedEmbeddings { try add(global(LlamaNames.lmHead), LlamaNames.lmHead) }
        return out
    }

    /// The GGUF name of an HF-named Llama decoder tensor (`model.layers.3.mlp.down_proj.weight` →
    /// `blk.3.ffn_down.weight`), or nil when `hf` is not one of the `layers` blocks' tensors.
    public static func ggufName(hf: String, layers: Int) -> String? {
        for l in 0..<layers {
            for w in LlamaNames.LayerTensor.allCases {
                for kind in ["weight", "bias"] where w.name(l, kind) == hf { return "blk.\(l).\(w.gguf).\(kind)" }
            }
        }
        return nil
    }

    /// `tokenizer.ggml.*` keys for a checkpoint whose tokenizer comes from HF files (tokenizer.json or
    /// vocab.json + merges.txt, byte-level BPE): model "gpt2", pre, tokens, token_type, merges (as
    /// convert_hf_to_gguf.py writes them, padded to the model's vocabulary), BOS/EOS ids and
    /// add_bos_token. Empty for a checkpoint without one, or with a tokenizer kind this cannot
    /// describe (SentencePiece, llama2.c): `reason` says which. A GGUF source's own keys are carried
    /// over by the caller instead.
    public static func tokenizerMetadata(_ ck: Checkpoint) throws -> (items: [GGUFMetadataItem], reason: String?) {
        guard let source = ck.tokenizer else { return ([], "the checkpoint has no tokenizer files") }
        switch source {
        case .tokenizerJSON, .vocabMerges: break
        default: return ([], "only byte-level BPE tokenizers (tokenizer.json, vocab.json + merges.txt) are exported to GGUF keys")
        }
        let tok = try ModelLoader.makeCheckedTokenizer(source, hints: ModelLoader.tokenizerHints(for: ck), config: ck.config,
                                                       configSource: ck.configSource, modelPath: ck.path)
        guard let bpe = tok as? ByteLevelBPETokenizer else { return ([], "the tokenizer is not a byte-level BPE") }
        let a = bpe.ggufArrays(vocabularySize: ck.config.vocabSize)
        var items = [
            GGUFMetadataItem("tokenizer.ggml.model", .string("gpt2"), as: .string),
            GGUFMetadataItem("tokenizer.ggml.pre", .string(a.pre), as: .string),
            GGUFMetadataItem("tokenizer.ggml.tokens", .stringArray(a.tokens), as: .array(8)),
            GGUFMetadataItem("tokenizer.ggml.token_type", .intArray(a.tokenTypes.map(Int64.init)), as: .array(5)),
            GGUFMetadataItem("tokenizer.ggml.merges", .stringArray(a.merges), as: .array(8)),
        ]
        if let b = bpe.bosId { items.append(GGUFMetadataItem("tokenizer.ggml.bos_token_id", .uint(UInt64(b)), as: .u32)) }
        if let e = bpe.eosId { items.append(GGUFMetadataItem("tokenizer.ggml.eos_token_id", .uint(UInt64(e)), as: .u32)) }
        items.append(GGUFMetadataItem("tokenizer.ggml.add_bos_token", .bool(bpe.addsBOS), as: .bool))
        return (items, nil)
    }

    /// `general.architecture` and the `llama.*` keys our loader and llama.cpp read, from the config.
    public static func metadata(_ c: ModelConfig, name: String) -> [GGUFMetadataItem] {
        var m: [GGUFMetadataItem] = [
            GGUFMetadataItem("general.architecture", .string("llama"), as: .string),
            GGUFMetadataItem("general.name", .string(name), as: .string),
            GGUFMetadataItem("llama.vocab_size", .uint(UInt64(c.vocabSize)), as: .u32),
            GGUFMetadataItem("llama.context_length", .uint(UInt64(c.maxSeqLen)), as: .u32),
            GGUFMetadataItem("llama.embedding_length", .uint(UInt64(c.dModel)), as: .u32),
            GGUFMetadataItem("llama.block_count", .uint(UInt64(c.nLayers)), as: .u32),
            GGUFMetadataItem("llama.feed_forward_length", .uint(UInt64(c.dFF)), as: .u32),
            GGUFMetadataItem("llama.attention.head_count", .uint(UInt64(c.nHeads)), as: .u32),
            GGUFMetadataItem("llama.attention.head_count_kv", .uint(UInt64(c.nKVHeads)), as: .u32),
            GGUFMetadataItem("llama.rope.dimension_count", .uint(UInt64(c.headDim)), as: .u32),
            GGUFMetadataItem("llama.rope.freq_base", .float(Double(c.ropeTheta)), as: .f32),
            GGUFMetadataItem("llama.attention.layer_norm_rms_epsilon", .float(Double(c.normEps)), as: .f32),
        ]
        if c.headDim * c.nHeads != c.dModel {
            m.append(GGUFMetadataItem("llama.attention.key_length", .uint(UInt64(c.headDim)), as: .u32))
            m.append(GGUFMetadataItem("llama.attention.value_length", .uint(UInt64(c.headDim)), as: .u32))
        }
        return m
    }
}
