import Foundation
import Transformer

// MARK: - Score maps
//
// A score map is what pruning ranks: per-weight scores keyed by HF weight
// names with the weight's shape, plus optional per-unit scores
// (`ScoreNames.neurons` [dFF], `ScoreNames.heads` [nHeads]). It comes from a
// `relevance.safetensors` written by `workbench attribute`, or is computed on
// the fly (magnitude here; Wanda/gradient/LRP through the attribution API).

public struct ScoreMap {
    public var tensors: [String: Tensor]
    /// Where the scores came from: a file path, or e.g. "magnitude (computed)".
    public var source: String
    /// The score file's `__metadata__` (method, prompts hash, …), empty when computed.
    public var metadata: [String: String]
    /// For a file: whether its data checksum was verified, or it has none (older files); nil when computed.
    public var dataChecksum: SafetensorsFile.ChecksumStatus? = nil

    public init(tensors: [String: Tensor], source: String, metadata: [String: String] = [:]) {
        self.tensors = tensors; self.source = source; self.metadata = metadata
    }

    /// Reads every floating-point tensor of a score file (F32/F16/BF16/F64 widened to F32).
    /// A file with a data checksum (`Safetensors.dataChecksumKey`, written by `attribute`) whose
    /// data does not match it is refused.
    public static func load(path: String) throws -> ScoreMap {
        let st = try SafetensorsFile(path: path)
        var t: [String: Tensor] = [:]
        let status = try st.readVerifyingChecksum { t[$0] = try st.tensor($0) }
        var map = ScoreMap(tensors: t, source: path, metadata: st.metadata)
        map.dataChecksum = status
        return map
    }

    /// Magnitude scores |W| for every decoder linear weight (Han et al.; Wanda's `prune_magnitude`).
    public static func magnitude(_ model: Model, only names: Set<String>? = nil) -> ScoreMap {
        var t: [String: Tensor] = [:]
        for l in model.linears where names?.contains(l.name) ?? true {
            t[l.name] = Tensor(shape: [l.outDim, l.inDim], data: l.weight.map { Swift.abs($0) })
        }
        return ScoreMap(tensors: t, source: "magnitude (|W|, computed)", metadata: ["method": "magnitude"])
    }

    /// The prompts hash recorded by the score writer, under whichever key it used.
    public var promptsHash: String? {
        for k in ["prompts_sha256", "prompts_hash", "prompt_sha256", "prompts.sha256", "data_sha256"] {
            if let v = metadata[k] { return v }
        }
        return metadata.first { $0.key.contains("sha256") || $0.key.contains("hash") }?.value
    }

    // MARK: - Validation against a model

    /// Every parameter-like tensor must be a parameter or unit of `model` with the model's shape,
    /// and free of NaN.
    /// Catches a score file written for another model before anything is pruned.
    public func validate(against model: Model) throws {
        var shapes: [String: [Int]] = [:]
        for (name, t) in model.namedTensors() { shapes[name] = t.shape }
        for b in model.blocks {
            shapes[ScoreNames.neurons(model, layer: b.index)] = [model.config.dFF]
            shapes[ScoreNames.heads(model, layer: b.index)] = [model.config.nHeads]
        }
        for name in tensors.keys.sorted() {
            guard let t = tensors[name] else { continue }
            guard let expected = shapes[name] else {
                // Auxiliary tensors a score writer may add are ignored; a parameter-like name
                // the model lacks means the file was written for another model.
                if model.config.family.names.isParameterLike(name) {
                    throw PruneError.unknownScoreTensor(tensor: name, file: source)
                }
                continue
            }
            guard t.shape == expected else {
                throw PruneError.scoreShapeMismatch(tensor: name, file: source, expected: expected, found: t.shape)
            }
            if let i = t.data.firstIndex(where: { $0.isNaN }) {
                throw PruneError.nonFiniteScore(tensor: name, file: source, index: i)
            }
        }
    }

