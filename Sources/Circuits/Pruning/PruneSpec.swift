import Foundation
import Tokenize

// MARK: - What to prune, and how much
//
// A `PruneSpec` is validated when it is built, before any model is loaded, so
// bad arguments fail fast and nothing is written.

/// The granularity at which scores are compared.
public enum PruneScheme: Equatable, Sendable, CustomStringConvertible {
    /// Unstructured, the same count floor(cols·s) in every output row of every selected matrix
    /// (Wanda / SparC³ compression protocol).
    case row
    /// Unstructured, floor(numel·s) per selected matrix (magnitude-pruning convention).
    case layer
    /// Unstructured, one exact ranking across all selected matrices.
    case global
    /// Semi-structured: in every group of `m` consecutive input columns of each row, prune the
    /// `n` lowest — at most m − n nonzeros remain. `nm:2:4` prunes 2 of every 4 (the "2:4
    /// sparsity" of Wanda/SparseGPT/NVIDIA, which *keeps* 2 of 4: 50%).
    case nm(n: Int, m: Int)
    /// Structured: whole MLP neurons, ranked across all selected layers.
    case neurons
    /// Structured: whole attention heads, ranked across all selected layers.
    case heads

    /// Parses `row|layer|global|nm:N:M|N:M|neurons|heads`.
    public init(parsing s: String) throws {
        switch s {
        case "row": self = .row
        case "layer": self = .layer
        case "global": self = .global
        case "neurons": self = .neurons
        case "heads": self = .heads
        default:
            var parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            if parts.first == "nm" { parts.removeFirst() }
            guard parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]) else {
                throw PruneError.invalidArgument(option: "scheme", reason: "'\(QuotedName.safe(s))' is not one of row, layer, global, nm:N:M, neurons, heads")
            }
            guard m >= 2, m <= 256 else {
                throw PruneError.invalidArgument(option: "scheme", reason: "'\(QuotedName.safe(s))': M must be in 2...256")
            }
            guard n >= 1, n < m else {
                throw PruneError.invalidArgument(option: "scheme", reason: "'\(QuotedName.safe(s))': N must satisfy 1 ≤ N < M (N = pruned per group of M)")
            }
            self = .nm(n: n, m: m)
        }
    }

    public var description: String {
        switch self {
        case .row: return "row"
        case .layer: return "layer"
        case .global: return "global"
        case .nm(let n, let m): return "nm:\(n):\(m)"
        case .neurons: return "neurons"
        case .heads: return "heads"
        }
    }

    public var isStructured: Bool { self == .neurons || self == .heads }

    /// compressed-tensors `sparsity_structure`: "N':M" counts *kept* values per group.
    public var sparsityStructure: String {
        if case .nm(let n, let m) = self { return "\(m - n):\(m)" }
        return "unstructured"
    }
}

/// How much to prune: a fraction of the candidates, or an absolute count
/// (weights for unstructured schemes, neurons/heads for structured ones).
public enum PruneAmount: Equatable, Sendable {
    case fraction(Double)
    case count(Int)
}

public struct PruneSpec: Sendable {
    public var scheme: PruneScheme
    /// nil only for `nm` (whose sparsity is N/M by construction).
    public var amount: PruneAmount?
    public var rank: RankMode
    /// Regex searched (not anchored) in HF tensor names; nil = every decoder linear layer.
    public var layers: String?

    /// Validates everything that can be checked without a model.
    public init(scheme: PruneScheme, amount: PruneAmount?, rank: RankMode = .abs, layers: String? = nil) throws {
        switch amount {
        case .fraction(let s)?:
            guard s.isFinite, s >= 0, s < 1 else {
                throw PruneError.invalidArgument(option: "sparsity", reason: "\(s) is outside [0, 1)")
            }
            if case .nm(let n, let m) = scheme, abs(s - Double(n) / Double(m)) > 1e-9 {
                throw PruneError.invalidArgument(option: "sparsity",
                    reason: "scheme \(scheme) fixes the sparsity at \(n)/\(m); omit --sparsity or pass \(Double(n) / Double(m))")
            }
        case .count(let c)?:
            guard c >= 0 else { throw PruneError.invalidArgument(option: "count", reason: "\(c) is negative") }
            if case .nm = scheme {
                throw PruneError.invalidArgument(option: "count", reason: "scheme \(scheme) fixes the sparsity; --count does not apply")
            }
        case nil:
            if case .nm = scheme {} else {
                throw PruneError.invalidArgument(option: "sparsity", reason: "one of --sparsity or --count is required")
            }
        }
        if let layers { _ = try PruneSpec.compile(layers) }
        self.scheme = scheme; self.amount = amount; self.rank = rank; self.layers = layers
    }

