import Foundation
import Transformer

// MARK: - Discovery: attribute once, rank, curve, bisect
//
// 1. Attribution explains each prompt's logit difference at its last position:
//    y = mean_a logit(a) − mean_d logit(d) (one answer and one distractor, as
//    IOI: logit(IO) − logit(S), resolved through `attribute`'s target grammar
//    "-1:A-B"); with no distractor y = mean logit of the answers. Linear in the
//    logits, as LRP needs (the metric's LSE is not).
// 2. Components are ranked once (`CircuitCandidates`).
// 3. m(M) is the unablated model, m(∅) the model with every candidate ablated;
//    f(k) = (m(C_k) − m(∅)) / (m(M) − m(∅)) on a log-spaced kept-fraction grid,
//    reference and held-out sets.
// 4. Bisection between the grid points around the threshold crossing on the
//    reference set (exact for heads, to 1 % of the size for neurons and
//    weights); the held-out f is measured at the size found.

public enum CircuitMethod: String, Sendable, CaseIterable {
    case lrp, gradient, wanda, activation, magnitude, random
}

public struct CircuitSettings: Sendable {
    public var method: CircuitMethod = .lrp
    public var aggregation: RelevanceAccumulator.Aggregation = .signed
    public var granularity: Granularity = .heads
    public var scheme: CircuitScheme = .global
    public var rank: RankMode = .signed
    public var layers: String? = nil
    public var ablation: AblationKind = .zero
    public var threshold: Double = 0.9
    public var seed: UInt64 = 0
    public var gridPoints: Int = 16
    /// Bisection stops once its bracket is within this fraction of its upper end (`CircuitSearch.bisect`); nil = the
    /// granularity's default: exact (to one component) for heads, 1 % for neurons and weights.
    public var bisectionTolerance: Double? = nil
    /// Heads stay exact (at most a few hundred: the last steps are cheap); neurons and weights stop at 1 % of the
    /// circuit's size, which for tens of thousands of neurons saves ~7 of ~15 masked forwards (bench --circuits).
    public var effectiveBisectionTolerance: Double { bisectionTolerance ?? (granularity == .heads ? 0 : 0.01) }
    public init() {}
}

/// One evaluated set (reference or held-out): its prompts and both ends of f.
public struct CircuitEvalSet {
    public var items: [TaskItem]
    public var patch: PatchSource?
    public var baseline: FaithfulnessBaseline
}

public struct CurvePoint: Sendable {
    public var fraction: Double
    /// Nominal size k and the actual kept count (they differ only under the row scheme).
    public var nominal: Int
    public var kept: Int
    public var reference: (f: Double, metric: Double)
    public var heldout: (f: Double, metric: Double)?
}

public struct CircuitResult {
    public var candidates: CircuitCandidates
    public var curve: [CurvePoint]
    /// The sparsest circuit with f ≥ threshold on the reference set.
    public var crossing: CurvePoint
    public var bisectionEvaluations: Int
    public var reference: CircuitEvalSet
    public var heldout: CircuitEvalSet?
    public var attributionSeconds: Double
    public var curveSeconds: Double
    /// Area under f over the kept fraction on a linear axis (trapezoids, as MIB's CPR).
    public var aucReference: Double { Self.area(curve.map { ($0.fraction, $0.reference.f) }) }
    public var aucHeldout: Double? { heldout == nil ? nil : Self.area(curve.compactMap { p in p.heldout.map { (p.fraction, $0.f) } }) }

    static func area(_ pts: [(Double, Double)]) -> Double {
        zip(pts, pts.dropFirst()).reduce(0) { $0 + ($1.1.0 - $1.0.0) * ($1.0.1 + $1.1.1) / 2 }
    }
}

public enum CircuitDiscovery {
    /// Attribution samples for a task: the logit difference at the last position (see the file comment).
    public static func samples(_ items: [TaskItem], vocab: Int) throws -> [AttributionSample] {
        try items.map { it in
            let n = it.tokens.count
            let groups: [ExplainGroup]
            if it.answerIds.count == 1, it.distractorIds.count <= 1 {
                let term = TargetTerm(position: -1, token: .id(it.answerIds[0]), contrast: it.distractorIds.first.map { .id($0) })
                groups = try TargetResolver.groups([term], fieldPrefix: "answer", length: n, promptLength: n, at: it.location,
                                                   tokenizer: nil, vocab: vocab)
            } else {
                let a = Float(1) / Float(it.answerIds.count), d = Float(1) / Float(max(it.distractorIds.count, 1))
                groups = [it.answerIds.map { ExplainTerm(position: n - 1, token: $0, coefficient: a) }
                          + it.distractorIds.map { ExplainTerm(position: n - 1, token: $0, coefficient: -d) }]
            }
            return AttributionSample(label: it.location.description, tokens: it.tokens, promptLength: n, explain: .groups(groups))
        }
    }

    /// What the attribution explains, in words (recorded with every output).
    public static let explained = "per prompt, at its last position: mean logit(answers) − mean logit(distractors) (IOI: logit(IO) − logit(S))"

