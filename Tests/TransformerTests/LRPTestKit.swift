import Foundation
import XCTest
@testable import Transformer

// MARK: - Shared helpers for LRPRuleTests and LRPConservationTests

/// Deterministic random tensors, tiny random models and recording sinks.
enum LRPTestKit {
    /// Uniform in [-a, a) from the project's SplitMix64 (`SeededRNG`).
    static func uniform(_ rng: inout SeededRNG, _ a: Double = 1) -> Double { (2 * rng.uniform() - 1) * a }
    static func floats(_ n: Int, _ rng: inout SeededRNG, scale: Double = 1, offset: Double = 0) -> [Float] {
        (0..<n).map { _ in Float(offset + uniform(&rng, scale)) }
    }
    /// Weight with unit-variance-preserving scale √(3/fanIn)·gain.
    static func weight(_ out: Int, _ inDim: Int, _ rng: inout SeededRNG, gain: Double = 1) -> Tensor {
        Tensor(shape: [out, inDim], data: floats(out * inDim, &rng, scale: gain * (3.0 / Double(inDim)).squareRoot()))
    }
    static func vector(_ n: Int, _ rng: inout SeededRNG, scale: Double, offset: Double = 0) -> Tensor {
        Tensor(shape: [n], data: floats(n, &rng, scale: scale, offset: offset))
    }

    /// A tiny random Llama (GQA 4 query heads over 2 kv heads, untied lm_head).
    /// With `bias`, q/k/v/o and gate/up/down all carry (non-zero) biases.
    static func randomLlama(seed: UInt64, layers: Int = 2, bias: Bool, d: Int = 16, nHeads: Int = 4, nKV: Int = 2,
                            headDim: Int = 4, dFF: Int = 24, vocab: Int = 64, maxSeq: Int = 48) throws -> Model {
        var rng = SeededRNG(seed: seed)
        let cfg = ModelConfig(family: .llama, vocabSize: vocab, dModel: d, nLayers: layers, nHeads: nHeads, nKVHeads: nKV,
                              headDim: headDim, dFF: dFF, maxSeqLen: maxSeq, normEps: 1e-6, ropeTheta: 10000,
                              tiedEmbeddings: false, attentionBias: bias, mlpBias: bias)
        var t: [String: Tensor] = [:]
        t["model.embed_tokens.weight"] = Tensor(shape: [vocab, d], data: floats(vocab * d, &rng, scale: 1.7))
        for l in 0..<layers {
            let p = "model.layers.\(l)."
            t[p + "input_layernorm.weight"] = vector(d, &rng, scale: 0.3, offset: 1)
            t[p + "post_attention_layernorm.weight"] = vector(d, &rng, scale: 0.3, offset: 1)
            let shapes: [(String, Int, Int)] = [
                ("self_attn.q_proj", cfg.qDim, d), ("self_attn.k_proj", cfg.kvDim, d), ("self_attn.v_proj", cfg.kvDim, d),
                ("self_attn.o_proj", d, cfg.qDim), ("mlp.gate_proj", dFF, d), ("mlp.up_proj", dFF, d), ("mlp.down_proj", d, dFF),
            ]
            for (name, o, i) in shapes {
                t[p + name + ".weight"] = weight(o, i, &rng, gain: name.hasSuffix("q_proj") || name.hasSuffix("k_proj") ? 1.5 : 1)
                if bias { t[p + name + ".bias"] = vector(o, &rng, scale: 0.3) }
            }
        }
        t["model.norm.weight"] = vector(d, &rng, scale: 0.3, offset: 1)
        t["lm_head.weight"] = weight(vocab, d, &rng, gain: 1.5)
        return try Model.build(from: Checkpoint(config: cfg, tensors: t, tokenizer: nil, format: "test",
                                                sourceDType: "F32", path: "inline"))
    }

