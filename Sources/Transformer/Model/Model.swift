import Foundation

// MARK: - Parameters
//
// Every parameter keeps its HF tensor name: relevance maps, masks and pruned
// checkpoints are keyed by the same names, so they line up with the checkpoint.

/// A linear layer y = W x (+ b), W stored [out, in] as PyTorch stores it.
public final class Linear {
    public let name: String          // HF weight name, e.g. "model.layers.0.mlp.up_proj.weight"
    public let outDim: Int
    public let inDim: Int
    /// [outDim, inDim]. Any change drops the decode copy (see `Model.prepareDecodeLayout`).
    public var weight: [Float] { didSet { decodeT = nil } }
    public var bias: [Float]?        // [outDim]
    /// Wᵀ [inDim, outDim] for single-row products, or nil (see `Model.prepareDecodeLayout`).
    var decodeT: DecodeCopy?
    /// Ablation hook (nil in every normal run): when set, `forward` reads its input [rows, inDim]
    /// through it; it may return a patched copy (activation patching of o_proj / down_proj inputs).
    public var inputEdit: ((_ x: UnsafePointer<Float>, _ rows: Int) -> UnsafePointer<Float>)?

    public init(name: String, outDim: Int, inDim: Int, weight: [Float], bias: [Float]?) {
        precondition(weight.count == outDim * inDim)
        self.name = name; self.outDim = outDim; self.inDim = inDim; self.weight = weight; self.bias = bias
    }

    public var biasName: String { Linear.biasName(for: name) }
    static func biasName(for weightName: String) -> String {
        weightName.hasSuffix(".weight") ? String(weightName.dropLast(7)) + ".bias" : weightName + ".bias"
    }

    /// y[T, out] = x[T, in] · Wᵀ + b — the hot spot: all time goes here.
    /// y [rows, out] = x·Wᵀ + b, or y += x·Wᵀ + b with `accumulate` (a residual add fused into the GEMM).
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, accumulate: Bool = false) {
        let x = inputEdit?(x, rows) ?? x
        if rows == 1, let decodeT {
            BLAS.gemvTRows(n: inDim, k: outDim, decodeT.pointer, lda: outDim, x, beta: accumulate ? 1 : 0, y)
        } else {
            weight.cptr { w in BLAS.linear(x, w, y, m: rows, k: inDim, n: outDim, accumulate: accumulate) }
        }
        if let bias { addRowBias(y, bias, rows: rows, cols: outDim) }
    }
}

/// One decoder block. Llama: gate/up/down. OPT: `up` is fc1, `down` is fc2, `gate` is nil.
public final class Block {
    public let index: Int
    public var attnNorm: Norm        // input_layernorm / self_attn_layer_norm
    public let q: Linear, k: Linear, v: Linear, o: Linear
    public var mlpNorm: Norm         // post_attention_layernorm / final_layer_norm
    public let gate: Linear?
    public let up: Linear
    public let down: Linear

    init(index: Int, attnNorm: Norm, q: Linear, k: Linear, v: Linear, o: Linear,
         mlpNorm: Norm, gate: Linear?, up: Linear, down: Linear) {
        self.index = index; self.attnNorm = attnNorm; self.q = q; self.k = k; self.v = v; self.o = o
        self.mlpNorm = mlpNorm; self.gate = gate; self.up = up; self.down = down
    }

    /// The block's linear layers in HF order (q, k, v, o, gate?, up, down).
    public var linears: [Linear] { [q, k, v, o] + (gate.map { [$0] } ?? []) + [up, down] }
}

// MARK: - Model

public final class Model {
    public let config: ModelConfig
    public var embed: [Float] { didSet { unembeddingT = nil } }       // [vocab, dModel]
    public let embedName: String
    public var positions: [Float]?            // OPT: [maxSeqLen + 2, dModel]
    public let blocks: [Block]
    public var finalNorm: Norm
    public var lmHead: [Float]? { didSet { unembeddingT = nil } }     // [vocab, dModel]; nil when tied to `embed`
    /// (lm_head or embed)ᵀ [dModel, vocab] for decode, or nil (see `prepareDecodeLayout`).
    var unembeddingT: DecodeCopy?
    var rope: RopeTable?                      // RoPE families only
    /// Where the context length came from (`config.json key 'max_position_embeddings'`, the GGUF's
    /// `llama.context_length`, the llama2.c header's `seq_len`): a too-long input names it, so the user
    /// knows which value to check. Set by `build(from:)`.
    public internal(set) var contextOrigin: String? = nil
    /// The checkpoint the model was loaded from (file or directory), for errors about its numbers.
    public internal(set) var sourcePath: String? = nil

