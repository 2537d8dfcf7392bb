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
    /// The running sums, handed over (the scorer is done with them), in `checkpointTensors` order.
    func takeSums() -> [(name: String, values: [Double])]
    /// Restores the sums written by `checkpointTensors` (from a checkpoint, or added up from shard
    /// parts) after `samplesDone` samples.
    func restore(_ sums: SumSource, samplesDone: Int) throws
    /// The final score tensors after `samples` samples of `tokens` tokens in total.
    func finalTensors(samples: Int, tokens: Int) -> [OutTensor]
    /// The final score values in memory, the same numbers `finalTensors` writes; may consume the
    /// scorer's state (call once, last).
    func takeFinalTensors(samples: Int, tokens: Int) -> [(name: String, shape: [Int], values: [Float])]
}

extension AttributionScorer {
    func takeSums() -> [(name: String, values: [Double])] {
        checkpointTensors().map { t in
            guard case .f64(let v) = t.payload else { preconditionFailure("\(t.name): checkpoint sums are F64") }
            return (t.name, v)
        }
    }

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

    /// The linears whose weight relevance is kept (none with `unitsOnly`).
    let weightLinears: [Linear]

    init(model: Model, rules: LRPRules, seed: SeedValue, aggregation: RelevanceAccumulator.Aggregation, memoryBudget: Int,
         unitsOnly: Bool = false) {
        self.model = model; self.rules = rules; self.seed = seed; self.memoryBudget = memoryBudget
        accumulator = RelevanceAccumulator(model: model, aggregation: aggregation, weights: !unitsOnly)
        weightLinears = unitsOnly ? [] : model.linears
    }

    func process(_ s: AttributionSample) throws -> Double? {
        let r = try model.lrp(tokens: s.tokens, explain: s.explain, seed: seed, rules: rules, sink: accumulator,
                              memoryBudget: memoryBudget)
        accumulator.finishSample()
        return r.explained != 0 ? r.inputTotal / r.explained : nil
    }

    /// Weights first (HF names), then neuron/head sums (ScoreNames); raw F64 sums.
    func checkpointTensors() -> [OutTensor] {
        let a = accumulator
        return weightLinears.map { OutTensor(name: $0.name, shape: [$0.outDim, $0.inDim], payload: .f64(a.weightSums[$0.name] ?? [])) }
            + a.unitSums.keys.sorted().map { OutTensor(name: $0, shape: [a.unitSums[$0]?.count ?? 0], payload: .f64(a.unitSums[$0] ?? [])) }
    }

    /// Without a second copy of the weight-sized sums (the accumulator gives them up).
    func takeSums() -> [(name: String, values: [Double])] {
        let taken = accumulator.takeSums()
        var w = taken.weights, u = taken.units
        defer { u = [:] }
        return weightLinears.map { ($0.name, w.removeValue(forKey: $0.name) ?? []) } + u.keys.sorted().map { ($0, u[$0]!) }
    }

    func restore(_ sums: SumSource, samplesDone: Int) throws {
        var w: [String: [Double]] = [:], u: [String: [Double]] = [:]
        for l in weightLinears { w[l.name] = try sums.sums(l.name, count: l.weight.count) }
        for (k, v) in accumulator.unitSums { u[k] = try sums.sums(k, count: v.count) }
        accumulator.restore(weights: w, units: u, samples: samplesDone)
    }

    /// Sum / samples, element by element, exactly as `RelevanceAccumulator.meanTensors()`.
    func finalTensors(samples: Int, tokens: Int) -> [OutTensor] {
        let a = accumulator
        func mean(_ v: [Double]) -> OutTensor.Payload {
            .computed(count: v.count) { r, dst in
                v.withUnsafeBufferPointer { p in for i in r { dst[i - r.lowerBound] = RelevanceAccumulator.mean(p[i], samples: samples) } }
            }
        }
        return weightLinears.map { OutTensor(name: $0.name, shape: [$0.outDim, $0.inDim], payload: mean(a.weightSums[$0.name] ?? [])) }
            + a.unitSums.keys.sorted().map { OutTensor(name: $0, shape: [a.unitSums[$0]?.count ?? 0], payload: mean(a.unitSums[$0] ?? [])) }
    }

    /// The same means as `finalTensors`, made one tensor at a time from the accumulator's sums
    /// (which it gives up; each is dropped once narrowed, so the F32 means never sit beside all the F64 sums).
    func takeFinalTensors(samples: Int, tokens: Int) -> [(name: String, shape: [Int], values: [Float])] {
        var (weights, units) = accumulator.takeSums()
        func mean(_ v: [Double]) -> [Float] { v.map { RelevanceAccumulator.mean($0, samples: samples) } }
        var out: [(name: String, shape: [Int], values: [Float])] = []
        for l in weightLinears {
            let v = weights.removeValue(forKey: l.name) ?? []
            out.append((l.name, [l.outDim, l.inDim], mean(v)))
        }
        for name in units.keys.sorted() {
            let v = units.removeValue(forKey: name) ?? []
            out.append((name, [v.count], mean(v)))
        }
        return out
    }
}
