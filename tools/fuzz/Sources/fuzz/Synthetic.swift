import Foundation

/// A tiny random-weight Llama (and its tokenizers) written by the harness itself, so
/// that every format the workbench reads has a seed that loads cleanly, with no asset
/// download and no Python. Deterministic: the same bytes on every run, which is what
/// lets saved regression fixtures refer to "synthetic/…" files.
struct SyntheticModel {
    static let dim = 32, hidden = 64, layers = 2, heads = 4, kvHeads = 2, headDim = 8, context = 64
    let tokens: [String]          // byte-level BPE vocabulary (GPT-2 byte→unicode alphabet)
    let merges: [String]          // "a b"
    let weights: [(name: String, shape: [Int], values: [Float])]   // HF names and layouts
    var vocab: Int { tokens.count }
    var eos: Int { tokens.count - 1 }

    static let text = """
    Once upon a time there was a little girl who lived in a village near the forest. Whenever she went out, \
    the little girl wore a red riding cloak, so everyone in the village called her Little Red Riding Hood. \
    One morning she asked her mother if she could go to visit her grandmother as it had been a while since \
    they had seen each other. The sun was shining and the birds were singing in the trees of the forest.
    """

    init() {
        let alphabet = SyntheticModel.byteAlphabet()
        // Train 63 byte-level BPE merges on `text` (pre-split on spaces, GPT-2 style Ġ prefix).
        var words: [[String]] = SyntheticModel.text.split(separator: " ").enumerated().map { n, w in
            (n == 0 ? "" : " ").utf8.map { alphabet[Int($0)] } + w.utf8.map { alphabet[Int($0)] }
        }
        var toks = alphabet, merges: [String] = []
        while merges.count < 63 {
            var counts: [String: Int] = [:], order: [String] = []
            for w in words where w.count > 1 {
                for k in 0..<(w.count - 1) {
                    let p = w[k] + " " + w[k + 1]
                    if counts[p] == nil { order.append(p) }
                    counts[p, default: 0] += 1
                }
            }
            guard let best = order.max(by: { counts[$0]! < counts[$1]! || (counts[$0]! == counts[$1]! && $0 > $1) }) else { break }
            let parts = best.split(separator: " ").map(String.init), joined = parts[0] + parts[1]
            merges.append(best); toks.append(joined)
            words = words.map { w in
                var out: [String] = [], k = 0
                while k < w.count {
                    if k + 1 < w.count, w[k] == parts[0], w[k + 1] == parts[1] { out.append(joined); k += 2 } else { out.append(w[k]); k += 1 }
                }
                return out
            }
        }
        toks.append("<|endoftext|>")
        tokens = toks
        self.merges = merges

        var rng = Rng(seed: 0x5EED)
        func rand(_ n: Int, scale: Float = 0.08) -> [Float] { (0..<n).map { _ in (Float(rng.below(2001)) / 1000 - 1) * scale } }
        let d = SyntheticModel.dim, h = SyntheticModel.hidden, q = SyntheticModel.heads * SyntheticModel.headDim
        let kv = SyntheticModel.kvHeads * SyntheticModel.headDim
        var w: [(String, [Int], [Float])] = [("model.embed_tokens.weight", [toks.count, d], rand(toks.count * d, scale: 0.5))]
        for l in 0..<SyntheticModel.layers {
            let p = "model.layers.\(l)."
            w += [(p + "input_layernorm.weight", [d], [Float](repeating: 1, count: d)),
                  (p + "self_attn.q_proj.weight", [q, d], rand(q * d)), (p + "self_attn.k_proj.weight", [kv, d], rand(kv * d)),
                  (p + "self_attn.v_proj.weight", [kv, d], rand(kv * d)), (p + "self_attn.o_proj.weight", [d, q], rand(d * q)),
                  (p + "post_attention_layernorm.weight", [d], [Float](repeating: 1, count: d)),
                  (p + "mlp.gate_proj.weight", [h, d], rand(h * d)), (p + "mlp.up_proj.weight", [h, d], rand(h * d)),
                  (p + "mlp.down_proj.weight", [d, h], rand(d * h))]
        }
        w.append(("model.norm.weight", [d], [Float](repeating: 1, count: d)))
        weights = w.map { (name: $0.0, shape: $0.1, values: $0.2) }
    }