    init(config: ModelConfig, embed: [Float], embedName: String, positions: [Float]?, blocks: [Block],
         finalNorm: Norm, lmHead: [Float]?) {
        self.config = config; self.embed = embed; self.embedName = embedName; self.positions = positions
        self.blocks = blocks; self.finalNorm = finalNorm; self.lmHead = lmHead
    }

    /// Every decoder linear layer (never embeddings or lm_head), in layer order.
    public var linears: [Linear] { blocks.flatMap(\.linears) }

    public func linear(named name: String) -> Linear? { linears.first { $0.name == name } }

    public var parameterCount: Int {
        var n = embed.count + (positions?.count ?? 0) + (lmHead?.count ?? 0)
        n += finalNorm.weight.count + (finalNorm.bias?.count ?? 0)
        for b in blocks {
            n += b.attnNorm.weight.count + (b.attnNorm.bias?.count ?? 0) + b.mlpNorm.weight.count + (b.mlpNorm.bias?.count ?? 0)
            for l in b.linears { n += l.weight.count + (l.bias?.count ?? 0) }
        }
        return n
    }

    /// Bytes the decode step streams per token (all weights read once).
    public var weightBytes: Int {
        var n = (lmHead ?? embed).count + (positions == nil ? 0 : config.dModel)
        for b in blocks { for l in b.linears { n += l.weight.count + (l.bias?.count ?? 0) } }
        return n * 4
    }

    /// All parameters as HF-named tensors (for saving a checkpoint).
    public func namedTensors() -> [(String, Tensor)] {
        let c = config
        var out: [(String, Tensor)] = [(embedName, Tensor(shape: [c.vocabSize, c.dModel], data: embed))]
        if let positions, let name = c.definition.names.positions {
            out.append((name, Tensor(shape: [positions.count / c.dModel, c.dModel], data: positions)))
        }
        func addNorm(_ n: Norm) {
            out.append((n.name, Tensor(shape: [n.weight.count], data: n.weight)))
            if let b = n.bias { out.append((Linear.biasName(for: n.name), Tensor(shape: [b.count], data: b))) }
        }
        for b in blocks {
            addNorm(b.attnNorm)
            for l in b.linears {
                out.append((l.name, Tensor(shape: [l.outDim, l.inDim], data: l.weight)))
                if let bias = l.bias { out.append((l.biasName, Tensor(shape: [l.outDim], data: bias))) }
            }
            addNorm(b.mlpNorm)
        }
        addNorm(finalNorm)
        if let lmHead { out.append((c.definition.names.lmHead, Tensor(shape: [c.vocabSize, c.dModel], data: lmHead))) }
        return out
    }
}

// MARK: - Building from a checkpoint

/// Pulls HF-named tensors out of a checkpoint, checking presence and shape.
struct TensorTaker {
    var tensors: [String: Tensor]
    let file: String

    mutating func take(_ name: String, _ shape: [Int]) throws -> [Float] {
        guard let t = tensors.removeValue(forKey: name) else { throw ModelError.missingTensor(name: name, file: file) }
        guard t.shape == shape || (t.count == shape.reduce(1, *) && shape.count == 1 && t.shape.count == 1) else {
            throw ModelError.shapeMismatch(name: name, file: file, expected: shape, found: t.shape)
        }
        return t.data
    }

    mutating func takeIfPresent(_ name: String, _ shape: [Int]) throws -> [Float]? {
        tensors[name] == nil ? nil : try take(name, shape)
    }

    mutating func linear(_ name: String, out: Int, in inDim: Int, bias: Bool) throws -> Linear {
        let w = try take(name, [out, inDim])
        let bName = Linear.biasName(for: name)
        let b = bias ? try take(bName, [out]) : try takeIfPresent(bName, [out])
        return Linear(name: name, outDim: out, inDim: inDim, weight: w, bias: b)
    }
}

extension Model {
    /// Builds the model from a checkpoint (consumes its tensors; no second copy).
    public static func build(from checkpoint: Checkpoint) throws -> Model {
        // Values first (every loader has already done this; checkpoints built in code have not),
        // then the config against the weights, so a contradiction names the config key.
        let c = checkpoint.config
        let source = checkpoint.configSource
            ?? ConfigSource.hf(file: checkpoint.path, family: c.family, explicitHeadDim: true)
        try c.validate(source: source)
        try c.checkWeights(checkpoint.tensors.mapValues(\.shape), source: source,
                           fileOf: checkpoint.file(of:), weights: checkpoint.weightFiles)
        let model = try c.definition.build(checkpoint)
        model.sourcePath = checkpoint.path
        model.contextOrigin = "\(source.file) key '\(source.key(.maxSeqLen))'"
        return model
    }
}
