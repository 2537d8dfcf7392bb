import Foundation
import Transformer

// Relevance-guided mixed precision (issue 16; Soroush, Raji, Ghavami, "Compressing deep neural
// networks using explainable AI", brought to decoder LLMs): GGUF types are per tensor, so each
// 2-D weight tensor gets one type from `types` such that the total importance-weighted squared
// quantisation error Σ_t Σ_i imp_i·(w_i − ŵ_i)² is small under an average bits-per-weight budget.
//
// Allocation (greedy on the error/bits trade-off): every tensor starts at the cheapest type; then,
// repeatedly, the upgrade (tensor, higher type) with the largest error reduction per extra bit that
// still fits the budget is taken, until none fits. Bits are exact storage bits, block scales included
// (Q4_0 4.5, Q4_1 5.0, Q8_0 8.5, F16 16, F32 32 per weight), over the quantised (2-D) tensors;
// norms and biases stay F32 and are reported apart. The budget is never exceeded; the achieved
// value is reported.
//
// Importance: |relevance| per weight from a score file (HF names and layout; q/k rows permuted
// like the weights), |W| (magnitude) or 1 (plain). A tensor the score file does not cover (token
// embedding, lm_head: attribution scores decoder weights) is weighted by its |W| — the importance
// that needs no calibration — scaled so that its mean equals the covered weights' mean |score|:
// its block scales follow |W| within the tensor, and the allocation weighs its error as that of an
// average covered tensor. (It used to get the uniform mean alone: the least-squares search with
// equal weights then lost to ggml's min/max scales on SmolLM2's tied embedding, and LRP and Wanda
// files came out worse than plain importance at 5.0 bpw — docs/results/quantize.md.) The report
// names those tensors (`unscoredTensors`); the command warns once.

// Errors: QuantizationError (shared with the fault injector).

public enum QuantizeImportance: Equatable, Sendable {
    case plain, magnitude
    case scores(ScoreMapBox)
    public var label: String {
        switch self { case .plain: return "plain"; case .magnitude: return "magnitude"; case .scores(let s): return "scores (\(s.map.metadata["method"] ?? "file"))" }
    }
}

/// Reference wrapper so the enum stays Equatable without comparing tensors.
public final class ScoreMapBox: Equatable, @unchecked Sendable {
    public let map: ScoreMap
    public init(_ map: ScoreMap) { self.map = map }
    public static func == (a: ScoreMapBox, b: ScoreMapBox) -> Bool { a === b }
}

public struct QuantizeSettings {
    public var bitsPerWeight: Double
    public var types: [GGMLType]
    public var importance: QuantizeImportance
    /// Importance-weighted block scales (else ggml's plain reference scales).
    public var weightedRounding: Bool
    /// Set every weight whose signed score is ≤ 0 to zero before quantising (the seed paper's first step; needs `.scores`).
    public var pruneNonPositive: Bool
    public init(bitsPerWeight: Double, types: [GGMLType], importance: QuantizeImportance, weightedRounding: Bool, pruneNonPositive: Bool = false) {
        self.bitsPerWeight = bitsPerWeight; self.types = types; self.importance = importance; self.weightedRounding = weightedRounding
        self.pruneNonPositive = pruneNonPositive
    }
}

public struct QuantizedTensorChoice: Codable {
    public var name: String
    public var type: String
    public var count: Int
    /// Σ importance·error² for each candidate type name.
    public var errors: [String: Double]
}

public struct QuantizeReport: Codable {
    public var budget: Double
    public var achievedBitsPerWeight: Double
    public var quantizedWeights: Int
    public var otherF32Weights: Int
    public var importance: String
    public var weightedRounding: Bool
    public var typeCounts: [String: Int]
    public var fileBytes: Int
    /// Weights set to zero by --prune-nonpositive (signed score ≤ 0), and their share of the weights the score file covers.
    public var prunedWeights: Int = 0
    public var prunedFraction: Double = 0
    /// Quantised tensors the score file has no scores for (HF names), weighted by their scaled |W| instead.
    public var unscoredTensors: [String] = []
    public var tensors: [QuantizedTensorChoice]
}

public enum MixedPrecisionQuantizer {
    /// Whether a type's block scales are searched with the importance (else ggml's plain reference scales). Q8_0 is not:
    /// on SmolLM2 the search lowered Q8_0's |W|-weighted error by 29 % but not perplexity (all-Q8_0, 4 WikiText-2 windows:
    /// 29.9911 searched vs 29.9586 plain), and it was about a third of quantize's CPU time. Q4_0 and Q4_1 are searched.
    public static func searched(_ t: GGMLType) -> Bool { t == .q4_0 || t == .q4_1 }

