import Foundation
import Tokenize
import Transformer

// MARK: - correct: contrastive scores → pruned checkpoint(s) + correction.json
//
// Attribution runs once per set; every count of a sweep is then a mask of the same ranking. Masks of
// one ranking are nested (the k lowest are among the k' lowest for k < k', ties broken by flat index),
// so the sweep prunes in increasing count on one model copy: zeroing is idempotent, and each written
// checkpoint equals a single run at that count (tested). Bad input fails before anything is written;
// a sweep is built in a temporary folder and renamed into place at the end.

public struct CorrectionOptions: Sendable {
    public var model: String
    public var general: String
    public var undesired: String
    /// Use only the first k prompts of each set (nil = all).
    public var generalSamples: Int?
    public var undesiredSamples: Int?
    public var method: CorrectionMethod
    public var granularity: CorrectionGranularity
    public var layers: String?
    /// One fraction, or one or more counts (a sweep).
    public var amounts: [PruneAmount]
    public var aggregation: RelevanceAccumulator.Aggregation
    /// Scaling of the two sets' means before the difference (`none` = Eq. 7 as published).
    public var normalize: CorrectionNormalization
    /// Length of the undesired prompts' own greedy continuations that are explained.
    public var maxNewTokens: Int
    public var seed: UInt64
    public var out: String
    public var force: Bool

    public init(model: String, general: String, undesired: String, generalSamples: Int? = nil, undesiredSamples: Int? = nil,
                method: CorrectionMethod, granularity: CorrectionGranularity, layers: String? = nil, amounts: [PruneAmount],
                aggregation: RelevanceAccumulator.Aggregation = .signed, normalize: CorrectionNormalization = .none,
                maxNewTokens: Int = 50, seed: UInt64 = 0, out: String, force: Bool = false) {
        self.model = model; self.general = general; self.undesired = undesired; self.generalSamples = generalSamples
        self.undesiredSamples = undesiredSamples; self.method = method; self.granularity = granularity; self.layers = layers
        self.amounts = amounts; self.aggregation = aggregation; self.normalize = normalize; self.maxNewTokens = maxNewTokens; self.seed = seed
        self.out = out; self.force = force
    }

    /// The counts of a sweep in increasing order (a single fraction is its own entry).
    var isSweep: Bool { amounts.count > 1 }

    /// Everything that can be checked without a model; throws `PruneError.invalidArgument` (a usage error).
    public func specs() throws -> [PruneSpec] {
        guard !amounts.isEmpty else { throw PruneError.invalidArgument(option: "count", reason: "give --count N[,N…] or --sparsity F") }
        if amounts.contains(where: { if case .fraction = $0 { return true }; return false }), amounts.count > 1 {
            throw PruneError.invalidArgument(option: "sparsity", reason: "a sweep takes --count N,N,…")
        }
        let counts = amounts.compactMap { if case .count(let c) = $0 { return c }; return nil }
        guard Set(counts).count == counts.count else { throw PruneError.invalidArgument(option: "count", reason: "a count is listed twice") }
        if aggregation != .signed, method != .lrp, method != .gradient {
            throw PruneError.invalidArgument(option: "aggregation", reason: "applies only to --method lrp or gradient")
        }
        if normalize != .none, method == .random {
            throw PruneError.invalidArgument(option: "normalize", reason: "random scores have no sets to normalise")
        }
        guard maxNewTokens >= 1 else { throw PruneError.invalidArgument(option: "max-new-tokens", reason: "must be at least 1") }
        return try sortedAmounts.map { try PruneSpec(scheme: granularity.scheme, amount: $0, rank: .signed, layers: layers) }
    }

    var sortedAmounts: [PruneAmount] {
        amounts.sorted { a, b in
            if case .count(let x) = a, case .count(let y) = b { return x < y }
            return false
        }
    }
}

public struct CorrectionStep {
    public var amount: PruneAmount
    public var mask: PruneMask
    public var directory: String
}

