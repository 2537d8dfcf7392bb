import Foundation
import Transformer

// MARK: - correction.json: what was removed, why, and from what
//
// Every setting and the hashes of the model and of both prompt sets, so a correction can be traced
// and repeated; per count, the removed neurons/heads with their contrastive score and its two parts
// (for weights: how many per tensor). `workbench evaluate --sweep DIR` reads the sweep index.

public struct CorrectionRecord: Codable, Equatable {
    public struct SetInfo: Codable, Equatable {
        public var path: String
        public var sha256: String
        public var prompts: Int
        public var tokens: Int
        /// What the attribution explains on this set.
        public var explains: String
        init(_ set: PromptSet, _ samples: [AttributionSample], target: String) throws {
            path = set.path; sha256 = try SHA256.hex(file: set.path); prompts = samples.count
            tokens = samples.reduce(0) { $0 + $1.tokens.count }; explains = target
        }
    }
    public struct Removed: Codable, Equatable {
        public var kind: String
        public var layer: Int
        public var index: Int
        /// R̄_general − R̄_undesired (widened from F32); for random, the random score.
        public var score: Double
        @ExplicitNull public var general: Double?
        @ExplicitNull public var undesired: Double?
    }
    /// `--normalize per-set`: each set's means were divided by its total |R̄| over the ranked components before the
    /// difference (the removed components' `general`/`undesired` parts are then the normalised values).
    public struct Normalization: Codable, Equatable {
        public var mode: String
        public var generalTotal: Double
        public var undesiredTotal: Double
        /// How many components the totals run over.
        public var components: Int
        enum CodingKeys: String, CodingKey {
            case mode, generalTotal = "general_total", undesiredTotal = "undesired_total", components
        }
    }
    public struct TensorCount: Codable, Equatable {
        public var name: String
        public var pruned: Int
        public var numel: Int
    }
    public struct Entry: Codable, Equatable {
        @ExplicitNull public var count: Int?
        @ExplicitNull public var sparsity: Double?
        /// The checkpoint folder, relative to the sweep folder ("." for a single run); key `path` (what `evaluate --sweep` reads).
        public var directory: String
        /// Neurons/heads removed, lowest score first (empty for weights).
        public var removed: [Removed]
        /// Weights zeroed per tensor (tensors with none are left out).
        public var tensors: [TensorCount]
        public var prunedWeights: Int
        enum CodingKeys: String, CodingKey {
            case count, sparsity, directory = "path", removed, tensors, prunedWeights = "pruned_weights"
        }

        init(amount: PruneAmount, directory: String, mask: PruneMask, general: ((String) throws -> [Float])?,
             undesired: ((String) throws -> [Float])?, model: Model) throws {
            switch amount {
            case .count(let c): count = c
            case .fraction(let f): sparsity = f
            }
            self.directory = directory
            removed = try mask.units.map { u in
                let name = u.kind == .neuron ? ScoreNames.neurons(model, layer: u.layer) : ScoreNames.heads(model, layer: u.layer)
                return Removed(kind: u.kind.rawValue, layer: u.layer, index: u.index, score: Double(u.score),
                               general: try general.map { Double(try $0(name)[u.index]) },
                               undesired: try undesired.map { Double(try $0(name)[u.index]) })
            }.sorted { ($0.score, $0.layer, $0.index) < ($1.score, $1.layer, $1.index) }
            tensors = mask.tensors.filter { $0.pruned > 0 }.map { TensorCount(name: $0.name, pruned: $0.pruned, numel: $0.count) }
            prunedWeights = mask.tensors.filter { $0.shape.count == 2 }.reduce(0) { $0 + $1.pruned }
        }

        var removedSummary: String {
            removed.isEmpty ? "\(prunedWeights) weights zeroed in \(tensors.count) tensors"
                : "\(removed.count) \(removed[0].kind)s removed (" + removed.prefix(8).map { "L\($0.layer).\($0.index)" }.joined(separator: " ")
                  + (removed.count > 8 ? " …" : "") + ")"
        }
    }

