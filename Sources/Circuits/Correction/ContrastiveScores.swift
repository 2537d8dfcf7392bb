import Foundation
import Tokenize
import Transformer

// MARK: - Contrastive relevance (SparC³ §3.4): R̄_diff = R̄_general − R̄_undesired
//
// Components most relevant to the undesired behaviour and least to general behaviour get the most
// negative difference; pruning removes the lowest first (rank `signed`). Both means are over samples
// (Eq. 1), computed by the same attribution engine `attribute` uses:
//   general:   each prompt explains its next tokens (what the model should keep doing);
//   undesired: each prompt explains the model's *own* greedy continuation of it (the behaviour itself).
// The two sets are not rescaled against each other: the published definition subtracts raw means.

/// How components are removed.
public enum CorrectionGranularity: String, Sendable, CaseIterable, Codable {
    case neurons, heads, weights

    public var scheme: PruneScheme {
        switch self {
        case .neurons: return .neurons
        case .heads: return .heads
        case .weights: return .global
        }
    }
    /// What a `--count` counts.
    public var unit: String { self == .weights ? "weights" : rawValue }
}

/// Scoring methods for correction (`magnitude` reads no data, so its difference is identically zero).
public enum CorrectionMethod: String, Sendable, CaseIterable, Codable {
    case lrp, gradient, wanda, activation, random

    var attribution: AttributionMethod? { AttributionMethod(rawValue: rawValue) }
}

public struct ContrastiveScores {
    /// R̄_general − R̄_undesired per tensor (weights and unit tensors) — or random scores for `random`.
    public var difference: ScoreMap
    /// The two means (nil for `random`), kept to report the removed components' parts.
    public var general: ScoreMap?
    public var undesired: ScoreMap?
    public var generalSeconds = 0.0, undesiredSeconds = 0.0

    /// Element-wise a − b over the tensors both maps hold (same shapes, or a typed error naming the tensor).
    public static func subtract(_ a: ScoreMap, _ b: ScoreMap, source: String) throws -> ScoreMap {
        var out: [String: Tensor] = [:]
        for (name, ta) in a.tensors {
            guard let tb = b.tensors[name] else { continue }
            guard ta.shape == tb.shape else {
                throw PruneError.scoreShapeMismatch(tensor: name, file: b.source, expected: ta.shape, found: tb.shape)
            }
            var d = [Float](repeating: 0, count: ta.data.count)
            ta.data.withUnsafeBufferPointer { x in tb.data.withUnsafeBufferPointer { y in for i in d.indices { d[i] = x[i] - y[i] } } }
            out[name] = Tensor(shape: ta.shape, data: d)
        }
        return ScoreMap(tensors: out, source: source)
    }

    /// Seeded uniform scores for every weight and unit tensor (the floor any method must beat).
    public static func random(_ model: Model, seed: UInt64) -> ScoreMap {
        let c = model.config
        var shapes: [(String, Int)] = model.linears.map { ($0.name, $0.weight.count) }
        var tensorShapes: [String: [Int]] = Dictionary(uniqueKeysWithValues: model.linears.map { ($0.name, [$0.outDim, $0.inDim]) })
        for l in 0..<c.nLayers {
            shapes.append((ScoreNames.neurons(model, layer: l), c.dFF)); tensorShapes[ScoreNames.neurons(model, layer: l)] = [c.dFF]
            shapes.append((ScoreNames.heads(model, layer: l), c.nHeads)); tensorShapes[ScoreNames.heads(model, layer: l)] = [c.nHeads]
        }
        let r = RandomScores.make(shapes, seed: seed)
        return ScoreMap(tensors: r.reduce(into: [:]) { $0[$1.key] = Tensor(shape: tensorShapes[$1.key]!, data: $1.value) },
                        source: "random (seed \(seed))")
    }
}
