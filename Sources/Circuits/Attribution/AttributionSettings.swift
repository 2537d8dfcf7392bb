import Foundation
import Transformer

// MARK: - Settings, provenance and the resume fingerprint

/// Everything that determines a relevance file's tensors, plus where its inputs came from.
public struct AttributionSettings: Equatable, Sendable {
    public enum DataKind: String, Sendable { case prompts, corpus, none }

    public var method: AttributionMethod = .lrp
    /// Rules for `.lrp` (attnLRP / cpLRP, ε). `.gradient` always uses `LRPRules.gradient`.
    public var rules: LRPRules = .attnLRP
    public var target: TargetMode = .auto
    public var seedValue: SeedValue = .logit
    public var absPerSample = false
    /// Σ_t |R_t| per weight (no cancellation between positions); exclusive with `absPerSample`.
    public var absPerToken = false
    /// lrp/gradient: keep only neuron and head relevance (no per-weight tensors; skips every δW GEMM).
    /// In memory only (`circuit` at head/neuron granularity); a run that writes files keeps the weights.
    public var unitsOnly = false
    /// Greedy continuation length for `--target continuation` prompts without one.
    public var maxNewTokens = 20
    /// Bytes of stored activations the LRP pass may keep (does not change results).
    public var memoryBudget = Model.defaultLRPMemoryBudget

    public var modelPath = ""
    public var modelSHA256 = ""
    public var modelFiles: [String] = []
    public var dataKind: DataKind = .none
    public var dataPath = ""
    public var dataSHA256 = ""
    /// Corpus windows: tokens per window and the sampling seed.
    public var seqlen: Int? = nil
    public var corpusSeed: UInt64? = nil
    /// Number of samples the run draws (all shards together).
    public var samples = 0
    /// The part of the samples this run takes (`--shard K/N`, an MPI rank); nil = all.
    public var shard: Shard? = nil

    public init() {}

    /// The accumulator mode these settings ask for.
    public var aggregationMode: RelevanceAccumulator.Aggregation {
        absPerToken ? .absPerToken : absPerSample ? .absPerSample : .signed
    }

    /// The rules actually used by the pass.
    public var effectiveRules: LRPRules { method == .gradient ? .gradient : rules }

    /// Fields that must agree for `--resume`, in the order they are checked.
    public var fingerprintFields: [(key: String, value: String)] {
        let na = "n/a", ex = method.explains
        return [
            ("model_sha256", modelSHA256),
            ("prompts_sha256", method.needsData ? dataSHA256 : na),
            ("method", method.rawValue),
            ("rule", method == .lrp ? rules.variant.rawValue : method == .gradient ? "gradient" : na),
            ("epsilon", method == .lrp ? "\(rules.epsilon)" : na),
            ("target", ex ? target.description : na),
            ("seed_value", ex ? seedValue.rawValue : na),
            ("abs_per_sample", ex ? String(absPerSample) : na),
            ("abs_per_token", ex ? String(absPerToken) : na),
            ("seqlen", dataKind == .corpus ? "\(seqlen ?? 0)" : dataKind == .prompts ? "per-prompt" : na),
            ("samples", "\(samples)"),
            ("seed", dataKind == .corpus ? "\(corpusSeed ?? 0)" : na),
            ("max_new_tokens", ex && target == .continuation ? "\(maxNewTokens)" : na),
        ] + (shard.map { [("shard", $0.description)] } ?? []) + (unitsOnly && ex ? [("units_only", "true")] : [])
    }

    /// sha256 over the canonical "key=value\n" lines of `fingerprintFields`.
    public var fingerprint: String { Self.fingerprint(fingerprintFields) }

    /// sha256 over the canonical "key=value\n" lines of `fields` (a merge recomputes the unsharded one).
    static func fingerprint(_ fields: [(key: String, value: String)]) -> String {
        SHA256.hex(Array(fields.map { "\($0.key)=\($0.value)\n" }.joined().utf8))
    }

    /// How the stored numbers were aggregated (for the file's metadata).
    public var aggregation: String {
        switch method {
        case .lrp, .gradient:
            return "R_W = W ⊙ \(method == .lrp ? "modified" : "plain") ∂y/∂W summed over positions"
                + (absPerSample ? ", |·| per sample" : "") + (absPerToken ? ", |·| per position (|W| ⊙ Σ_t |δ_t||x_t|ᵀ)" : "")
                + ", mean over samples (SparC³ Eq. 1)"
        case .wanda: return "|W_ij| · ‖X_j‖₂ over all calibration tokens (dense-model activations)"
        case .magnitude: return "|W_ij|"
        case .activation: return "mean |activation| over all tokens: neurons = MLP post activation, heads = mean |z| over head dims"
        }
    }

    /// What a file holds: the scores, a resumable checkpoint, or a finished shard's sums.
    enum FileKind { case final, checkpoint, part }

    /// Metadata of the final file, a checkpoint or a shard part.
    func metadata(samplesDone: Int, tokens: Int, conservationSum: Double, conservationCount: Int, kind: FileKind) -> [String: String] {
        var m: [String: String] = [:]
        for (k, v) in fingerprintFields { m[k] = v }
        switch kind {
        case .final: m["format"] = AttributionRunner.finalFormat
        case .checkpoint: m["format"] = AttributionRunner.partialFormat
        case .part: m["format"] = AttributionRunner.partFormat
        }
        if let shard {
            m["shard"] = shard.description
            m["shard_samples"] = Shard.text(shard.range(of: samples))
        }
        m["version"] = "1 (\(Workbench.version))"
        m["fingerprint"] = fingerprint
        m["model"] = modelPath
        m["model_files"] = modelFiles.joined(separator: ",")
        m["data_kind"] = dataKind.rawValue
        if dataKind == .prompts { m["prompts"] = dataPath }
        if dataKind == .corpus { m["corpus"] = dataPath }
        m["samples"] = "\(samples)"
        m["samples_done"] = "\(samplesDone)"
        m["tokens"] = "\(tokens)"
        m["aggregation"] = aggregation
        if method.explains, target == .auto {
            m["target_rule"] = "auto: per prompt, its target fields, else its continuation, else next-token"
        }
        m["conservation_sum"] = String(format: "%.17g", conservationSum)
        m["conservation_count"] = "\(conservationCount)"
        if conservationCount > 0 { m["conservation_mean"] = String(format: "%.6g", conservationSum / Double(conservationCount)) }
        switch method {
        case .lrp, .gradient:
            m["neuron_scores"] = "relevance at each MLP intermediate neuron (Σ_t act ⊙ δact), same aggregation"
            m["head_scores"] = "relevance through each head (Σ_t z_h ⊙ δz_h), same aggregation"
        case .activation:
            m["neuron_scores"] = "mean |MLP post activation| over tokens"
            m["head_scores"] = "mean |z| over tokens and the head's dims"
        case .wanda, .magnitude: break
        }
        return m
    }

    /// The first fingerprint field where a checkpoint's metadata differs, or nil.
    func firstDifference(from meta: [String: String]) -> (key: String, checkpoint: String, now: String)? {
        for (k, v) in fingerprintFields where meta[k] != v { return (k, meta[k] ?? "(missing)", v) }
        if meta["fingerprint"] != fingerprint { return ("fingerprint", meta["fingerprint"] ?? "(missing)", fingerprint) }
        return nil
    }
}