    /// A tiny random pre-LN OPT (biases and LayerNorm β everywhere, tied unembedding).
    static func randomOPT(seed: UInt64, layers: Int = 2, d: Int = 16, nHeads: Int = 4, dFF: Int = 32, vocab: Int = 64,
                          maxSeq: Int = 48) throws -> Model {
        var rng = SeededRNG(seed: seed)
        let cfg = ModelConfig(family: .opt, vocabSize: vocab, dModel: d, nLayers: layers, nHeads: nHeads, nKVHeads: nHeads,
                              headDim: d / nHeads, dFF: dFF, maxSeqLen: maxSeq, normEps: 1e-5, ropeTheta: 0,
                              tiedEmbeddings: true, attentionBias: true, mlpBias: true)
        var t: [String: Tensor] = [:]
        t["model.decoder.embed_tokens.weight"] = Tensor(shape: [vocab, d], data: floats(vocab * d, &rng, scale: 1))
        t["model.decoder.embed_positions.weight"] = Tensor(shape: [maxSeq + 2, d], data: floats((maxSeq + 2) * d, &rng, scale: 0.5))
        func ln(_ name: String) {
            t[name + ".weight"] = vector(d, &rng, scale: 0.3, offset: 1)
            t[name + ".bias"] = vector(d, &rng, scale: 0.3)
        }
        for l in 0..<layers {
            let p = "model.decoder.layers.\(l)."
            ln(p + "self_attn_layer_norm")
            for (name, o, i) in [("self_attn.q_proj", d, d), ("self_attn.k_proj", d, d), ("self_attn.v_proj", d, d),
                                 ("self_attn.out_proj", d, d), ("fc1", dFF, d), ("fc2", d, dFF)] {
                t[p + name + ".weight"] = weight(o, i, &rng, gain: name.hasSuffix("q_proj") || name.hasSuffix("k_proj") ? 1.5 : 1)
                t[p + name + ".bias"] = vector(o, &rng, scale: 0.3)
            }
            ln(p + "final_layer_norm")
        }
        ln("model.decoder.final_layer_norm")
        return try Model.build(from: Checkpoint(config: cfg, tensors: t, tokenizer: nil, format: "test",
                                                sourceDType: "F32", path: "inline"))
    }

    /// Distinct token ids (so a token's embedding row is used at one position only).
    static func distinctTokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int] {
        var rng = SeededRNG(seed: seed)
        var ids = Array(0..<vocab)
        ids.shuffle(using: &rng)
        return Array(ids.prefix(n))
    }

    /// Σ coefficient · logit over the explained terms, from the plain forward, in Double.
    static func explainedFromForward(_ m: Model, _ tokens: [Int], _ terms: [ExplainTerm]) -> Double {
        let logits = m.forward(tokens), v = m.config.vocabSize
        return terms.reduce(0.0) { $0 + Double($1.coefficient) * Double(logits[$1.position * v + $1.token]) }
    }

    /// |a − b| ≤ rel · max(|a|, |b|, floor).
    static func close(_ a: Double, _ b: Double, rel: Double, floor: Double = 0) -> Bool {
        abs(a - b) <= rel * max(abs(a), abs(b), floor)
    }
}

/// Records, per linear weight, δW (summed over calls), R_W = W ⊙ δW per element,
/// and Σ R_W / Σ |R_W| in Double; plus neuron and head relevance.
final class RecordingSink: RelevanceSink {
    var grad: [String: [Float]] = [:]
    var relevance: [String: [Float]] = [:]
    var total: [String: Double] = [:]
    var absTotal: [String: Double] = [:]
    var neurons: [Int: [Double]] = [:]
    var heads: [Int: [Double]] = [:]
    var calls: [String] = []
    func weightGradient(_ l: Linear, _ dW: UnsafePointer<Float>) {
        calls.append(l.name)
        var g = grad[l.name] ?? [Float](repeating: 0, count: l.weight.count)
        var r = relevance[l.name] ?? g
        var s = 0.0, a = 0.0
        for i in g.indices {
            g[i] += dW[i]
            let ri = l.weight[i] * dW[i]
            r[i] += ri
            s += Double(l.weight[i]) * Double(dW[i]); a += abs(Double(ri))
        }
        grad[l.name] = g; relevance[l.name] = r
        total[l.name, default: 0] += s; absTotal[l.name, default: 0] += a
    }
    func neurons(layer: Int, _ r: [Float]) {
        neurons[layer] = zip(neurons[layer] ?? r.map { _ in 0 }, r).map { $0 + Double($1) }
    }
    func heads(layer: Int, _ r: [Float]) {
        heads[layer] = zip(heads[layer] ?? r.map { _ in 0 }, r).map { $0 + Double($1) }
    }
}
