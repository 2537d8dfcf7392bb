import Foundation
import Transformer

// MARK: - pruning.json: the provenance sidecar written next to the pruned weights
//
// Typed, written with sorted keys and pretty-printed. Absent values are written
// as explicit nulls (a reader sees every field): those fields are `@ExplicitNull`.

public struct PruneRecord: Codable, Equatable {
    public struct Input: Codable, Equatable {
        public var path: String, format: String, dtype: String, family: String
    }
    /// How many were asked for: a fraction (`sparsity`) or a number (`count`); exactly one is present.
    public struct Target: Codable, Equatable {
        public var sparsity: Double?
        public var count: Int?
    }
    public struct Scores: Codable, Equatable {
        public var source: String
        public var metadata: [String: String]
        @ExplicitNull public var promptsHash: String?
        enum CodingKeys: String, CodingKey { case source, metadata, promptsHash = "prompts_hash" }
    }
    public struct TensorRecord: Codable, Equatable {
        public var name: String, shape: [Int], numel: Int, pruned: Int, sparsity: Double
        /// Exact zeros in the written tensor (nil for tensors the report does not cover, e.g. biases).
        @ExplicitNull public var zerosAfter: Int?
        enum CodingKeys: String, CodingKey { case name, shape, numel, pruned, sparsity, zerosAfter = "zeros_after" }
    }
    public struct Count: Codable, Equatable {
        public var numel: Int, zeros: Int, sparsity: Double
    }
    public struct PrunedCount: Codable, Equatable {
        public var numel: Int, pruned: Int, sparsity: Double
    }
    public struct Achieved: Codable, Equatable {
        public var tensors: [TensorRecord]
        /// The 2-D matrices the mask covers.
        public var targetedWeights: PrunedCount
        public var decoderLinear: Count
        public var allParameters: Count
        enum CodingKeys: String, CodingKey {
            case tensors, targetedWeights = "targeted_weights", decoderLinear = "decoder_linear", allParameters = "all_parameters"
        }
    }
    public struct Unit: Codable, Equatable {
        public var kind: String, layer: Int, index: Int
        /// Widened from the F32 score (so the JSON shows the F32 value exactly).
        public var score: Double
    }

    public var tool: String
    public var timestamp: String
    public var input: Input
    /// The scores' method: the file's `method` metadata (or "scores-file"), or the on-the-fly method.
    public var method: String
    public var scheme: String
    public var schemeDefinition: String
    public var rank: String
    public var target: Target
    @ExplicitNull public var layers: String?
    public var tieBreak: String
    public var outputFormat: String
    public var scores: Scores
    /// The calibration flags of an on-the-fly method (all null for magnitude); nil for a score file.
    @ExplicitNull public var calibration: CalibrationFlags?
    public var achieved: Achieved
    public var units: [Unit]
    /// wanda only: true = layer by layer over the already-pruned layers (the reference code's procedure),
    /// false = every layer scored on the dense model. Absent for every other method.
    public var sequential: Bool?

    enum CodingKeys: String, CodingKey {
        case tool, timestamp, input, method, scheme, schemeDefinition = "scheme_definition", rank, target, layers
        case tieBreak = "tie_break", outputFormat = "output_format", scores, calibration, achieved, units, sequential
    }

    /// Pretty-printed with sorted keys (stable, diffable bytes).
    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}

extension PruneRecord {
    /// The record of one pruning run.
    init(options: PruneOptions, source: CheckpointSourceInfo, mask: PruneMask, report: SparsityReport, scoreSource: String,
         scoreMetadata: [String: String], promptsHash: String?, date: Date = Date()) {
        let spec = options.spec
        switch spec.amount {
        case .fraction(let s)?: target = Target(sparsity: s)
        case .count(let c)?: target = Target(count: c)
        case nil:
            if case .nm(let n, let m) = spec.scheme { target = Target(sparsity: Double(n) / Double(m)) } else { target = Target() }
        }
        switch options.scores {
        case .file:
            method = scoreMetadata["method"] ?? "scores-file"
            calibration = nil
        case .method(let m, let c, _):
            method = m.rawValue
            calibration = c?.flags ?? CalibrationFlags()
            if m == .wanda { sequential = options.sequential }
        }
        let zeros = Dictionary(report.rows.map { ($0.name, $0.zeros) }, uniquingKeysWith: { a, _ in a })
        let matrices = mask.tensors.filter { $0.shape.count == 2 }
        let numel = matrices.reduce(0) { $0 + $1.count }, pruned = matrices.reduce(0) { $0 + $1.pruned }
        tool = Workbench.version
        timestamp = ISO8601DateFormatter().string(from: date)
        input = Input(path: source.path, format: source.format, dtype: source.sourceDType, family: source.config.family.rawValue)
        scheme = spec.scheme.description
        schemeDefinition = Self.definition(spec.scheme)
        rank = spec.rank.rawValue
        layers = spec.layers
        tieBreak = "equal scores: lower flat index pruned first (row-major within a tensor, tensors in model order)"
        outputFormat = options.format.rawValue
        scores = Scores(source: scoreSource, metadata: scoreMetadata, promptsHash: promptsHash)
        achieved = Achieved(
            tensors: mask.tensors.map { m in
                TensorRecord(name: m.name, shape: m.shape, numel: m.count, pruned: m.pruned,
                             sparsity: m.count == 0 ? 0 : Double(m.pruned) / Double(m.count), zerosAfter: zeros[m.name])
            },
            targetedWeights: PrunedCount(numel: numel, pruned: pruned, sparsity: numel == 0 ? 0 : Double(pruned) / Double(numel)),
            decoderLinear: Count(numel: report.numel, zeros: report.zeros, sparsity: report.sparsity),
            allParameters: Count(numel: report.parameterCount, zeros: report.parameterZeros, sparsity: report.parameterSparsity))
        units = mask.units.map { Unit(kind: $0.kind.rawValue, layer: $0.layer, index: $0.index, score: Double($0.score)) }
    }

    static func definition(_ s: PruneScheme) -> String {
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
