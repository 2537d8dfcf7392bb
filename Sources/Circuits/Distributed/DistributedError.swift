import Foundation

// MARK: - What can go wrong when attribution is split and merged

/// Errors of `--shard`, `workbench merge` and MPI runs, each naming the file, shard or field.
public enum DistributedError: LocalizedError, Equatable {
    /// `--shard` does not parse or K ≥ N.
    case badShard(spec: String, reason: String)
    /// A file given to merge is not a shard part (a final relevance file, a checkpoint, another file).
    case notAPart(path: String, format: String)
    /// A JSON file given as a part is not the kind of part expected (a report, another command's part, other JSON).
    case notAJSONPart(path: String, format: String, expected: String)
    /// A part's metadata lacks a field or holds an invalid value.
    case badPart(path: String, reason: String)
    /// Two parts disagree on a setting, the model, the data or the tool version.
    case partsDisagree(field: String, first: String, firstValue: String, other: String, otherValue: String)
    /// The same shard was given twice.
    case duplicateShard(shard: String, first: String, second: String)
    /// Shards are missing: which ones, and the samples they hold.
    case missingShards(shards: [String], samples: String, of: Int)
    /// Evaluation shards are missing: which ones, and the points they hold.
    case missingPoints(shards: [String], points: String, of: Int, command: String)
    /// A part's recorded samples are not the ones its shard takes (or it is incomplete).
    case wrongSamples(path: String, recorded: String, expected: String)
    /// Two parts' tensors differ in name, shape or dtype.
    case tensorMismatch(path: String, tensor: String, reason: String)
    /// The MPI library could not be used.
    case mpiUnavailable(reason: String)
    /// An MPI call failed.
    case mpiFailed(call: String, code: Int32)

    public var errorDescription: String? {
        switch self {
        case .badShard(let s, let r): return "--shard '\(s)': \(r)"
        case .notAPart(let p, let f):
            return "\(p) is not a shard part (metadata 'format' is \(f)); give the files 'workbench attribute --shard K/N' wrote"
        case .notAJSONPart(let p, let f, let e): return "\(p) is not a \(e) (its \"format\" is \(f)); give the parts that command's --shard K/N wrote"
        case .badPart(let p, let r): return "\(p): \(r)"
        case .partsDisagree(let f, let a, let av, let b, let bv):
            return "parts disagree on '\(f)': \(a) has \(av), \(b) has \(bv); merge only parts of one run (same model, data, settings, tool version)"
        case .duplicateShard(let s, let a, let b): return "shard \(s) is given twice: \(a) and \(b) (its samples would be counted twice)"
        case .missingShards(let s, let samples, let n):
            return "missing shard\(s.count == 1 ? "" : "s") \(s.joined(separator: ", ")) (samples \(samples) of \(n)); run "
                + "'workbench attribute … --shard K/N' for \(s.count == 1 ? "it" : "them") and merge again"
        case .missingPoints(let s, let points, let n, let command):
            return "missing shard\(s.count == 1 ? "" : "s") \(s.joined(separator: ", ")) (\(points) of \(n) points); run "
                + "'workbench \(command) … --shard K/N' for \(s.count == 1 ? "it" : "them") and merge again"
        case .wrongSamples(let p, let r, let e): return "\(p): records samples \(r), but its shard takes \(e) (an incomplete or altered part)"
        case .tensorMismatch(let p, let t, let r): return "\(p): tensor '\(t)' \(r)"
        case .mpiUnavailable(let r): return "MPI: \(r)"
        case .mpiFailed(let c, let code): return "MPI: \(c) failed with error code \(code)"
        }
    }
}
