import Foundation

/// One generator per input format. Each returns a complete case: seed files, the
/// mutated file(s), a command that reads them, and the names a clear error may cite.
struct CaseFactory {
    let corpus: SeedCorpus

    func make(format: String, rng: inout Rng) -> Case {
        switch format {
        case "safetensors":
            let seed = rng.pick(corpus.models)
            return mutateFile(seed, "m/model.safetensors", format, &rng) { d, r in
                r.chance(0.7) ? SafetensorsMutator.mutate(d, rng: &r) : { let (x, m) = ByteMutator.mutate(d, rng: &r, head: 1024); return (x, m, []) }()
            }
        case "sparse-bitmask":
            let seed = corpus.sparse!
            // `prune --format sparse-bitmask` writes its weights to model.sparse-bitmask.safetensors (so no dense
            // loader mistakes them for model.safetensors); binaries before eabb26f wrote model.safetensors.
            let weights = seed.files["sb/model.sparse-bitmask.safetensors"] != nil ? "sb/model.sparse-bitmask.safetensors" : "sb/model.safetensors"
            return mutateFile(seed, weights, format, &rng, commands: ["sparsity", "info", "generate", "perplexity", "prune", "attribute"]) { d, r in
                SafetensorsMutator.mutate(d, rng: &r, sparse: true)
            }
        case "gguf":
            let (d, m, c) = GGUFMutator.mutate(corpus.gguf, rng: &rng)
            let seed = Seed(id: "synthetic/gguf", files: ["model.gguf": corpus.gguf.build().0], model: "model.gguf", hasTokenizer: true, family: "llama")
            var k = base(seed, format, &rng)
            apply(&k, "model.gguf", d, m, c, seed)
            return k
        case "config.json":
            let seed = rng.pick(corpus.models)
            return mutateFile(seed, "m/config.json", format, &rng) { d, r in JSONMutator.mutate(d, rng: &r, keys: Self.configKeys) }
        case "tokenizer.json":
            return mutateFile(corpus.models[0], "m/tokenizer.json", format, &rng, commands: ["tokenize", "generate", "info", "heatmap"]) { d, r in
                r.chance(0.8) ? JSONMutator.mutate(d, rng: &r, keys: ["model", "added_tokens", "pre_tokenizer", "decoder", "post_processor"])
                              : { let (x, m) = ByteMutator.mutate(d, rng: &r, head: d.count); return (x, m, []) }()
            }
        case "vocab+merges":
            let seed = corpus.models[1]
            if rng.chance(0.5) {
                return mutateFile(seed, "m/vocab.json", format, &rng, commands: ["tokenize", "generate", "info"]) { d, r in JSONMutator.mutate(d, rng: &r) }
            }
            return mutateFile(seed, "m/merges.txt", format, &rng, commands: ["tokenize", "generate", "info"]) { d, r in
                let (x, m) = LineMutator.mutate(d, rng: &r); return (x, m, [])
            }
        case "sentencepiece":
            return mutateFile(corpus.sentencePiece!, "m/tokenizer.model", format, &rng, commands: ["tokenize", "generate", "info", "perplexity"]) { d, r in
                let (x, m) = ByteMutator.mutate(d, rng: &r, head: d.count); return (x, m, [])
            }
        case "llama2c-tokenizer":
            let seed = rng.pick(corpus.llama2c)
            let tok = seed.files.keys.sorted().first { $0 != seed.model }!
            return mutateFile(seed, tok, format, &rng, commands: ["tokenize", "generate", "info"]) { d, r in Self.llama2cTokenizer(d, &r) }
        case "llama2c-bin":
            let seed = rng.pick(corpus.llama2c)
            return mutateFile(seed, seed.model, format, &rng) { d, r in Self.llama2cHeader(d, &r) }
        case "prompts": return PromptCases.prompts(corpus, &rng)
        case "corpus": return PromptCases.corpusText(corpus, &rng)
        case "target": return PromptCases.target(corpus, &rng)
        case "scores": return PromptCases.scores(corpus, &rng)
        default: return CLICases.make(corpus, &rng)
        }
    }

    // MARK: helpers

