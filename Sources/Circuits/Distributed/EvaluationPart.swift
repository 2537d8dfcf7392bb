import Foundation
import Transformer

// MARK: - `workbench evaluate … --shard K/N`: a part of an evaluation sweep
//
// The points of an evaluation are the baseline (when there is one) and then every model, in the
// order of the sweep (`correct`'s correction.json) — the order one run evaluates them in. Shard K
// of N evaluates the contiguous points [⌊K·P/N⌋, ⌊(K+1)·P/N⌋) (Shard.range) and writes a part:
// their results and everything that must agree between the parts — the tool version, the prompts
// and their sha256, the sweep and its sha256, every setting, the scorer and the full list of points.
// Each model's evaluation depends only on the model, the prompts and the settings (every sample has
// its own seeded stream), so `workbench merge` puts the parts' results together into the report one
// run writes (the same JSON up to its timestamp and wall times).

/// One point of an evaluation: the baseline or a model of the sweep.
public struct EvaluationPoint: Codable, Equatable, Sendable {
    public var label: String
    public var model: String
    @ExplicitNull public var count: Int?
    public init(label: String, model: String, count: Int?) { self.label = label; self.model = model; self.count = count }
}

/// A part written by `evaluate --shard K/N`: the report of its points (their results in `report.models`, the
/// baseline among them when it is one of its points; no deltas) and what places them in the whole evaluation.
public struct EvaluationPart: JSONShardPart, Equatable {
    public static let formatName = "workbench-evaluate-part"
    public var format = EvaluationPart.formatName
    /// "K/N", and the points it evaluated as "lo-hi" (inclusive) of `points`.
    public var shard: String
    public var pointRange: String
    /// Every point of the whole evaluation, in order; point 0 is the baseline when `hasBaseline`.
    public var points: [EvaluationPoint]
    public var hasBaseline: Bool
    @ExplicitNull public var sweepSHA256: String?
    @ExplicitNull public var perplexityTextSHA256: String?
    public var report: EvaluationReport

    enum CodingKeys: String, CodingKey {
        case format, shard, pointRange = "point_range", points, hasBaseline = "has_baseline", sweepSHA256 = "sweep_sha256"
        case perplexityTextSHA256 = "perplexity_text_sha256", report
    }
    /// Fields that differ from part to part by design; every other field must agree.
    static let perPartKeys: Set<String> = ["shard", "point_range", "report.timestamp", "report.baseline", "report.models", "report.deltas"]
    public var results: [ModelEvaluation] { report.models }
    /// Compared first: a disagreement here explains the others (protocol texts follow from the settings).
    static let telling = ["format", "report.tool", "report.settings", "report.prompts_sha256", "sweep_sha256", "perplexity_text_sha256",
                          "points", "has_baseline"]

    /// `report` holds the results of `shard`'s points as its models.
    public init(shard: Shard, points: [EvaluationPoint], hasBaseline: Bool, report: EvaluationReport) throws {
        self.shard = shard.description
        pointRange = Shard.text(shard.range(of: points.count))
        self.points = points; self.hasBaseline = hasBaseline
        sweepSHA256 = try report.sweep.map { try SHA256.hex(file: $0) }
        perplexityTextSHA256 = try report.settings.perplexityText.map { try SHA256.hex(file: $0) }
        self.report = report
    }

    public func json() throws -> Data { try JSONPart.json(self) }

    /// Reads and checks one part on its own: its format, shard and that it holds exactly its shard's points.
    public static func read(_ path: String) throws -> EvaluationPart {
        let (p, s) = try readPart(path)
        let mine = s.range(of: p.points.count)
        guard p.pointRange == Shard.text(mine), p.results.count == mine.count,
              zip(p.results, p.points[mine]).allSatisfy({ $0.label == $1.label && $0.model == $1.model && $0.count == $1.count }) else {
            throw DistributedError.badPart(path: path, reason: "holds points \(p.pointRange) (\(p.results.count) results), but shard \(s) of "
                + "\(p.points.count) points takes \(Shard.text(mine)) (an incomplete or altered part)")
        }
        return p
    }

    /// The report one run writes: the parts checked as one set (every field agrees; shards 0..<N each once), results in point order.
    public static func merge(_ paths: [String]) throws -> EvaluationReport {
        precondition(!paths.isEmpty)
        let parts = try paths.map { (path: $0, part: try read($0)) }
        let sorted = try ShardSet.ordered(parts, path: \.path, shard: { try $0.part.parsedShard($0.path) },
                                          fields: { try JSONPart.fields($0.part, flattening: "report", excluding: perPartKeys) }, keys: Self.telling) { missing in
            let n = parts[0].part.points
            return DistributedError.missingPoints(
                shards: missing.map(\.description),
                points: missing.map { s in "points " + Shard.text(s.range(of: n.count)) + " (" + n[s.range(of: n.count)].map(\.label).joined(separator: ", ") + ")" }
                    .joined(separator: "; "),
                of: n.count, command: "evaluate")
        }
        let all = sorted.flatMap(\.part.results)
        let r = sorted[0].part.report, baseline = sorted[0].part.hasBaseline ? all.first : nil
        return EvaluationReport(prompts: r.prompts, promptsSHA256: r.promptsSHA256, promptCount: r.promptCount, split: r.split, sweep: r.sweep,
                                correctionMethod: r.correctionMethod, overlaps: r.overlaps, settings: r.settings, scorer: r.scorer, scorerNote: r.scorerNote,
                                baseline: baseline, models: Array(all.dropFirst(baseline == nil ? 0 : 1)))
    }
}