    /// Greedy allocation: `errors[t][k]` for tensor t and type k, `counts[t]` weights, `bits[k]` per weight.
    /// Returns a type index per tensor with Σ counts·bits ≤ budget·Σ counts.
    public static func allocate(errors: [[Double]], counts: [Int], bits: [Double], budget: Double) -> [Int] {
        let cheapest = bits.indices.min { bits[$0] < bits[$1] }!
        var choice = [Int](repeating: cheapest, count: counts.count)
        let total = Double(counts.reduce(0, +))
        var used = total * bits[cheapest]
        let limit = budget * total
        while true {
            var best: (t: Int, k: Int, gain: Double)? = nil
            for t in counts.indices {
                for k in bits.indices where bits[k] > bits[choice[t]] {
                    let extra = Double(counts[t]) * (bits[k] - bits[choice[t]])
                    guard used + extra <= limit else { continue }
                    let gain = (errors[t][choice[t]] - errors[t][k]) / extra
                    if gain > 0, gain > (best?.gain ?? 0) { best = (t, k, gain) }
                }
            }
            guard let b = best else { break }
            used += Double(counts[b.t]) * (bits[b.k] - bits[choice[b.t]])
            choice[b.t] = b.k
        }
        return choice
    }

    /// Quantises `ck` (a Llama checkpoint) under `settings` and writes a GGUF v3 file to `out`
    /// (atomically). `carry` are metadata items copied after the `llama.*` keys (the tokenizer of a
    /// GGUF source). Progress goes to `progress`.
    public static func run(_ ck: Checkpoint, settings s: QuantizeSettings, carry: [GGUFMetadataItem], out: String,
                           progress: (_ done: Int, _ total: Int, _ weights: Int) -> Void = { _, _, _ in }) throws -> QuantizeReport {
        let bits = s.types.map(GGMLBlockCodec.bitsPerWeight)
        guard let lo = bits.min(), let hi = bits.max(), s.bitsPerWeight >= lo, s.bitsPerWeight <= hi else {
            throw QuantizationError.budgetOutOfRange(bits: s.bitsPerWeight, min: bits.min() ?? 0, max: bits.max() ?? 0)
        }
        var tensors = try GGUFLlamaExport.tensors(ck)
        if s.pruneNonPositive { guard case .scores = s.importance else { throw QuantizationError.pruneNeedsScores } }
        // --prune-nonpositive: every weight the score file covers whose signed relevance is ≤ 0 (it does not help the
        // explained outputs) is set to 0 first, in every 2-D tensor the file covers (quantised or kept F32).
        var pruned = 0, scored = 0
        if s.pruneNonPositive, case .scores(let box) = s.importance {
            for i in tensors.indices where tensors[i].dims.count == 2 {
                guard var t = box.map.tensors[tensors[i].hf] else { continue }
                let shape = Array(tensors[i].dims.reversed())
                guard t.shape == shape else { throw QuantizationError.scoreShape(file: box.map.source, tensor: tensors[i].hf, expected: shape, found: t.shape) }
                if let h = tensors[i].ropeHeads { t = rotateHalfToInterleaved(t, heads: h) }
                for k in t.data.indices where t.data[k] <= 0 { tensors[i].values[k] = 0; pruned += 1 }
                scored += t.count
            }
        }
        let eligible = tensors.indices.filter { tensors[$0].dims.count == 2 && tensors[$0].dims[0] % 32 == 0 }

        // Importance per eligible tensor (GGUF row order).
        var importance = [Int: [Float]]()
        var unscored: [String] = []
        switch s.importance {
        case .plain: break
        case .magnitude: break          // |W|, made chunk by chunk by the codec (no whole-model copy of |W|)
        case .scores(let box):
            (importance, unscored) = try scoreImportance(box.map, tensors: tensors, eligible: eligible)
        }

        // Error of every candidate type for every eligible tensor.
        // The encodings are kept (≈ 4.2 bytes per weight for the four default types): the chosen one is
        // written as is instead of being searched again.
        var errors = [[Double]](), encodings = [[[UInt8]]](), weights = 0
        for (j, i) in eligible.enumerated() {
            let x = tensors[i].values, w = importance[i]
            // Each encoding measures its own weighted error block by block (no decoded copy of the tensor).
            let magnitude = s.importance == .magnitude
            let enc = s.types.map {
                GGMLBlockCodec.encodeMeasured(x, type: $0, importance: w, magnitude: magnitude,
                                              search: s.weightedRounding && (w != nil || magnitude) && searched($0))
            }
            errors.append(enc.map(\.error))
            encodings.append(enc.map(\.bytes))
            weights += x.count
            progress(j + 1, eligible.count, weights)
        }
        let counts = eligible.map { tensors[$0].values.count }
        let choice = allocate(errors: errors, counts: counts, bits: bits, budget: s.bitsPerWeight)

        var records = [GGUFTensorRecord](), report = [QuantizedTensorChoice](), typeCounts = [String: Int]()
        var usedBits = 0.0, other = 0
        let pick = Dictionary(uniqueKeysWithValues: zip(eligible, choice))
        for (i, t) in tensors.enumerated() {
            let type = pick[i].map { s.types[$0] } ?? .f32
            let e = eligible.firstIndex(of: i)
            let data = e.flatMap { e in pick[i].map { encodings[e][$0] } } ?? GGMLBlockCodec.encode(t.values, type: type)
            records.append(GGUFTensorRecord(name: t.name, dims: t.dims, type: type, data: data))
            if let k = pick[i], let e {
                usedBits += Double(t.values.count) * bits[k]
                typeCounts[type.name, default: 0] += 1
                report.append(QuantizedTensorChoice(name: t.name, type: type.name, count: t.values.count,
                                                    errors: Dictionary(uniqueKeysWithValues: zip(s.types.map(\.name), errors[e]))))
            } else { other += t.values.count }
        }
        let name = URL(fileURLWithPath: ck.path).deletingPathExtension().lastPathComponent
        var meta = GGUFLlamaExport.metadata(ck.config, name: name)
        let own = Set(meta.map(\.key))
        meta += carry.filter { !own.contains($0.key) && $0.key != "general.alignment" }
        meta.append(GGUFMetadataItem("workbench.quantize.bits_per_weight", .float(usedBits / Double(counts.reduce(0, +))), as: .f32))
        meta.append(GGUFMetadataItem("workbench.quantize.importance", .string(s.importance.label), as: .string))
        try GGUFWriter.write(to: out, metadata: meta, tensors: records)
        let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        var result = QuantizeReport(budget: s.bitsPerWeight, achievedBitsPerWeight: usedBits / Double(counts.reduce(0, +)),
                              quantizedWeights: counts.reduce(0, +), otherF32Weights: other, importance: s.importance.label,
                              weightedRounding: s.weightedRounding && (!importance.isEmpty || s.importance == .magnitude), typeCounts: typeCounts, fileBytes: size, tensors: report)
        result.prunedWeights = pruned
        result.prunedFraction = Double(pruned) / Double(max(scored, 1))
        result.unscoredTensors = unscored
        return result
    }

