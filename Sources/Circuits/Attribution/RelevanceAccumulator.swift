import Foundation
import Transformer

// MARK: - Streaming relevance accumulation
//
// Memory does not grow with the number of samples: one F64 accumulator per
// decoder linear weight (twice the size of the model's F32 linear weights), plus
// one per MLP neuron and attention head. Each sample's δW is turned into the F32
// R_W = W ⊙ δW (or |W ⊙ δW| with `absPerSample`, as PXP does) and added in F64
// immediately. F64 sums of F32 terms are exact while a weight's terms and running sum
// span less than 2^29 in magnitude (otherwise off by 2^-53 relative), and a sum split over
// shards and added back (Distributed/ShardMerger) is then the same number a sequential run has.

/// Names of the non-weight score tensors, namespaced by the HF module they belong to.
public enum ScoreNames {
    /// MLP intermediate neurons of layer l: Llama `model.layers.l.mlp.neurons`, OPT `model.decoder.layers.l.fc1.neurons`
    /// (the family file's `FamilyNames.neurons`).
    public static func neurons(_ model: Model, layer l: Int) -> String { model.config.family.names.neurons(l) }
    /// Attention heads of layer l: `….self_attn.heads`.
    public static func heads(_ model: Model, layer l: Int) -> String { model.config.family.names.heads(l) }
}

public final class RelevanceAccumulator: RelevanceSink {
    /// How per-sample relevance is aggregated before the mean over samples.
    public enum Aggregation: String, Sendable {
        /// Signed R_W = W ⊙ δW (positions summed with sign; SparC³ Eq. 1/8).
        case signed
        /// |W ⊙ δW| per sample (PXP's abs_flag).
        case absPerSample = "abs-per-sample"
        /// Σ_t |W ⊙ x_t δ_tᵀ| = |W| ⊙ Σ_t |δ_t||x_t|ᵀ: no cancellation between positions
        /// (one extra GEMM per linear in the backward).
        case absPerToken = "abs-per-token"
    }
    public let aggregation: Aggregation
    public var absPerSample: Bool { aggregation == .absPerSample }
    public var wantsAbsPerToken: Bool { aggregation == .absPerToken }
    /// Per-token absolute aggregation never reads the signed δW.
    public var wantsSignedGradient: Bool { aggregation != .absPerToken }
    /// False for a units-only accumulator: no weight sums, no δW in the backward.
    public let wantsWeightRelevance: Bool
    /// Σ over samples of R_W per HF weight name [out·in], in F64.
    public private(set) var weightSums: [String: [Double]] = [:]
    /// Σ over samples of neuron / head relevance, keyed by `ScoreNames`, in F64.
    public private(set) var unitSums: [String: [Double]] = [:]
    /// The sums narrowed to F32 (a copy; for inspection and tests).
    public var weights: [String: [Float]] { weightSums.mapValues { $0.map { Float($0) } } }
    public var units: [String: [Float]] { unitSums.mapValues { $0.map { Float($0) } } }
    public internal(set) var samples = 0
    let model: Model

    public convenience init(model: Model, absPerSample: Bool = false) {
        self.init(model: model, aggregation: absPerSample ? .absPerSample : .signed)
    }

    /// `weights: false` keeps only the neuron and head sums (heads/neurons circuits need nothing else).
    public init(model: Model, aggregation: Aggregation, weights: Bool = true) {
        self.model = model
        self.aggregation = aggregation
        wantsWeightRelevance = weights
        if weights { for l in model.linears { weightSums[l.name] = [Double](repeating: 0, count: l.weight.count) } }
        for b in model.blocks {
            unitSums[ScoreNames.neurons(model, layer: b.index)] = [Double](repeating: 0, count: model.config.dFF)
            unitSums[ScoreNames.heads(model, layer: b.index)] = [Double](repeating: 0, count: model.config.nHeads)
        }
    }

    /// Restores accumulated sums (for `--resume` and merging shards).
    public func restore(weights w: [String: [Double]], units u: [String: [Double]], samples n: Int) {
        for (k, v) in w where weightSums[k]?.count == v.count { weightSums[k] = v }
        for (k, v) in u where unitSums[k]?.count == v.count { unitSums[k] = v }
        samples = n
    }

    public func weightAbsGradient(_ linear: Linear, _ g: UnsafePointer<Float>) {
        let n = linear.weight.count
        linear.weight.withUnsafeBufferPointer { w in
            weightSums[linear.name]!.withUnsafeMutableBufferPointer { acc in
                let a = acc.baseAddress!, wp = w.baseAddress!
                parallelRows(2, work: n) { part in
                    for i in (n * part.lowerBound / 2)..<(n * part.upperBound / 2) { a[i] += Double(Swift.abs(wp[i]) * g[i]) }
                }
            }
        }
    }

    public func weightGradient(_ linear: Linear, _ dW: UnsafePointer<Float>) {
        if aggregation == .absPerToken { return }                     // weightAbsGradient carries it
        let n = linear.weight.count, abs = absPerSample
        linear.weight.withUnsafeBufferPointer { w in
            weightSums[linear.name]!.withUnsafeMutableBufferPointer { acc in
                let a = acc.baseAddress!, wp = w.baseAddress!
                parallelRows(2, work: n) { part in
                    let lo = n * part.lowerBound / 2, hi = n * part.upperBound / 2
                    // The term is the F32 product (the same term as when the sums were F32); only the sum is wider.
                    if abs { for i in lo..<hi { a[i] += Double(Swift.abs(wp[i] * dW[i])) } }
                    else { for i in lo..<hi { a[i] += Double(wp[i] * dW[i]) } }
                }
            }
        }
    }

    public func neurons(layer: Int, _ r: [Float]) { add(ScoreNames.neurons(model, layer: layer), r) }
    public func heads(layer: Int, _ r: [Float]) { add(ScoreNames.heads(model, layer: layer), r) }

    func add(_ key: String, _ r: [Float]) {
        let abs = absPerSample
        unitSums[key]!.withUnsafeMutableBufferPointer { acc in
            for i in r.indices { acc[i] += Double(abs ? Swift.abs(r[i]) : r[i]) }
        }
    }

    /// Hands over the running sums, leaving the accumulator empty (so a caller can turn them
    /// into means one tensor at a time instead of holding a second full set).
    func takeSums() -> (weights: [String: [Double]], units: [String: [Double]]) {
        defer { weightSums = [:]; unitSums = [:] }
        return (weightSums, unitSums)
    }

    /// Marks one sample done (callers call this after each `lrp` pass).
    public func finishSample() { samples += 1 }

    /// The F32 mean of an F64 sum over `samples` samples (the one rounding of every written score).
    static func mean(_ sum: Double, samples: Int) -> Float { Float(sum / Double(max(samples, 1))) }

    /// Mean over samples (SparC³ Eq. 1) as named tensors with HF shapes.
    public func meanTensors() -> [(String, Tensor)] {
        let k = samples
        var out: [(String, Tensor)] = []
        for l in model.linears where wantsWeightRelevance {
            out.append((l.name, Tensor(shape: [l.outDim, l.inDim], data: weightSums[l.name]!.map { Self.mean($0, samples: k) })))
        }
        for (name, v) in unitSums.sorted(by: { $0.key < $1.key }) {
            out.append((name, Tensor(shape: [v.count], data: v.map { Self.mean($0, samples: k) })))
        }
        return out
    }
}
