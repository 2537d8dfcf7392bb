import Foundation
import Tokenize
import Transformer

// The errors of `workbench quantize` and `workbench faults`. Both encode weights in ggml storage types, take a type
// name from a flag and read per-weight score files, so they shared look-alike checks (a type name, a range) with two
// enums and two copies of the type list; one enum gives each check one case and one message. A usage error (a
// flag's value) names the flag and exits 64; the others name the tensor or file and exit 1.

public enum QuantizationError: Error, LocalizedError, Equatable {
    /// `flag` (--types, --storage) named a type the codec cannot write.
    case unknownType(flag: String, value: String)
    /// --bits-per-weight outside [cheapest, dearest] of the given types.
    case budgetOutOfRange(bits: Double, min: Double, max: Double)
    /// --prune-nonpositive without signed scores.
    case pruneNeedsScores
    /// --ber outside (0, 1).
    case berOutOfRange(Double)
    /// --protect-fraction outside [0, 1].
    case fractionOutOfRange(Double)
    /// A score in `file` whose shape is not the model's weight's (a score file for another model).
    case scoreShape(file: String, tensor: String, expected: [Int], found: [Int])
    /// `file` holds no score for any weight of the model.
    case noScoresForModel(file: String)
    /// A linear's rows are not a whole number of storage blocks.
    case rowNotBlocked(tensor: String, inDim: Int, block: Int)
    /// More decoder weights than the protection ranking's 32-bit indices address.
    case tooManyWeights(Int)
    /// The model has no decoder linear weights to store.
    case noWeights

    public var errorDescription: String? {
        switch self {
        case .unknownType(let flag, let v):
            return "\(flag): '\(QuotedName.safe(v))' is not one of " + GGMLBlockCodec.types.map(\.name).map { $0.lowercased() }.joined(separator: ", ")
        case .budgetOutOfRange(let b, let lo, let hi): return "--bits-per-weight \(b) is outside what the types can reach (\(lo) … \(hi))"
        case .pruneNeedsScores: return "--prune-nonpositive needs signed per-weight scores (--scores)"
        case .berOutOfRange(let p): return "--ber \(p) is outside (0, 1): a bit error rate is a probability strictly between 0 and 1"
        case .fractionOutOfRange(let f): return "--protect-fraction \(f) is outside [0, 1]"
        case .scoreShape(let file, let t, let e, let f):
            return "\(file): score '\(QuotedName.safe(t))' has shape \(f), the model's weight has \(e) (a score file for another model?)"
        case .noScoresForModel(let file): return "\(file) holds no score for any weight of this model (a score file for another model?)"
        case .rowNotBlocked(let t, let n, let b): return "\(t): rows of \(n) weights are not a multiple of the storage block (\(b))"
        case .tooManyWeights(let n): return "\(n) decoder weights: more than the 2³² the protection ranking indexes"
        case .noWeights: return "the model has no decoder linear weights"
        }
    }

    /// A flag's value is wrong (exit 64), not the model or a file (exit 1).
    public var isUsageError: Bool {
        switch self {
        case .unknownType, .budgetOutOfRange, .pruneNeedsScores, .berOutOfRange, .fractionOutOfRange: return true
        case .scoreShape, .noScoresForModel, .rowNotBlocked, .tooManyWeights, .noWeights: return false
        }
    }

    /// Checks a bit error rate (0 < p < 1).
    public static func checkBER(_ p: Double) throws { guard p > 0, p < 1, p.isFinite else { throw QuantizationError.berOutOfRange(p) } }
    /// Checks a protected fraction (0 ≤ f ≤ 1).
    public static func checkFraction(_ f: Double) throws { guard f >= 0, f <= 1, f.isFinite else { throw QuantizationError.fractionOutOfRange(f) } }

    /// Storage types by their flag spelling (f32, f16, bf16, q8_0, q4_1, q4_0), comma-separated; `flag` names the option in errors.
    public static func parseTypes(_ s: String, flag: String) throws -> [GGMLType] {
        try s.split(separator: ",", omittingEmptySubsequences: false).map { p in
            let name = p.trimmingCharacters(in: .whitespaces).lowercased()
            guard let t = GGMLBlockCodec.types.first(where: { $0.name.lowercased() == name }) else {
                throw QuantizationError.unknownType(flag: flag, value: String(p))
            }
            return t
        }
    }
}