public struct CorrectionOutcome {
    public var steps: [CorrectionStep]
    public var record: CorrectionRecord
}

public enum CorrectionPipeline {
    @discardableResult
    public static func run(_ o: CorrectionOptions, progress: Bool = false, log: (String) -> Void = { _ in }) throws -> CorrectionOutcome {
        let specs = try o.specs()
        try CheckpointWriter.preflight(output: o.out, input: o.model, force: o.force)
        // Sets first: a malformed prompt file must fail before the model is loaded.
        let general = try limited(PromptSet.load(o.general), o.generalSamples, option: "general-samples")
        let undesired = try limited(PromptSet.load(o.undesired), o.undesiredSamples, option: "undesired-samples")
        let overlap = PromptOverlap.count(undesired.entries.compactMap(\.text), general.entries.compactMap(\.text))
        if overlap > 0 { log("warning: \(overlap) prompt(s) appear in both --general and --undesired (the contrast cancels on them)") }
        let (model, source) = try CheckpointSourceInfo.load(o.model)
        try OutputGuard.checkDirectory(output: o.out, inputs: source.inputFiles + [o.general, o.undesired])
        let tokenizer = try source.tokenizer.map {
            try ModelLoader.makeCheckedTokenizer($0, hints: OnTheFlyScores.hints(source), config: source.config,
                                                 configSource: source.configSource, modelPath: source.path)
        }
        let modelHash = try SHA256.model(path: source.path)
        // Samples: general explains next tokens; undesired explains its own greedy continuation.
        let gSamples = try PromptSamples.prepare(general, model: model, tokenizer: tokenizer, target: .nextToken)
        let uSamples = try PromptSamples.prepare(undesired, model: model, tokenizer: tokenizer, target: .continuation,
                                                 maxNewTokens: o.maxNewTokens, progress: progress)
        // The continuation keeps a final EOS (the model's decision); nothing before it = nothing to explain.
        let eos = tokenizer?.eosId ?? model.config.eosTokenId
        for s in uSamples where !s.tokens[s.promptLength...].contains(where: { $0 != eos }) {
            throw CorrectionError.emptyContinuation(label: s.label)
        }
        var scores: ContrastiveScores
        var normalization: CorrectionRecord.Normalization? = nil
        if let m = o.method.attribution {
            func run(_ set: PromptSet, _ samples: [AttributionSample], target: TargetMode) throws -> (ScoreMap, Double) {
                var s = AttributionSettings()
                s.method = m
                s.absPerSample = o.aggregation == .absPerSample
                s.absPerToken = o.aggregation == .absPerToken
                s.target = target
                s.maxNewTokens = o.maxNewTokens
                s.modelPath = source.path; s.modelSHA256 = modelHash.sha256; s.modelFiles = modelHash.files
                s.dataKind = .prompts; s.dataPath = set.path; s.dataSHA256 = try SHA256.hex(file: set.path)
                s.samples = samples.count
                let r = try AttributionRunner.scores(model: model, samples: samples, settings: s, progress: progress)
                log(String(format: "%@ over %@: %d samples, %d tokens, %.1f s", m.rawValue, set.path, r.summary.samples,
                           r.summary.tokens, r.summary.seconds))
                return (ScoreMap(tensors: r.tensors, source: "\(m.rawValue) mean over \(set.path)", metadata: r.metadata), r.summary.seconds)
            }
            var (g, gs) = try run(general, gSamples, target: .nextToken)
            var (u, us) = try run(undesired, uSamples, target: .continuation)
            var what = "\(m.rawValue): mean over --general − mean over --undesired"
            if o.normalize == .perSet {
                // One scale per set, from the candidates of the first spec (every spec of a run ranks the same ones).
                let n = try ContrastiveScores.normalizedPerSet(general: g, undesired: u, model: model, spec: specs[0])
                (g, u) = (n.general, n.undesired)
                normalization = n.record
                what = "\(m.rawValue): mean over --general / its Σ|R̄| − mean over --undesired / its Σ|R̄| (--normalize per-set)"
                log(String(format: "per-set normalisation over %d components: Σ|R̄| general %.6g, undesired %.6g (ratio %.3f)",
                           n.record.components, n.record.generalTotal, n.record.undesiredTotal, n.record.generalTotal / n.record.undesiredTotal))
            }
            let diff = try ContrastiveScores.subtract(g, u, source: what)
            scores = ContrastiveScores(difference: diff, general: g, undesired: u)
            scores.generalSeconds = gs; scores.undesiredSeconds = us
        } else {
            scores = ContrastiveScores(difference: ContrastiveScores.random(model, seed: o.seed))
        }
        // Masks in increasing count, applied cumulatively (nested), each written as a checkpoint.
        let root = try SweepFolder(o.out, sweep: o.isSweep, force: o.force)
        var steps: [CorrectionStep] = []
        var entries: [CorrectionRecord.Entry] = []
        let parts = try scores.general.map { try CircuitDiscovery.lookup($0, model) }
        let partsU = try scores.undesired.map { try CircuitDiscovery.lookup($0, model) }
        var record = CorrectionRecord(options: o, source: source, modelSHA256: modelHash.sha256,
                                      general: try CorrectionRecord.SetInfo(general, gSamples, target: "next tokens of each prompt"),
                                      undesired: try CorrectionRecord.SetInfo(undesired, uSamples,
                                          target: "the model's own greedy continuation (\(o.maxNewTokens) new tokens, stops at EOS)"),
                                      overlap: overlap, scoreSource: scores.difference.source)
        record.normalization = normalization
        for (amount, spec) in zip(o.sortedAmounts, specs) {
            let mask = try Pruner.mask(model, scores: scores.difference, spec: spec)
            try mask.apply(to: model)
            let dir = root.directory(for: amount)
            let entry = try CorrectionRecord.Entry(amount: amount, directory: o.isSweep ? URL(fileURLWithPath: dir).lastPathComponent : ".",
                                                   mask: mask, general: parts, undesired: partsU, model: model)
            var single = record
            single.sweep = [entry]
            var writer = CheckpointWriter(source: source, format: .dense)
            writer.extraSafetensors["mask.safetensors"] = mask.records()
            writer.extraFiles["correction.json"] = try single.json()
            try writer.write(model, to: dir, force: o.force && !o.isSweep)
            log("wrote \(root.final(dir)): \(entry.removedSummary)")
            steps.append(CorrectionStep(amount: amount, mask: mask, directory: dir))
            entries.append(entry)
        }
        record.sweep = entries
        record.seconds = ["general attribution": scores.generalSeconds, "undesired attribution": scores.undesiredSeconds]
        try root.finish(index: o.isSweep ? try record.json() : nil)
        return CorrectionOutcome(steps: steps.map { var s = $0; s.directory = root.final(s.directory); return s }, record: record)
    }

    static func limited(_ set: PromptSet, _ k: Int?, option: String) throws -> PromptSet {
        guard let k else { return set }
        guard k >= 1 else { throw PruneError.invalidArgument(option: option, reason: "must be at least 1") }
        return PromptSet(path: set.path, entries: Array(set.entries.prefix(k)))
    }
}

public enum CorrectionError: LocalizedError, Equatable {
    case emptyContinuation(label: String)
    case cannotNormalize(set: String, total: Double)

    public var errorDescription: String? {
        switch self {
        case .emptyContinuation(let l):
            return "\(l): the model's greedy continuation is empty (EOS first), so there is no undesired output to explain; remove the prompt"
        case .cannotNormalize(let set, let t):
            return "--normalize per-set: the --\(set) set's total |score| over the ranked components is \(t), so it cannot be normalised"
        }
    }
}