    /// Scores by tensor name for `settings.method` (attribution runs once here; `attribution` fills model/data hashes).
    public static func scores(model: Model, items: [TaskItem], settings s: CircuitSettings, attribution: AttributionSettings,
                              progress: Bool = false) throws -> (String) throws -> [Float] {
        let c = model.config
        switch s.method {
        case .random:
            var shapes: [(String, Int)] = model.linears.map { ($0.name, $0.weight.count) }
            for l in 0..<c.nLayers {
                shapes.append((ScoreNames.neurons(model, layer: l), c.dFF))
                shapes.append((ScoreNames.heads(model, layer: l), c.nHeads))
            }
            let r = RandomScores.make(shapes, seed: s.seed)
            return { name in guard let v = r[name] else { throw CircuitError.missingScores(name) }; return v }
        case .magnitude:
            return try lookup(ScoreMap.magnitude(model), model)
        case .lrp, .gradient, .wanda, .activation:
            var a = attribution
            a.method = AttributionMethod(rawValue: s.method.rawValue)!
            a.absPerToken = s.aggregation == .absPerToken
            a.absPerSample = s.aggregation == .absPerSample
            // Head and neuron circuits rank units only: no per-weight relevance (every δW GEMM skipped).
            a.unitsOnly = s.granularity != .weights && (s.method == .lrp || s.method == .gradient)
            a.samples = items.count
            let smp = try samples(items, vocab: c.vocabSize)
            let r = try AttributionRunner.scores(model: model, samples: smp, settings: a, progress: progress)
            return try lookup(ScoreMap(tensors: r.tensors, source: "\(s.method.rawValue) attribution"), model)
        }
    }

    /// Weight scores by HF name; unit scores from the unit tensors when the method wrote them, else aggregated.
    static func lookup(_ map: ScoreMap, _ model: Model) throws -> (String) throws -> [Float] {
        let c = model.config
        var units: [String: [Float]] = [:]
        let nNames = (0..<c.nLayers).map { ScoreNames.neurons(model, layer: $0) }
        let hNames = (0..<c.nLayers).map { ScoreNames.heads(model, layer: $0) }
        let nSource = try map.unitSource(nNames), hSource = try map.unitSource(hNames)
        return { name in
            if let u = units[name] { return u }
            if let l = nNames.firstIndex(of: name) {
                units[name] = try map.neuronScores(model, block: model.blocks[l], source: nSource); return units[name]!
            }
            if let l = hNames.firstIndex(of: name) {
                units[name] = try map.headScores(model, block: model.blocks[l], source: hSource); return units[name]!
            }
            guard let lin = model.linear(named: name), map.tensors[name] != nil else { throw CircuitError.missingScores(name) }
            return try map.weightScores(lin)
        }
    }

    /// Measures m(M) (nothing ablated) and m(∅) (every candidate ablated) on a set.
    public static func evalSet(_ ablator: Ablator, _ items: [TaskItem], candidates: CircuitCandidates, ablation: AblationKind,
                               means: MeanActivations?) throws -> CircuitEvalSet {
        let patch = ablation == .patch ? try PatchSource.capture(ablator.model, items) : nil
        let h = HeadlineMetric.forItems(items)
        ablator.restore()
        let full = try Faithfulness.metric(ablator.model, items, h)
        try ablator.apply(candidates.mask(0), ablation: ablation, means: means, patch: patch)
        defer { ablator.restore() }
        let empty = try Faithfulness.metric(ablator.model, items, h)
        guard full != empty else { throw FaithfulnessError.degenerate(full: full, empty: empty) }
        let b = FaithfulnessBaseline(granularity: candidates.granularity, ablation: ablation, metric: h, full: full, empty: empty)
        return CircuitEvalSet(items: items, patch: patch, baseline: b)
    }

    /// Distinct sizes k on the log-spaced grid: small candidate sets round neighbouring fractions to the same k,
    /// so the grid is refined until it has `points` distinct sizes (or every size 0…total when there are fewer).
    public static func gridCounts(points: Int, total: Int) -> [Int] {
        let want = min(points, total + 1)
        let smallest = min(0.5, max(1e-4, 1 / Double(max(total, 1))))
        var p = points, ks: [Int] = []
        repeat {
            ks = Array(Set(CircuitSearch.grid(points: p, smallest: smallest).map { CircuitSearch.count(fraction: $0, total: total) })).sorted()
            p += 2
        } while ks.count < want && p < 4 * points + total
        if ks.count < want { ks = Array(0...total) }
        return ks
    }

