import Foundation
import Tokenize

// MARK: - llama2.c legacy (v0) checkpoints
//
// Header: 7 × int32 LE (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len); a negative vocab_size means an untied classifier
// follows freq_cis. Then F32 tensors, all layers of one kind at a time:
// tok_embeddings, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// freq_cis_real, freq_cis_imag, [wcls]. The format has no magic and no
// checksums, so the exact file size is the only integrity check.

public enum Llama2CError: LocalizedError, Equatable {
    case badHeader(path: String, field: String, value: Int)
    case sizeMismatch(path: String, expected: Int, actual: Int)

    public var errorDescription: String? {
        switch self {
        case .badHeader(let p, let f, let v): return "\(p): invalid llama2.c header: \(f) = \(v)"
        case .sizeMismatch(let p, let e, let a):
            return "\(p): llama2.c checkpoint should be \(e) bytes for its header, but the file has \(a) bytes"
        }
    }
}

public struct Llama2CHeader: Equatable, Sendable {
    public var dim, hiddenDim, nLayers, nHeads, nKVHeads, vocabSize, seqLen: Int
    public var sharedClassifier: Bool
    public var headDim: Int { dim / nHeads }
    public var kvDim: Int { nKVHeads * headDim }

    /// Float counts of every section in file order (name, count).
    var sections: [(String, Int)] {
        let L = nLayers
        var s: [(String, Int)] = [
            ("tok_embeddings", vocabSize * dim), ("rms_att", L * dim), ("wq", L * dim * dim), ("wk", L * kvDim * dim),
            ("wv", L * kvDim * dim), ("wo", L * dim * dim), ("rms_ffn", L * dim), ("w1", L * hiddenDim * dim),
            ("w2", L * dim * hiddenDim), ("w3", L * hiddenDim * dim), ("rms_final", dim),
            ("freq_cis", seqLen * headDim),   // real + imag, seq_len × head_dim/2 each
        ]
        if !sharedClassifier { s.append(("wcls", vocabSize * dim)) }
        return s
    }
    public var expectedFileSize: Int { 28 + 4 * sections.reduce(0) { $0 + $1.1 } }
}

/// Parse and validate the 28-byte header (bounds keep every size product far from overflow).
public func readLlama2CHeader(_ f: MappedFile) throws -> Llama2CHeader {
    let p = f.path
    guard f.size >= 28 else { throw Llama2CError.sizeMismatch(path: p, expected: 28, actual: f.size) }
    let v = (0..<7).map { Int(f.i32(4 * $0)) }
    // Newer llama2.c exports (version 1/2) start with the magic "ak42".
    if v[0] == 0x616B_3432 { throw ModelError.unsupported(file: p, feature: "llama2.c export version \(v[1]) (only the legacy v0 format)") }
    let names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]
    let limits = [1 << 16, 1 << 20, 4096, 4096, 4096, 1 << 24, 1 << 24]
    for i in 0..<7 where abs(v[i]) > limits[i] || v[i] == 0 || (v[i] < 0 && i != 5) {
        throw Llama2CError.badHeader(path: p, field: names[i], value: v[i])
    }
    let h = Llama2CHeader(dim: v[0], hiddenDim: v[1], nLayers: v[2], nHeads: v[3], nKVHeads: v[4],
                          vocabSize: abs(v[5]), seqLen: v[6], sharedClassifier: v[5] > 0)
    guard h.dim % h.nHeads == 0, h.headDim % 2 == 0 else { throw Llama2CError.badHeader(path: p, field: "n_heads", value: h.nHeads) }
    guard h.nKVHeads <= h.nHeads, h.nHeads % h.nKVHeads == 0 else {
        throw Llama2CError.badHeader(path: p, field: "n_kv_heads", value: h.nKVHeads)
    }
    return h
}

// MARK: - Loader