    /// The seed's files, a command for it, and nothing mutated yet.
    func base(_ seed: Seed, _ format: String, _ rng: inout Rng, commands: [String]? = nil) -> Case {
        let (argv, aux) = Commands.random(seed: seed, rng: &rng, from: commands)
        return Case(format: format, seed: seed.id, mutation: "", files: seed.files.merging(aux) { a, _ in a }, argv: argv)
    }

    func apply(_ k: inout Case, _ path: String, _ data: Data, _ mutation: String, _ culprits: [String], _ seed: Seed) {
        k.base[path] = k.files[path]
        k.files[path] = data
        k.mutated = [path]
        k.mutation = "\(path): \(mutation)"
        k.culprits = culprits
    }

    func mutateFile(_ seed: Seed, _ path: String, _ format: String, _ rng: inout Rng, commands: [String]? = nil,
                    _ mutate: (Data, inout Rng) -> (Data, String, [String])) -> Case {
        var k = base(seed, format, &rng, commands: commands)
        let (d, m, c) = mutate(seed.files[path]!, &rng)
        apply(&k, path, d, m, c, seed)
        return k
    }

    static let configKeys = [
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
        "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling", "tie_word_embeddings",
        "bos_token_id", "eos_token_id", "model_type", "attention_bias", "mlp_bias", "hidden_act", "torch_dtype",
        "ffn_dim", "word_embed_proj_dim", "do_layer_norm_before", "activation_function", "enable_bias", "quantization_config",
        "layer_norm_eps", "_remove_final_layer_norm", "pad_token_id",
    ]

    // MARK: llama2.c

    /// Header fields (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len).
    static func llama2cHeader(_ d: Data, _ rng: inout Rng) -> (Data, String, [String]) {
        let names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]
        guard rng.chance(0.7), d.count >= 28 else { let (x, m) = ByteMutator.mutate(d, rng: &rng, head: 28); return (x, m, []) }
        var b = [UInt8](d)
        let k = rng.below(7)
        var old: Int32 = 0
        for j in 0..<4 { old |= Int32(b[4 * k + j]) << (8 * Int32(j)) }
        let v: Int32 = rng.pick([0, 1, -1, 2, old &+ 1, old &- 1, old &* 2, old / 2, 0 &- old, Int32.max, Int32.min, 1 << 20, 1 << 30, 65_536])
        for j in 0..<4 { b[4 * k + j] = UInt8(truncatingIfNeeded: v >> (8 * Int32(j))) }
        return (Data(b), "\(names[k]) = \(v) (was \(old))", [names[k]])
    }

    /// max_token_length, a piece's score or length, or bytes.
    static func llama2cTokenizer(_ d: Data, _ rng: inout Rng) -> (Data, String, [String]) {
        var b = [UInt8](d)
        func put(_ v: UInt32, at o: Int) { for j in 0..<4 where o + j < b.count { b[o + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(j))) } }
        switch rng.below(4) {
        case 0:
            let v: Int32 = rng.pick([0, -1, 1, 2, Int32.max, 1 << 20, 1 << 19])
            put(UInt32(bitPattern: v), at: 0)
            return (Data(b), "max_token_length = \(v)", ["max_token_length"])
        case 1, 2:
            // Walk to the n-th entry, then damage its score or its length.
            var o = 4, n = 0
            let target = rng.below(300)
            while n < target, o + 8 <= b.count {
                var len = 0
                for j in 0..<4 { len |= Int(b[o + 4 + j]) << (8 * j) }
                o += 8 + len; n += 1
            }
            guard o + 8 <= b.count else { fallthrough }
            if rng.chance(0.5) {
                let v: UInt32 = rng.pick([0x7FC0_0000, 0x7F80_0000, 0xFF80_0000])
                put(v, at: o)
                return (Data(b), "score of token \(n) = 0x\(String(v, radix: 16))", ["token \(n)"])
            }
            let v: Int32 = rng.pick([0, -1, 1 << 20, Int32.max, 1000, 2])
            put(UInt32(bitPattern: v), at: o + 4)
            return (Data(b), "length of token \(n) = \(v)", ["token \(n)"])
        default:
            let (x, m) = ByteMutator.mutate(d, rng: &rng, head: d.count)
            return (x, m, [])
        }
    }
}