    /// The curve and the crossing. `log` receives one line per grid point. `known` are grid points already measured
    /// (the parts of `circuit --shard`): they are taken as they are, and the bisection reuses their reference values.
    public static func search(model: Model, candidates: CircuitCandidates, reference: [TaskItem], heldout: [TaskItem]?,
                              settings s: CircuitSettings, known: [CurvePoint] = [], log: (String) -> Void = { _ in }) throws -> CircuitResult {
        let t0 = Date()
        let run = try CurveRun(model: model, candidates: candidates, reference: reference, heldout: heldout, ablation: s.ablation)
        defer { run.ablator.restore() }
        let curve = try run.curve(gridCounts(points: s.gridPoints, total: candidates.total), known: known, log: log)
        guard let last = curve.last, last.reference.f >= s.threshold else {
            throw CircuitError.fullModelMisses(threshold: s.threshold, f: curve.last?.reference.f ?? .nan)
        }
        let hiIndex = curve.firstIndex { $0.reference.f >= s.threshold }!
        let lo = hiIndex == 0 ? curve[0].nominal : curve[hiIndex - 1].nominal
        let before = run.cache.count
        let c = try CircuitSearch.bisect(lo: lo, hi: curve[hiIndex].nominal, threshold: s.threshold,
                                         relativeTolerance: s.effectiveBisectionTolerance) { try run.fRef($0).f }!
        let crossing = try run.point(c.count)
        return CircuitResult(candidates: candidates, curve: curve, crossing: crossing, bisectionEvaluations: run.cache.count - before,
                             reference: run.ref, heldout: run.held, attributionSeconds: 0, curveSeconds: Date().timeIntervalSince(t0))
    }

    /// Shard K of N of the curve (`circuit --shard K/N`): the grid points [K·G/N, (K+1)·G/N) of the G-point grid, no bisection.
    public static func curveShard(model: Model, candidates: CircuitCandidates, reference: [TaskItem], heldout: [TaskItem]?,
                                  settings s: CircuitSettings, shard: Shard, log: (String) -> Void = { _ in }) throws -> CurveShard {
        let run = try CurveRun(model: model, candidates: candidates, reference: reference, heldout: heldout, ablation: s.ablation)
        defer { run.ablator.restore() }
        let grid = gridCounts(points: s.gridPoints, total: candidates.total)
        let points = try run.curve(Array(grid[shard.range(of: grid.count)]), known: [], log: log)
        return CurveShard(grid: grid, points: points, reference: run.ref.baseline, heldout: run.held?.baseline)
    }
}

/// A shard's share of a faithfulness curve: the whole grid (nominal sizes), its points, and both sets' f-baselines.
public struct CurveShard {
    public var grid: [Int]
    public var points: [CurvePoint]
    public var reference: FaithfulnessBaseline
    public var heldout: FaithfulnessBaseline?
}

/// What one curve measurement needs: the ablator, the mean activations of a mean ablation, both evaluated sets and
/// the reference values measured so far (the bisection revisits sizes). The caller restores the ablator.
final class CurveRun {
    let candidates: CircuitCandidates
    let ablator: Ablator
    let means: MeanActivations?
    let ref: CircuitEvalSet
    let held: CircuitEvalSet?
    var cache: [Int: (f: Double, metric: Double)] = [:]

    init(model: Model, candidates: CircuitCandidates, reference: [TaskItem], heldout: [TaskItem]?, ablation: AblationKind) throws {
        self.candidates = candidates
        let a = Ablator(model: model)
        // Means over the reference set's tokens (used for the held-out set too: "mean over the reference set").
        let m = ablation == .mean ? MeanActivations.measure(model, reference.map(\.tokens)) : nil
        do {
            ref = try CircuitDiscovery.evalSet(a, reference, candidates: candidates, ablation: ablation, means: m)
            held = try heldout.map { try CircuitDiscovery.evalSet(a, $0, candidates: candidates, ablation: ablation, means: m) }
        } catch { a.restore(); throw error }
        ablator = a; means = m
    }

    func f(_ set: CircuitEvalSet, _ k: Int) throws -> (f: Double, metric: Double) {
        if k >= candidates.total { return (1, set.baseline.full) }   // nothing ablated: the full model itself
        return try Faithfulness.evaluate(ablator, set.items, mask: candidates.mask(k), baseline: set.baseline, means: means, patch: set.patch)
    }

    func fRef(_ k: Int) throws -> (f: Double, metric: Double) {
        if let c = cache[k] { return c }
        let r = try f(ref, k); cache[k] = r; return r
    }

    func point(_ k: Int) throws -> CurvePoint {
        CurvePoint(fraction: Double(candidates.keptCount(k)) / Double(candidates.total), nominal: k, kept: candidates.keptCount(k),
                   reference: try fRef(k), heldout: try held.map { try f($0, k) })
    }

    /// The points at nominal sizes `ks`, in order; a size in `known` is taken from there (its reference value cached).
    func curve(_ ks: [Int], known: [CurvePoint], log: (String) -> Void) throws -> [CurvePoint] {
        let given = Dictionary(known.map { ($0.nominal, $0) }) { a, _ in a }
        return try ks.map { k in
            let p: CurvePoint
            if let g = given[k] { p = g; cache[k] = g.reference } else { p = try point(k) }
            log(String(format: "kept %.6f (%d): f_ref %.4f  m_ref %.4f", p.fraction, p.kept, p.reference.f, p.reference.metric)
                + (p.heldout.map { String(format: "  f_heldout %.4f", $0.f) } ?? ""))
            return p
        }
    }
}
