import Foundation
import Transformer

// MARK: - `workbench circuit … --shard K/N`: a share of the faithfulness curve
//
// The curve's grid points (nominal sizes, `CircuitDiscovery.gridCounts`) cost one ablated pass over the
// reference and held-out prompts each; shard K of N measures the contiguous grid points [⌊K·G/N⌋,
// ⌊(K+1)·G/N⌋) and writes them as a part, with the tool version, every setting, the sha256 of model and task
// files, the candidate count and the whole grid. Finishing (`circuit … PART…`, the same options) checks the
// parts against each other and against its own run, takes their points instead of measuring them, and only
// bisects — which needs the model and the ranking, so it is the circuit command itself, not `workbench merge`.
// Every point depends only on the ranking and its size, so the files are those of one unsharded run.

public struct CircuitCurvePart: JSONShardPart, Equatable {
    public static let formatName = "workbench-circuit-curve-part"
    /// f and the metric m at one size on one set.
    public struct Value: Codable, Equatable {
        public var f: Double
        public var metric: Double
    }
    /// One measured grid point: its size (nominal and kept; the kept fraction is kept / candidates) and the values
    /// on the reference and held-out sets.
    public struct Point: Codable, Equatable {
        public var nominal, kept: Int
        public var reference: Value
        @ExplicitNull public var heldout: Value?
    }

    public var format = CircuitCurvePart.formatName
    public var tool = Workbench.version
    /// "K/N", and the grid points it holds as "lo-hi" (inclusive) of `grid`.
    public var shard: String
    public var pointRange: String
    /// Every setting of the run (as `curve.json` states them), canonical JSON text per key.
    public var settings: [String: String]
    public var modelSHA256: String
    public var referenceSHA256: String
    @ExplicitNull public var heldoutSHA256: String?
    public var candidates: Int
    /// The nominal sizes of the whole grid.
    public var grid: [Int]
    public var points: [Point]

    enum CodingKeys: String, CodingKey {
        case format, tool, shard, pointRange = "point_range", settings, modelSHA256 = "model_sha256", referenceSHA256 = "reference_sha256"
        case heldoutSHA256 = "heldout_sha256", candidates, grid, points
    }
    /// Differ from part to part by design; everything else must agree (and match the finishing run).
    static let perPartKeys: Set<String> = ["shard", "point_range", "points"]
    /// Compared first, in this order: the most telling disagreement is reported.
    static let telling = ["format", "tool", "settings", "model_sha256", "reference_sha256", "heldout_sha256", "candidates", "grid"]

    /// The part of `shard` (its points from `CircuitDiscovery.curveShard`; none for the finishing run's own view).
    public init(shard: Shard, grid: [Int], points: [CurvePoint], settings s: CircuitSettings, metric: HeadlineMetric,
                provenance p: CircuitProvenance, candidates: Int) throws {
        self.shard = shard.description
        pointRange = Shard.text(shard.range(of: grid.count))
        var text: [String: String] = [:]
        for (k, v) in CircuitReport.settingsDict(s, metric: metric) {
            let d = try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
            text[k] = String(decoding: d, as: UTF8.self)
        }
        settings = text
        modelSHA256 = p.modelSHA256; referenceSHA256 = p.referenceSHA256; heldoutSHA256 = p.heldoutSHA256
        self.candidates = candidates; self.grid = grid
        self.points = points.map {
            Point(nominal: $0.nominal, kept: $0.kept, reference: Value(f: $0.reference.f, metric: $0.reference.metric),
                  heldout: $0.heldout.map { Value(f: $0.f, metric: $0.metric) })
        }
    }

    public func json() throws -> Data { try JSONPart.json(self) }

    /// Reads one part and checks it holds exactly its shard's grid points.
    public static func read(_ path: String) throws -> CircuitCurvePart {
        let (p, s) = try readPart(path)
        let mine = s.range(of: p.grid.count)
        guard p.pointRange == Shard.text(mine), p.points.map(\.nominal) == Array(p.grid[mine]) else {
            throw DistributedError.badPart(path: path, reason: "holds grid points \(p.pointRange) (sizes \(p.points.map(\.nominal))), but shard \(s) "
                + "of \(p.grid.count) grid points takes \(Shard.text(mine)) (sizes \(Array(p.grid[mine]))) (an incomplete or altered part)")
        }
        return p
    }

    /// The curve points of `paths`, checked as one set (every field agrees, shards 0..<N each once) and against
    /// `run`, the part this run would write (its settings, hashes, candidates and grid).
    public static func merge(_ paths: [String], run: CircuitCurvePart) throws -> [CurvePoint] {
        precondition(!paths.isEmpty)
        let parts = try paths.map { (path: $0, part: try read($0)) }
        let sorted = try ShardSet.ordered(parts, path: \.path, shard: { try $0.part.parsedShard($0.path) },
                                          fields: { try JSONPart.fields($0.part, excluding: perPartKeys) }, keys: telling) { missing in
            let g = parts[0].part.grid
            return DistributedError.missingPoints(
                shards: missing.map(\.description),
                points: missing.map { "grid points \(Shard.text($0.range(of: g.count))) (sizes \(Array(g[$0.range(of: g.count)])))" }
                    .joined(separator: "; "),
                of: g.count, command: "circuit")
        }
        let mine = try JSONPart.fields(run, excluding: perPartKeys), theirs = try JSONPart.fields(sorted[0].part, excluding: perPartKeys)
        for k in telling + Set(mine.keys).union(theirs.keys).subtracting(telling).sorted() where mine[k] != theirs[k] {
            throw DistributedError.partsDisagree(field: k, first: "this run", firstValue: mine[k] ?? "(missing)", other: sorted[0].path,
                                                 otherValue: theirs[k] ?? "(missing)")
        }
        return sorted.flatMap(\.part.points).map { p in
            // The fraction as CurveRun.point computes it, so the merged curve has the same bits.
            CurvePoint(fraction: Double(p.kept) / Double(run.candidates), nominal: p.nominal, kept: p.kept, reference: (p.reference.f, p.reference.metric),
                       heldout: p.heldout.map { ($0.f, $0.metric) })
        }
    }
}