    public var tool = Workbench.version
    public var timestamp: String
    public var model: String
    public var modelSHA256: String
    public var method: String
    public var granularity: String
    /// How relevance was aggregated over positions before the mean (lrp/gradient), else null.
    @ExplicitNull public var aggregation: String?
    @ExplicitNull public var layers: String?
    /// Null: raw means, SparC³ Eq. 7 as published (also what records written before the option decode as).
    @ExplicitNull public var normalization: Normalization?
    public var ranking: String
    public var scores: String
    /// The random draw's seed (method random), else null.
    @ExplicitNull public var seed: UInt64?
    public var general: SetInfo
    public var undesired: SetInfo
    /// Prompts found in both sets (identical text).
    public var overlap: Int
    public var sweep: [Entry] = []
    public var seconds: [String: Double] = [:]

    enum CodingKeys: String, CodingKey {
        case tool, timestamp, model, modelSHA256 = "model_sha256", method, granularity, aggregation, layers, normalization, ranking
        case scores, seed
        case general, undesired, overlap, sweep, seconds
    }

    init(options o: CorrectionOptions, source: CheckpointSourceInfo, modelSHA256: String, general: SetInfo, undesired: SetInfo,
         overlap: Int, scoreSource: String, date: Date = Date()) {
        timestamp = ISO8601DateFormatter().string(from: date)
        model = source.path; self.modelSHA256 = modelSHA256
        method = o.method.rawValue; granularity = o.granularity.rawValue
        aggregation = o.method == .lrp || o.method == .gradient ? o.aggregation.rawValue : nil
        layers = o.layers
        ranking = o.method == .random ? "uniform random scores, lowest first"
            : o.normalize == .perSet
            ? "lowest R̄_general/Σ|R̄_general| − R̄_undesired/Σ|R̄_undesired| first (sums over the ranked components; SparC³ §3.4 with both sets weighted equally)"
            : "lowest R̄_general − R̄_undesired first (most relevant to the undesired behaviour, least to general behaviour; SparC³ §3.4)"
        scores = scoreSource
        seed = o.method == .random ? o.seed : nil
        self.general = general; self.undesired = undesired; self.overlap = overlap
    }

    /// Pretty-printed with sorted keys.
    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}

/// Where the checkpoints of a run go: the output folder itself (one count), or `count-N` folders built in a
/// temporary sibling that is renamed into place when every count is written (a sweep is never half there).
final class SweepFolder {
    let out: String
    let sweep: Bool
    let force: Bool
    let tmp: String
    private var finished = false

    init(_ out: String, sweep: Bool, force: Bool) throws {
        self.out = CheckpointWriter.resolved(out); self.sweep = sweep; self.force = force
        let u = URL(fileURLWithPath: self.out)
        tmp = u.deletingLastPathComponent().appendingPathComponent(".\(u.lastPathComponent).sweep-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        if sweep {
            do { try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true) } catch {
                throw CheckpointWriteError.cannotWrite(path: tmp, reason: error.localizedDescription)
            }
        }
    }

    deinit { if sweep, !finished { try? FileManager.default.removeItem(atPath: tmp) } }

    func directory(for amount: PruneAmount) -> String {
        guard sweep, case .count(let c) = amount else { return out }
        return tmp + "/count-\(c)"
    }

    func final(_ dir: String) -> String { sweep && dir.hasPrefix(tmp) ? out + dir.dropFirst(tmp.count) : dir }

    /// Writes the sweep index and moves the folder into place (replacing an old one only with --force).
    func finish(index: Data?) throws {
        guard sweep else { finished = true; return }
        let fm = FileManager.default
        if let index {
            guard fm.createFile(atPath: tmp + "/correction.json", contents: index) else {
                throw CheckpointWriteError.cannotWrite(path: tmp + "/correction.json", reason: "cannot create the file")
            }
        }
        var st = stat()
        var old: String? = nil
        if lstat(out, &st) == 0 {
            guard force else { throw CheckpointWriteError.outputExists(path: out) }
            old = tmp + ".old"
            guard rename(out, old!) == 0 else { throw CheckpointWriteError.cannotWrite(path: out, reason: String(cString: strerror(errno))) }
        }
        guard rename(tmp, out) == 0 else {
            let reason = String(cString: strerror(errno))
            if let old { _ = rename(old, out) }
            throw CheckpointWriteError.cannotWrite(path: out, reason: reason)
        }
        finished = true
        if let old { try? fm.removeItem(atPath: old) }
    }
}