    /// Scores of one weight matrix [out·in], or a typed error naming it.
    public func weightScores(_ linear: Linear) throws -> [Float] {
        guard let t = tensors[linear.name] else { throw PruneError.missingScore(tensor: linear.name, file: source) }
        guard t.shape == [linear.outDim, linear.inDim] else {
            throw PruneError.scoreShapeMismatch(tensor: linear.name, file: source, expected: [linear.outDim, linear.inDim], found: t.shape)
        }
        return t.data
    }
}

// MARK: - Unit scores (neurons, heads)

/// Where a unit ranking's scores came from (recorded in pruning.json).
public enum UnitScoreSource: String, Codable, Sendable {
    case file = "unit tensors from the score file"
    case aggregated = "aggregated from per-weight scores"
}

extension ScoreMap {
    /// Neuron scores of one block [dFF]: the file's `ScoreNames.neurons` tensor, else the
    /// aggregate  s_j = Σ_i S_gate[j,i] + Σ_i S_up[j,i] + Σ_k S_down[k,j]  (Llama) or
    /// s_j = Σ_i S_fc1[j,i] + Σ_k S_fc2[k,j]  (OPT): the signed sum of every weight score that
    /// flows into or out of neuron j (biases have no per-weight score). The rank mode is then
    /// applied to s_j. For LRP relevance the down/fc2 column sum alone already equals the
    /// neuron's relevance (conservation); adding the input rows keeps the definition uniform
    /// for magnitude/Wanda scores, where the input rows carry the information.
    public func neuronScores(_ model: Model, block b: Block, source: UnitScoreSource) throws -> [Float] {
        let name = ScoreNames.neurons(model, layer: b.index)
        if source == .file {
            guard let t = tensors[name] else { throw PruneError.missingScore(tensor: name, file: self.source) }
            return t.data
        }
        let dFF = model.config.dFF
        var s = [Double](repeating: 0, count: dFF)
        for l in [b.gate, b.up].compactMap({ $0 }) {
            let w = try weightScores(l)
            for j in 0..<dFF { s[j] += rowSum(w, row: j, cols: l.inDim) }
        }
        let down = try weightScores(b.down)
        for k in 0..<b.down.outDim {
            for j in 0..<dFF { s[j] += Double(down[k * dFF + j]) }
        }
        return s.map { Float($0) }
    }

    /// Head scores of one block [nHeads]: the file's `ScoreNames.heads` tensor, else the signed sum
    /// of the o_proj/out_proj scores over the head's input columns  s_h = Σ_k Σ_{c ∈ head h} S_o[k,c].
    public func headScores(_ model: Model, block b: Block, source: UnitScoreSource) throws -> [Float] {
        let name = ScoreNames.heads(model, layer: b.index)
        if source == .file {
            guard let t = tensors[name] else { throw PruneError.missingScore(tensor: name, file: self.source) }
            return t.data
        }
        let c = model.config, o = try weightScores(b.o)
        var s = [Double](repeating: 0, count: c.nHeads)
        for k in 0..<b.o.outDim {
            for h in 0..<c.nHeads {
                s[h] += rowSum(o, row: k, cols: b.o.inDim, from: h * c.headDim, count: c.headDim)
            }
        }
        return s.map { Float($0) }
    }

    /// Whether unit scores come from the file: all selected blocks have the unit tensor, or none does.
    func unitSource(_ names: [String]) throws -> UnitScoreSource {
        let present = names.filter { tensors[$0] != nil }
        if present.isEmpty { return .aggregated }
        if let missing = names.first(where: { tensors[$0] == nil }) {
            throw PruneError.mixedUnitScores(missing: missing, file: source)
        }
        return .file
    }

    private func rowSum(_ w: [Float], row: Int, cols: Int, from: Int = 0, count: Int? = nil) -> Double {
        var acc = 0.0
        let base = row * cols + from
        for i in 0..<(count ?? cols) { acc += Double(w[base + i]) }
        return acc
    }
}
