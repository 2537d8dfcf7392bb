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
// By default the two sets are not rescaled against each other: the published definition (Eq. 7) subtracts raw
// means. That lets the set with more relevance mass decide the ranking: with signed LRP on SmolLM2 the general set
// (every next token explained) carries ~2.3× the undesired set's mass, and "most negative difference" becomes "most
// negatively relevant to ordinary text" (docs/results/correction.md). `--normalize per-set` is the named alternative:
// each set's map is divided by its total |R̄| over the components the ranking ranks, so both sets weigh the same.

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

/// How the two sets' means are scaled before the difference.
public enum CorrectionNormalization: String, Sendable, CaseIterable, Codable {
    /// Raw means (SparC³ Eq. 7 as published).
    case none
    /// R̄_set / Σ_c |R̄_set(c)| over the ranked components c (the candidates of the granularity and --layers).
    case perSet = "per-set"
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

    /// Σ |score| over the components `spec` ranks — exactly the values `Pruner.mask` would sort: the weights of the
    /// target linears (weights), or the neuron/head scores of the eligible blocks (unit tensors, or aggregated from
    /// weights when the map has none) — and how many components that is.
    public static func candidateAbsSum(_ model: Model, scores: ScoreMap, spec: PruneSpec) throws -> (total: Double, components: Int) {
        var total = 0.0, n = 0
        func add(_ v: [Float]) { for x in v { total += Double(abs(x)) }; n += v.count }
        switch spec.scheme {
        case .neurons:
            let blocks = try StructuredPruner.eligible(model, spec.layersRegex, unitName: { ScoreNames.neurons(model, layer: $0.index) },
                                                       names: { b in [b.gate, b.up, b.down].compactMap { $0?.name } })
            let source = try scores.unitSource(blocks.map { ScoreNames.neurons(model, layer: $0.index) })
            for b in blocks { add(try scores.neuronScores(model, block: b, source: source)) }
        case .heads:
            let blocks = try StructuredPruner.eligible(model, spec.layersRegex, unitName: { ScoreNames.heads(model, layer: $0.index) },
                                                       names: { b in [b.q.name, b.k.name, b.v.name, b.o.name] })
            let source = try scores.unitSource(blocks.map { ScoreNames.heads(model, layer: $0.index) })
            for b in blocks { add(try scores.headScores(model, block: b, source: source)) }
        default:
            for l in try Pruner.targets(model, layers: spec.layersRegex) { add(try scores.weightScores(l)) }
        }
        return (total, n)
    }

    /// Every tensor of `map` times `factor` (one scalar: the ranking of one set is unchanged, only its weight against
    /// the other set).
    public static func scaled(_ map: ScoreMap, by factor: Double, source: String) -> ScoreMap {
        let f = Float(factor)
        return ScoreMap(tensors: map.tensors.mapValues { Tensor(shape: $0.shape, data: $0.data.map { $0 * f }) }, source: source,
                        metadata: map.metadata)
    }

    /// `--normalize per-set`: both maps divided by their own candidate Σ|R̄| (so each sums to 1 in |·| over what is
    /// ranked). A set with no relevance on the candidates cannot be normalised: a typed error, not a division by 0.
    public static func normalizedPerSet(general g: ScoreMap, undesired u: ScoreMap, model: Model, spec: PruneSpec) throws
        -> (general: ScoreMap, undesired: ScoreMap, record: CorrectionRecord.Normalization) {
        let tg = try candidateAbsSum(model, scores: g, spec: spec), tu = try candidateAbsSum(model, scores: u, spec: spec)
        for (set, t) in [("general", tg.total), ("undesired", tu.total)] where !(t > 0 && t.isFinite) {
            throw CorrectionError.cannotNormalize(set: set, total: t)
        }
        return (scaled(g, by: 1 / tg.total, source: g.source + " / Σ|R̄| over the ranked components"),
                scaled(u, by: 1 / tu.total, source: u.source + " / Σ|R̄| over the ranked components"),
                CorrectionRecord.Normalization(mode: CorrectionNormalization.perSet.rawValue, generalTotal: tg.total,
                                               undesiredTotal: tu.total, components: tg.components))
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