/// Load a llama2.c v0 `.bin` as an HF-named checkpoint with q/k rows in rotate-half order.
public func loadLlama2C(path: String) throws -> Checkpoint {
    let f = try MappedFile(path: path)
    let h = try readLlama2CHeader(f)
    guard f.size == h.expectedFileSize else { throw Llama2CError.sizeMismatch(path: path, expected: h.expectedFileSize, actual: f.size) }

    let config = ModelConfig(family: .llama, vocabSize: h.vocabSize, dModel: h.dim, nLayers: h.nLayers, nHeads: h.nHeads,
                             nKVHeads: h.nKVHeads, headDim: h.headDim, dFF: h.hiddenDim, maxSeqLen: h.seqLen,
                             normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: h.sharedClassifier,
                             bosTokenId: 1, eosTokenId: 2)
    let source = ConfigSource.llama2c(file: path)
    try config.validate(source: source)

    var offset = 28
    /// Next `count` floats as `n` equal slices (one per layer), then release their pages.
    func take(_ count: Int, slices n: Int = 1) -> [[Float]] {
        let per = count / n
        let out = (0..<n).map { i in
            [Float](unsafeUninitializedCapacity: per) { buf, done in
                if let d = buf.baseAddress { UnsafeMutableRawPointer(d).copyMemory(from: f.base + offset + 4 * i * per, byteCount: 4 * per) }
                done = per
            }
        }
        f.release(offset, 4 * count)
        offset += 4 * count
        return out
    }
    let L = h.nLayers, sizes = Dictionary(uniqueKeysWithValues: h.sections.map { ($0.0, $0.1) })
    func size(_ k: String) -> Int { sizes[k] ?? 0 }
    // Sections in file order, renamed to HF by the family's table (`LlamaNames`).
    var t = [String: Tensor]()
    t[LlamaNames.embed] = Tensor(shape: [h.vocabSize, h.dim], data: take(size(LlamaNames.llama2cEmbed))[0])
    for w in LlamaNames.llama2cLayerOrder {
        for (l, data) in take(size(w.llama2c), slices: L).enumerated() {
            let tensor = Tensor(shape: w.shape(config), data: data)
            // Meta's interleaved RoPE pairs (2i, 2i+1); HF pairs (i, i + hd/2): reorder rows once here.
            t[w.name(l)] = w.ropeHeads(config).map { interleavedToRotateHalf(tensor, heads: $0) } ?? tensor
        }
    }
    t[LlamaNames.norm] = Tensor(shape: [h.dim], data: take(size(LlamaNames.llama2cNorm))[0])
    _ = take(size("freq_cis"))   // unused: RoPE is computed from θ
    if !h.sharedClassifier { t[LlamaNames.lmHead] = Tensor(shape: [h.vocabSize, h.dim], data: take(size(LlamaNames.llama2cClassifier))[0]) }

    var ck = Checkpoint(config: config, tensors: t, tokenizer: findLlama2CTokenizer(modelPath: path, vocabSize: h.vocabSize),
                        format: "llama2c", sourceDType: "F32", path: path)
    ck.configSource = source
    return ck
}

/// Tokenizer next to a llama2.c checkpoint: tokenizer.bin, tok{V}.bin, tokenizer.model, tok{V}.model.
public func findLlama2CTokenizer(modelPath: String, vocabSize: Int) -> TokenizerSource? {
    for p in llama2CTokenizerCandidates(modelPath: modelPath, vocabSize: vocabSize) where FileManager.default.isReadableFile(atPath: p) {
        return p.hasSuffix(".bin") ? .llama2c(path: p) : .sentencePiece(path: p)
    }
    return nil
}

/// The tokenizer paths looked for beside a llama2.c checkpoint, in order of preference.
public func llama2CTokenizerCandidates(modelPath: String, vocabSize: Int) -> [String] {
    let dir = URL(fileURLWithPath: modelPath).deletingLastPathComponent()
    return ["tokenizer.bin", "tok\(vocabSize).bin", "tokenizer.model", "tok\(vocabSize).model"].map { dir.appendingPathComponent($0).path }
}

// MARK: - q/k row order (shared with the GGUF loader)
//
// Within each head of hd rows, interleaved (Meta / llama.cpp) row 2i + j holds
// the same weights as rotate-half (HF) row j·hd/2 + i, for i < hd/2, j ∈ {0, 1}.
// This is HF's `W.reshape(H, hd/2, 2, in).swapaxes(1, 2)`; convert_hf_to_gguf's
// `permute` is its inverse. Works on weights [H·hd, in] and biases [H·hd].

/// Interleaved → rotate-half. Requires `t.shape[0]` divisible by `2 * heads` (callers validate).
public func interleavedToRotateHalf(_ t: Tensor, heads: Int) -> Tensor { permuteHeadRows(t, heads: heads, toRotateHalf: true) }

/// Rotate-half → interleaved (what llama.cpp's converter does); inverse of `interleavedToRotateHalf`.
public func rotateHalfToInterleaved(_ t: Tensor, heads: Int) -> Tensor { permuteHeadRows(t, heads: heads, toRotateHalf: false) }

private func permuteHeadRows(_ t: Tensor, heads: Int, toRotateHalf: Bool) -> Tensor {
    guard let rows = t.shape.first, heads > 0, rows % (2 * heads) == 0, rows > 0 else { return t }
    let cols = t.count / rows, hd = rows / heads
    var out = t
    t.data.withUnsafeBufferPointer { src in
        out.data.withUnsafeMutableBufferPointer { dst in
            guard let s = src.baseAddress, let d = dst.baseAddress else { return }
            for h in 0..<heads {
                for i in 0..<hd / 2 {
                    for j in 0..<2 {
                        let inter = h * hd + 2 * i + j, rot = h * hd + j * (hd / 2) + i
                        let (from, to) = toRotateHalf ? (inter, rot) : (rot, inter)
                        (d + to * cols).update(from: s + from * cols, count: cols)
                    }
                }
            }
        }
    }
    return out
}
