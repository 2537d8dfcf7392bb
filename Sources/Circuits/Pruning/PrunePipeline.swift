import Foundation
import Transformer

// MARK: - prune: model + scores → pruned HF checkpoint directory
//
// Order matters for "bad input writes nothing": every check that needs no
// model (spec, paths) runs first, then the model and scores are loaded and
// validated, the mask is computed and applied in memory, and only then is the
// output directory written — atomically.

/// Where the scores come from.
public enum ScoreSource: Equatable, Sendable {
    /// A relevance/score safetensors file (e.g. from `workbench attribute`).
    case file(String)
    /// Computed on the fly by an attribution method over calibration data (nil for magnitude, which reads none).
    /// `aggregation` applies to gradient/lrp. Pruning defaults to |R| per position: the signed mean
    /// (attribute's default, SparC³ Eq. 1 as written) lets positions cancel and measured far worse than
    /// magnitude for compression (docs/results/compression.md).
    case method(AttributionMethod, Calibration?, aggregation: RelevanceAccumulator.Aggregation = .absPerToken)
}

extension ScoreSource {
    /// The files these scores are read from.
    public var files: [String] {
        switch self {
        case .file(let p): return [p]
        case .method(_, let c, _): return c.map { [$0.path] } ?? []
        }
    }
}

public struct PruneOptions: Sendable {
    public var model: String
    public var scores: ScoreSource
    public var spec: PruneSpec
    public var out: String
    public var format: WeightFormat
    public var force: Bool
    /// `--sequential` (wanda only): prune layer by layer as the Wanda reference code does, keeping at most
    /// this many bytes of layer inputs (see SequentialWanda); nil = score every layer on the dense model.
    public var sequentialCacheBytes: Int?
    public init(model: String, scores: ScoreSource, spec: PruneSpec, out: String, format: WeightFormat = .dense, force: Bool = false,
                sequentialCacheBytes: Int? = nil) {
        self.model = model; self.scores = scores; self.spec = spec; self.out = out; self.format = format; self.force = force
        self.sequentialCacheBytes = sequentialCacheBytes
    }

    /// Whether scores come from sequential Wanda.
    public var sequential: Bool { sequentialCacheBytes != nil }

    /// Usage checks of `--sequential`: wanda on the fly, a per-matrix scheme.
    public func validateSequential() throws {
        guard sequential else { return }
        guard case .method(.wanda, _, _) = scores else {
            throw PruneError.invalidArgument(option: "sequential", reason: "applies only with --method wanda")
        }
        try SequentialWanda.validate(spec)
    }
}

public struct PruneOutcome {
    public var report: SparsityReport            // every decoder linear weight after pruning
    public var mask: PruneMask
    public var written: CheckpointWriteSummary
    public var inputBytes: Int
    public var seconds: [(stage: String, seconds: Double)]
    public var scoreSource: String
}

public enum PrunePipeline {
    /// Runs the whole pruning. `log` receives progress lines (stderr in the CLI).
    @discardableResult
    public static func run(_ o: PruneOptions, log: (String) -> Void = { _ in }) throws -> PruneOutcome {
        var times: [(String, Double)] = []
        var t = Date()
        func lap(_ stage: String) { times.append((stage, Date().timeIntervalSince(t))); t = Date() }
        // 1. Cheap checks: paths (the spec validated itself when built).
        try CheckpointWriter.preflight(output: o.out, input: o.model, force: o.force)
        switch o.scores {
        case .file(let p): if !FileManager.default.fileExists(atPath: p) { throw ModelError.fileNotFound(path: p) }
        case .method(let m, let c, _): try OnTheFlyScores.validate(m, c)
        }
        try o.validateSequential()
        // 2. Model.
        let (model, source) = try CheckpointSourceInfo.load(o.model)
        lap("load model")
        log(String(format: "loaded %@ (%@, %@, %d decoder linear weights)", o.model, source.format, source.sourceDType, model.linears.count))
        // Replacing the output directory must not delete anything this run reads.
        try OutputGuard.checkDirectory(output: o.out, inputs: source.inputFiles + o.scores.files)
        let mask: PruneMask, scoreSource: String, scoreMeta: [String: String], promptsHash: String?
        if let cacheBytes = o.sequentialCacheBytes, case .method(let m, let c?, let a) = o.scores {
            // 3–4. Scores, mask and pruning interleaved, one layer at a time.
            let (samples, settings) = try OnTheFlyScores.prepare(method: m, calibration: c, aggregation: a, model: model, source: source)
            let r = try SequentialWanda.prune(model, samples: samples, spec: o.spec, cacheBytes: cacheBytes, progress: true)
            log(String(format: "sequential wanda over %d samples (%d tokens, %d with kept layer inputs) in %.2f s",
                       r.summary.samples, r.summary.tokens, r.summary.cachedSamples, r.summary.seconds))
            mask = r.mask
            scoreSource = "wanda, sequential (computed layer by layer over \(settings.dataPath))"
            scoreMeta = settings.metadata(samplesDone: samples.count, tokens: r.summary.tokens, conservationSum: 0,
                                          conservationCount: 0, kind: .final)
            promptsHash = ScoreMap(tensors: [:], source: scoreSource, metadata: scoreMeta).promptsHash
            lap("sequential wanda")
        } else {
            // 3. Scores.
            var scores = try loadScores(o.scores, model: model, source: source, log: log)
            lap("scores")
            // 4. Mask, then apply it.
            mask = try Pruner.mask(model, scores: scores, spec: o.spec)
            (scoreSource, scoreMeta, promptsHash) = (scores.source, scores.metadata, scores.promptsHash)
            scores = ScoreMap(tensors: [:], source: scoreSource)          // free ~1 weight-set of memory
            lap("mask")
            try mask.apply(to: model)
        }
        let report = SparsityReport.measure(model)
        lap("apply")
        // 5. Write.
        var writer = CheckpointWriter(source: source, format: o.format)
        let pruned2D = mask.tensors.filter { $0.shape.count == 2 }.map(\.name)
        writer.compress = Set(pruned2D)
        writer.sparsity = SparsityConfigInfo(structure: o.spec.scheme.sparsityStructure,
                                             targets: pruned2D.map(CheckpointWriter.moduleName), globalSparsity: report.parameterSparsity)
        writer.extraSafetensors["mask.safetensors"] = mask.records()
        let meta = PruneRecord(options: o, source: source, mask: mask, report: report, scoreSource: scoreSource,
                               scoreMetadata: scoreMeta, promptsHash: promptsHash)
        writer.extraFiles["pruning.json"] = try meta.json()
        let written = try writer.write(model, to: o.out, force: o.force)
        lap("write")
        return PruneOutcome(report: report, mask: mask, written: written, inputBytes: DiskUsage.bytes(o.model),
                            seconds: times, scoreSource: scoreSource)
    }

    /// Loads or computes the score map (validated against the model by `Pruner.mask`).
    static func loadScores(_ s: ScoreSource, model: Model, source: CheckpointSourceInfo, log: (String) -> Void) throws -> ScoreMap {
        switch s {
        case .file(let path):
            let map = try ScoreMap.load(path: path)
            if map.dataChecksum == .absent {
                log("note: \(path) records no \(Safetensors.dataChecksumKey) (written by another tool or an older workbench): its data is not verified")
            }
            return map
        case .method(let m, let c, let a):
            return try OnTheFlyScores.compute(method: m, calibration: c, aggregation: a, model: model, source: source, log: log)
        }
    }
}