    /// The compiled `--layers` regex (validated in `init`).
    public var layersRegex: NSRegularExpression? { layers.flatMap { try? PruneSpec.compile($0) } }

    static func compile(_ pattern: String) throws -> NSRegularExpression {
        do { return try NSRegularExpression(pattern: pattern) } catch {
            throw PruneError.invalidArgument(option: "layers", reason: "'\(QuotedName.safe(pattern))' is not a valid regular expression")
        }
    }

    /// Number of the `total` candidates to prune: floor(total·s) for a fraction, the count itself
    /// otherwise. A 1e-9 slack absorbs binary rounding (0.29·100 = 28.999… → 29, where Python's
    /// int() would give 28).
    public static func units(of total: Int, fraction s: Double) -> Int {
        min(total, Int((Double(total) * s + 1e-9).rounded(.down)))
    }
}

// MARK: - Errors

public enum PruneError: LocalizedError, Equatable {
    case invalidArgument(option: String, reason: String)
    case noLayersMatched(pattern: String, examples: [String])
    case missingScore(tensor: String, file: String)
    case unknownScoreTensor(tensor: String, file: String)
    case scoreShapeMismatch(tensor: String, file: String, expected: [Int], found: [Int])
    case nonFiniteScore(tensor: String, file: String, index: Int)
    case mixedUnitScores(missing: String, file: String)
    case countTooLarge(count: Int, available: Int, unit: String)
    case columnsNotMultiple(tensor: String, cols: Int, m: Int)
    case methodUnavailable(method: String, reason: String)
    case maskMismatch(tensor: String, reason: String)

    /// Errors caused by the command line itself (the CLI maps these to exit 64).
    public var isUsageError: Bool {
        if case .invalidArgument = self { return true }
        return false
    }

    public var errorDescription: String? {
        switch self {
        case .invalidArgument(let o, let r): return "invalid --\(o): \(r)"
        case .noLayersMatched(let p, let ex):
            return "--layers '\(QuotedName.safe(p))' matches no decoder linear weight (names look like: \(ex.prefix(4).joined(separator: ", ")))"
        case .missingScore(let t, let f): return "\(f): no score tensor '\(QuotedName.safe(t))'"
        case .unknownScoreTensor(let t, let f):
            return "\(f): score tensor '\(QuotedName.safe(t))' does not belong to this model (scores from another model?)"
        case .scoreShapeMismatch(let t, let f, let e, let s):
            return "\(f): score tensor '\(QuotedName.safe(t))' has shape \(s) but the model's tensor has shape \(e) (scores from another model?)"
        case .nonFiniteScore(let t, let f, let i): return "\(f): score tensor '\(QuotedName.safe(t))' holds a NaN at flat index \(i)"
        case .mixedUnitScores(let m, let f):
            return "\(f): some layers have unit score tensors and '\(QuotedName.safe(m))' does not; provide them for all selected layers or for none"
        case .countTooLarge(let c, let a, let u): return "--count \(c) exceeds the \(a) \(u) available for pruning"
        case .columnsNotMultiple(let t, let c, let m):
            return "'\(QuotedName.safe(t))' has \(c) input columns, not a multiple of M = \(m); exclude it with --layers"
        case .methodUnavailable(let m, let r): return "--method \(m) is not available: \(r)"
        case .maskMismatch(let t, let r): return "mask tensor '\(QuotedName.safe(t))': \(r)"
        }
    }
}
