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
    /// Computed on the fly by an attribution method over calibration data.
    case method(String, PruneCalibration)
}

/// Calibration data for on-the-fly methods (same options as `workbench attribute`).
public struct PruneCalibration: Equatable, Sendable {
    public var prompts: String?
    public var text: String?
    public var seqlen: Int?
    public var samples: Int?
    public var seed: UInt64?
    /// How gradient/lrp relevance is aggregated. Pruning defaults to |R| per position:
    /// the signed mean (attribute's default, SparC³ Eq. 1 as written) lets positions
    /// cancel and measured far worse than magnitude (docs/results/compression.md).
    public var aggregation: RelevanceAccumulator.Aggregation
    public init(prompts: String? = nil, text: String? = nil, seqlen: Int? = nil, samples: Int? = nil, seed: UInt64? = nil,
                aggregation: RelevanceAccumulator.Aggregation = .absPerToken) {
        self.prompts = prompts; self.text = text; self.seqlen = seqlen; self.samples = samples; self.seed = seed
        self.aggregation = aggregation
    }
}

public struct PruneOptions: Sendable {
    public var model: String
    public var scores: ScoreSource
    public var spec: PruneSpec
    public var out: String
    public var format: WeightFormat
    public var force: Bool
    public init(model: String, scores: ScoreSource, spec: PruneSpec, out: String, format: WeightFormat = .dense, force: Bool = false) {
        self.model = model; self.scores = scores; self.spec = spec; self.out = out; self.format = format; self.force = force
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
    public static let toolVersion = "workbench 0.1.0"

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
        case .method(let m, let c): try c.validate(for: m)
        }
        // 2. Model.
        let (model, source) = try CheckpointSourceInfo.load(o.model)
        lap("load model")
        log(String(format: "loaded %@ (%@, %@, %d decoder linear weights)", o.model, source.format, source.sourceDType, model.linears.count))
        // 3. Scores.
        var scores = try loadScores(o.scores, model: model, source: source, log: log)
        lap("scores")
        // 4. Mask, then apply it.
        let mask = try Pruner.mask(model, scores: scores, spec: o.spec)
        let scoreSource = scores.source, scoreMeta = scores.metadata, promptsHash = scores.promptsHash
        scores = ScoreMap(tensors: [:], source: scoreSource)          // free ~1 weight-set of memory
        lap("mask")
        try mask.apply(to: model)
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
        case .file(let path): return try ScoreMap.load(path: path)
        case .method(let m, let c): return try OnTheFlyScores.compute(method: m, calibration: c, model: model, source: source, log: log)
        }
    }
}

// MARK: - pruning.json

/// The provenance sidecar written next to the pruned weights.
struct PruneRecord {
    let options: PruneOptions
    let source: CheckpointSourceInfo
    let mask: PruneMask
    let report: SparsityReport
    let scoreSource: String
    let scoreMetadata: [String: String]
    let promptsHash: String?

    func json() throws -> Data {
        let spec = options.spec
        var target: [String: Any] = [:]
        switch spec.amount {
        case .fraction(let s)?: target["sparsity"] = s
        case .count(let c)?: target["count"] = c
        case nil: if case .nm(let n, let m) = spec.scheme { target["sparsity"] = Double(n) / Double(m) }
        }
        let method: String
        switch options.scores {
        case .file: method = scoreMetadata["method"] ?? "scores-file"
        case .method(let m, _): method = m
        }
        var calibration: Any = NSNull()
        if case .method(_, let c) = options.scores {
            calibration = ["prompts": c.prompts as Any? ?? NSNull(), "text": c.text as Any? ?? NSNull(),
                           "seqlen": c.seqlen as Any? ?? NSNull(), "samples": c.samples as Any? ?? NSNull(),
                           "seed": c.seed.map { Int($0) } as Any? ?? NSNull()] as [String: Any]
        }
        let perTensor: [[String: Any]] = mask.tensors.map { m in
            let zeros = report.rows.first { $0.name == m.name }?.zeros
            return ["name": m.name, "shape": m.shape, "numel": m.count, "pruned": m.pruned,
                    "sparsity": m.count == 0 ? 0 : Double(m.pruned) / Double(m.count),
                    "zeros_after": zeros as Any? ?? NSNull()]
        }
        let maskTotal = mask.tensors.filter { $0.shape.count == 2 }
        let maskNumel = maskTotal.reduce(0) { $0 + $1.count }, maskPruned = maskTotal.reduce(0) { $0 + $1.pruned }
        let root: [String: Any] = [
            "tool": PrunePipeline.toolVersion,
            "timestamp": ISO8601DateFormatter().string(from: Date()),
            "input": ["path": source.path, "format": source.format, "dtype": source.sourceDType, "family": source.config.family.rawValue],
            "method": method,
            "scheme": spec.scheme.description,
            "scheme_definition": schemeDefinition(spec.scheme),
            "rank": spec.rank.rawValue,
            "target": target,
            "layers": spec.layers as Any? ?? NSNull(),
            "tie_break": "equal scores: lower flat index pruned first (row-major within a tensor, tensors in model order)",
            "output_format": options.format.rawValue,
            "scores": ["source": scoreSource, "metadata": scoreMetadata, "prompts_hash": promptsHash as Any? ?? NSNull()] as [String: Any],
            "calibration": calibration,
            "achieved": [
                "tensors": perTensor,
                "targeted_weights": ["numel": maskNumel, "pruned": maskPruned,
                                     "sparsity": maskNumel == 0 ? 0 : Double(maskPruned) / Double(maskNumel)],
                "decoder_linear": ["numel": report.numel, "zeros": report.zeros, "sparsity": report.sparsity],
                "all_parameters": ["numel": report.parameterCount, "zeros": report.parameterZeros, "sparsity": report.parameterSparsity],
            ] as [String: Any],
            "units": mask.units.map { ["kind": $0.kind.rawValue, "layer": $0.layer, "index": $0.index, "score": Double($0.score)] as [String: Any] },
        ]
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }

    func schemeDefinition(_ s: PruneScheme) -> String {
        switch s {
        case .row: return "per output row of each selected matrix, the floor(cols·s) lowest-ranked weights"
        case .layer: return "per selected matrix, the floor(numel·s) lowest-ranked weights"
        case .global: return "the k lowest-ranked weights across all selected matrices (exact radix select)"
        case .nm(let n, let m): return "in every group of \(m) consecutive input columns of each row, the \(n) lowest (≤ \(m - n) nonzeros per \(m))"
        case .neurons: return "whole MLP neurons ranked across selected layers: gate+up rows (+bias) and down column (Llama); fc1 row + bias and fc2 column (OPT)"
        case .heads: return "whole attention heads ranked across selected layers: the head's o_proj/out_proj input columns"
        }
    }
}