    /// |score| per weight of the eligible tensors the score file covers (GGUF row order); each tensor it does not cover
    /// gets |W| · (mean covered |score|) / (mean |W| of that tensor) — uniform at that mean if the tensor is all zeros —
    /// and is named in the second result. Shapes are checked; a file covering nothing is an error.
    static func scoreImportance(_ map: ScoreMap, tensors: [GGUFLlamaTensor], eligible: [Int]) throws -> ([Int: [Float]], [String]) {
        var importance = [Int: [Float]]()
        var sum = 0.0, n = 0
        for i in eligible {
            guard var t = map.tensors[tensors[i].hf] else { continue }
            let shape = Array(tensors[i].dims.reversed())
            guard t.shape == shape else { throw QuantizationError.scoreShape(file: map.source, tensor: tensors[i].hf, expected: shape, found: t.shape) }
            if let h = tensors[i].ropeHeads { t = rotateHalfToInterleaved(t, heads: h) }
            let a = t.data.map { abs($0) }
            for v in a { sum += Double(v) }; n += a.count
            importance[i] = a
        }
        guard n > 0 else { throw QuantizationError.noScoresForModel(file: map.source) }
        let mean = sum / Double(n)
        var unscored: [String] = []
        for i in eligible where importance[i] == nil {
            let x = tensors[i].values
            let meanAbs = x.reduce(0.0) { $0 + Double(abs($1)) } / Double(max(x.count, 1))
            if meanAbs > 0 {
                let c = Float(mean / meanAbs)
                importance[i] = x.map { abs($0) * c }
            } else {
                importance[i] = [Float](repeating: Float(mean), count: x.count)
            }
            unscored.append(tensors[i].hf)
        }
        return (importance, unscored)
    }
}