    /// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100….
    static func byteAlphabet() -> [String] {
        var out = [String](repeating: "", count: 256), n = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            out[b] = String(UnicodeScalar(UInt32(printable ? b : 256 + n))!)
            if !printable { n += 1 }
        }
        return out
    }

    // MARK: HF directory files

    var configJSON: Data {
        JSON.object([
            ("architectures", .array([.string("LlamaForCausalLM")])), ("model_type", .string("llama")),
            ("hidden_size", .int(Self.dim)), ("intermediate_size", .int(Self.hidden)), ("num_hidden_layers", .int(Self.layers)),
            ("num_attention_heads", .int(Self.heads)), ("num_key_value_heads", .int(Self.kvHeads)), ("head_dim", .int(Self.headDim)),
            ("vocab_size", .int(vocab)), ("max_position_embeddings", .int(Self.context)), ("rms_norm_eps", .raw("1e-05")),
            ("rope_theta", .raw("10000.0")), ("rope_scaling", .raw("null")), ("hidden_act", .string("silu")),
            ("attention_bias", .raw("false")), ("mlp_bias", .raw("false")), ("tie_word_embeddings", .raw("true")),
            ("bos_token_id", .int(eos)), ("eos_token_id", .int(eos)), ("torch_dtype", .string("float32")),
        ]).data
    }

    var safetensors: Data {
        SafetensorsFile(tensors: weights.map { (name: $0.name, dtype: "F32", shape: $0.shape, bytes: $0.values.littleEndianBytes) }).data
    }

    var tokenizerJSON: Data {
        JSON.object([
            ("version", .string("1.0")),
            ("added_tokens", .array([.object([("id", .int(eos)), ("content", .string("<|endoftext|>")), ("special", .raw("true"))])])),
            ("pre_tokenizer", .object([("type", .string("ByteLevel")), ("add_prefix_space", .raw("false"))])),
            ("post_processor", .raw("null")),
            ("decoder", .object([("type", .string("ByteLevel"))])),
            ("model", .object([("type", .string("BPE")),
                               ("vocab", .object(tokens.enumerated().map { ($0.element, .int($0.offset)) })),
                               ("merges", .array(merges.map(JSON.string)))])),
        ]).data
    }

    var vocabJSON: Data { JSON.object(tokens.enumerated().map { ($0.element, .int($0.offset)) }).data }
    var mergesTxt: Data { Data((["#version: 0.2"] + merges).joined(separator: "\n").utf8 + [0x0A]) }

    // MARK: GGUF

    var gguf: GGUFBuilder {
        var g = GGUFBuilder()
        g.kvs = [
            ("general.architecture", .string("llama")), ("general.name", .string("fuzz-synthetic")),
            ("llama.context_length", .u32(UInt32(Self.context))), ("llama.embedding_length", .u32(UInt32(Self.dim))),
            ("llama.block_count", .u32(UInt32(Self.layers))), ("llama.feed_forward_length", .u32(UInt32(Self.hidden))),
            ("llama.attention.head_count", .u32(UInt32(Self.heads))), ("llama.attention.head_count_kv", .u32(UInt32(Self.kvHeads))),
            ("llama.rope.freq_base", .f32(10000)), ("llama.attention.layer_norm_rms_epsilon", .f32(1e-5)),
            ("llama.vocab_size", .u32(UInt32(vocab))),
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("gpt2")),
            ("tokenizer.ggml.tokens", .strings(tokens)), ("tokenizer.ggml.merges", .strings(merges)),
            ("tokenizer.ggml.token_type", .i32s((0..<vocab).map { $0 == eos ? 3 : 1 })),
            ("tokenizer.ggml.bos_token_id", .u32(UInt32(eos))), ("tokenizer.ggml.eos_token_id", .u32(UInt32(eos))),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
        ]
        // One tensor of every type the reader dequantises (F32, F16, BF16-free, Q8_0, Q4_0, Q4_1).
        let hfToGGUF = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                        "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                        "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                        "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                        "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"]
        for (n, (name, shape, values)) in weights.enumerated() {
            var gname = hfToGGUF[name] ?? name
            if name.hasPrefix("model.layers.") {
                let parts = name.split(separator: ".")
                gname = "blk.\(parts[2])." + hfToGGUF[parts[3...].joined(separator: ".")]!
            }
            let dims = shape.reversed().map { UInt64($0) }
            if shape.count == 1 { g.tensors.append(.init(name: gname, dims: dims, type: 0, bytes: values.littleEndianBytes)); continue }
            switch n % 4 {
            case 0: g.tensors.append(.init(name: gname, dims: dims, type: 8, bytes: GGUFBuilder.q8_0(values)))
            case 1: g.tensors.append(.init(name: gname, dims: dims, type: 1, bytes: GGUFBuilder.f16(values)))
            case 2: g.tensors.append(.init(name: gname, dims: dims, type: 2, bytes: GGUFBuilder.q4_0(values)))
            default: g.tensors.append(.init(name: gname, dims: dims, type: 3, bytes: GGUFBuilder.q4_1(values)))
            }
        }
        return g
    }

    // MARK: llama2.c

    /// Header (7 × int32) then the weights in llama2.c's order, shared classifier.
    var llama2cBin: Data {
        var out: [UInt8] = []
        for v in [Self.dim, Self.hidden, Self.layers, Self.heads, Self.kvHeads, vocab, Self.context] { out += leBytes(Int32(v)) }
        func w(_ suffix: String) -> [Float] {
            weights.filter { $0.name.hasSuffix(suffix) && $0.name.hasPrefix("model.layers.") }.flatMap(\.values)
        }
        out += weights[0].values.littleEndianBytes
        for s in ["input_layernorm.weight", "q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
                  "post_attention_layernorm.weight", "gate_proj.weight", "down_proj.weight", "up_proj.weight"] { out += w(s).littleEndianBytes }
        out += weights.last!.values.littleEndianBytes
        // freq_cis_real and freq_cis_imag: [context, headDim/2] each (unused by modern readers, but sized).
        out += [Float](repeating: 0.5, count: Self.context * Self.headDim).littleEndianBytes
        return Data(out)
    }

    /// llama2.c tokenizer: max_token_length, then per id: f32 score, i32 length, bytes.
    /// Ids 0–2 are <unk>, <s>, </s>; 3–258 are the byte fallbacks <0xXX>; 259 is " "; then merged pieces.
    var llama2cTokenizer: Data {
        var pieces: [[UInt8]] = [Array("<unk>".utf8), Array("\n<s>\n".utf8), Array("\n</s>\n".utf8)]
        pieces += (0..<256).map { Array(String(format: "<0x%02X>", $0).utf8) }
        pieces.append([0x20])   // llama2.c's encoder looks up " " for the dummy prefix
        let alphabet = Self.byteAlphabet()
        var inverse: [String: UInt8] = [:]
        for (b, s) in alphabet.enumerated() { inverse[s] = UInt8(b) }
        for t in tokens[256...] where pieces.count < vocab {
            pieces.append(t.unicodeScalars.compactMap { inverse[String($0)] })
        }
        var out = leBytes(Int32(pieces.map(\.count).max()!))
        for (n, p) in pieces.enumerated() {
            out += leBytes((n < 260 ? Float(0) : Float(-(n - 260))).bitPattern) + leBytes(Int32(p.count)) + p
        }
        return Data(out)
    }
}
