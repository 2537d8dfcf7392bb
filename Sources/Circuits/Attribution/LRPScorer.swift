import Foundation
import Transformer

// MARK: - Scorers: what a method does per sample, and how its state is saved

/// A scoring method's streaming state. The runner feeds samples in order,
/// checkpoints `checkpointTensors()` (raw running sums, restored bit-exactly
/// by `restore`), and finally writes `finalTensors`.
protocol AttributionScorer: AnyObject {
    /// Processes one sample; returns its conservation ratio Σ input relevance / Σ explained when defined.
    func process(_ s: AttributionSample) throws -> Double?
    /// Raw running sums for a checkpoint.
    func checkpointTensors() -> [OutTensor]
    /// Restores the sums written by `checkpointTensors`.
    func restore(_ f: SafetensorsFile) throws
    /// The final score tensors after `samples` samples of `tokens` tokens in total.
    func finalTensors(samples: Int, tokens: Int) -> [OutTensor]
    /// The final score values in memory, the same numbers `finalTensors` writes; may consume the
    /// scorer's state (call once, last).
    func takeFinalTensors(samples: Int, tokens: Int) -> [(name: String, shape: [Int], values: [Float])]
}

extension AttributionScorer {
    func takeFinalTensors(samples: Int, tokens: Int) -> [(name: String, shape: [Int], values: [Float])] {
        finalTensors(samples: samples, tokens: tokens).map { ($0.name, $0.shape, $0.values()) }
    }
}

/// The methods `workbench attribute` offers.
public enum AttributionMethod: String, CaseIterable, Sendable {
    /// AttnLRP / CP-LRP weight relevance R_W = W ⊙ modified ∂y/∂W (SparC³ Eq. 8), averaged (Eq. 1).
    case lrp
    /// W ⊙ plain ∂y/∂W through the same pass (LRPRules.gradient).
    case gradient
    /// |W_ij| · ‖X_j‖₂ over all calibration tokens.
    case wanda
    /// |W|.
    case magnitude
    /// Mean |activation| per MLP neuron and per head (no per-weight tensors).
    case activation

    /// Whether the method backpropagates an explained output (so `--target`, `--seed-value`, `--abs-per-sample` apply).
    public var explains: Bool { self == .lrp || self == .gradient }
    /// Whether the method reads data at all.
    public var needsData: Bool { self != .magnitude }
}

// MARK: - lrp / gradient

/// Weight relevance through `Model.lrp`, summed per sample into a `RelevanceAccumulator`
/// (signed, or |·| per sample), written as the mean over samples.
final class LRPScorer: AttributionScorer {
    let model: Model
    let accumulator: RelevanceAccumulator
    let rules: LRPRules
    let seed: SeedValue
    let memoryBudget: Int

    init(model: Model, rules: LRPRules, seed: SeedValue, aggregation: RelevanceAccumulator.Aggregation, memoryBudget: Int) {
        self.model = model; self.rules = rules; self.seed = seed; self.memoryBudget = memoryBudget
        accumulator = RelevanceAccumulator(model: model, aggregation: aggregation)
    }

    func process(_ s: AttributionSample) throws -> Double? {
        let r = try model.lrp(tokens: s.tokens, explain: s.explain, seed: seed, rules: rules, sink: accumulator,
                              memoryBudget: memoryBudget)
        accumulator.finishSample()
        return r.explained != 0 ? r.inputTotal / r.explained : nil
    }

    /// Weights first (HF names), then neuron/head sums (ScoreNames); raw sums.
    func checkpointTensors() -> [OutTensor] {
        model.linears.map { OutTensor(name: $0.name, shape: [$0.outDim, $0.inDim], payload: .f32(accumulator.weights[$0.name] ?? [])) }
            + accumulator.units.keys.sorted().map { OutTensor(name: $0, shape: [accumulator.units[$0]?.count ?? 0],
                                                              payload: .f32(accumulator.units[$0] ?? [])) }
    }

    func restore(_ f: SafetensorsFile) throws {
        var w: [String: [Float]] = [:], u: [String: [Float]] = [:]
        for l in model.linears { w[l.name] = try f.checkpointF32(l.name, count: l.weight.count) }
        for (k, v) in accumulator.units { u[k] = try f.checkpointF32(k, count: v.count) }
        accumulator.restore(weights: w, units: u, samples: Int(f.metadata["samples_done"] ?? "") ?? 0)
    }

    /// Sum / samples, element by element, exactly as `RelevanceAccumulator.meanTensors()`.
    func finalTensors(samples: Int, tokens: Int) -> [OutTensor] {
        let k = Float(max(samples, 1))
        func mean(_ v: [Float]) -> OutTensor.Payload {
            .computed(count: v.count) { r, dst in v.withUnsafeBufferPointer { p in for i in r { dst[i - r.lowerBound] = p[i] / k } } }
        }
        return model.linears.map { OutTensor(name: $0.name, shape: [$0.outDim, $0.inDim], payload: mean(accumulator.weights[$0.name] ?? [])) }
            + accumulator.units.keys.sorted().map { OutTensor(name: $0, shape: [accumulator.units[$0]?.count ?? 0],
                                                              payload: mean(accumulator.units[$0] ?? [])) }
    }

    /// The same means as `finalTensors`, computed in the accumulator's own arrays (which it
    /// gives up): no second weight-sized copy while the pruner ranks them.
    func takeFinalTensors(samples: Int, tokens: Int) -> [(name: String, shape: [Int], values: [Float])] {
        let k = Float(max(samples, 1))
        var (weights, units) = accumulator.takeSums()
        func mean(_ v: inout [Float]) -> [Float] {
            v.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = p[i] / k } }
            return v
        }
        var out: [(name: String, shape: [Int], values: [Float])] = []
        for l in model.linears {
            var v = weights.removeValue(forKey: l.name) ?? []
            out.append((l.name, [l.outDim, l.inDim], mean(&v)))
        }
        for name in units.keys.sorted() {
            var v = units.removeValue(forKey: name) ?? []
            out.append((name, [v.count], mean(&v)))
        }
        return out
    }
}
