import Foundation
import Tokenize
import Transformer

// MARK: - Ranking the candidate components once
//
// Every candidate (a weight, an MLP neuron or a head in a layer the --layers
// regex selects) gets its rank inside its ranking group, computed once; a
// circuit of nominal size k then keeps, in each group, the elements whose rank
// is below the group's quota. So a curve of many sizes costs one sort, and
// each mask is one O(N) pass.
// - global: one group (every candidate); quota = k.
// - row: one group per output row of each weight matrix (weights) or per layer
//   (neurons, heads); quota = round(k · n_group / N), so every group keeps the
//   same fraction and the actual kept count can differ from k by rounding
//   (the actual count is what is reported).
// Components outside the selected layers are always kept.

public enum CircuitScheme: String, Sendable, CaseIterable {
    case global, row
}

public enum CircuitError: LocalizedError, Equatable {
    case emptyLayerRegex
    case badLayerRegex(String)
    case noLayersMatch(String)
    case missingScores(String)
    /// `--ablation patch` and a prompt (file:line) without a corrupted counterpart.
    case patchNeedsCorrupted(at: String)
    /// f(all kept) < threshold: no circuit can reach it.
    case fullModelMisses(threshold: Double, f: Double)
    /// `--seeds N` needs at least 2 reference prompts per part.
    case tooFewPromptsForSeeds(prompts: Int, seeds: Int)

    public var errorDescription: String? {
        switch self {
        case .emptyLayerRegex: return "--layers is empty (give a regular expression, e.g. 'layers\\.(1[0-9])\\.')"
        case .badLayerRegex(let r): return "--layers '\(QuotedName.safe(r))' is not a valid regular expression"
        case .noLayersMatch(let r): return "--layers '\(QuotedName.safe(r))' matches no component tensor of this model"
        case .missingScores(let n): return "the attribution produced no scores for \(QuotedName.safe(n))"
        case .patchNeedsCorrupted(let at): return "--ablation patch needs a 'corrupted' prompt on every line; \(at) has none"
        case .fullModelMisses(let t, let f):
            return String(format: "the full model itself reaches f = %.4f on the reference set, below --threshold %.4g: no circuit can reach it", f, t)
        case .tooFewPromptsForSeeds(let p, let n):
            return "--seeds \(n) cuts the reference file into \(n) disjoint parts, but its \(p) prompts give fewer than 2 per part"
        }
    }
}

public struct CircuitCandidates {
    /// One candidate tensor: an HF weight name or a unit tensor name (`….mlp.neurons`, `….self_attn.heads`).
    public struct Entry {
        public var name: String
        public var layer: Int
        public var shape: [Int]
        /// [count] the component scores (already signed or not as the method produced them).
        public var scores: [Float]
        /// [count] rank inside the ranking group (0 = best).
        var ranks: [Int32]
        /// Elements per ranking group (a row of `shape` for weights/row, else the whole tensor or everything).
        var groupSize: Int
    }

    public let granularity: Granularity
    public let scheme: CircuitScheme
    public let rank: RankMode
    public private(set) var entries: [Entry]
    public let total: Int
    let config: ModelConfig

    /// `scores[name]` for every tensor `names` lists (heads/neurons: the unit tensor names, layer-ordered).
    public init(model: Model, granularity: Granularity, scheme: CircuitScheme, rank: RankMode, layers: String?,
                scores: (String) throws -> [Float]) throws {
        self.granularity = granularity; self.scheme = scheme; self.rank = rank; self.config = model.config
        let regex: NSRegularExpression?
        if let layers {
            guard !layers.isEmpty else { throw CircuitError.emptyLayerRegex }
            guard let r = try? NSRegularExpression(pattern: layers) else { throw CircuitError.badLayerRegex(layers) }
            regex = r
        } else { regex = nil }
        func selected(_ name: String) -> Bool {
            guard let regex else { return true }
            return regex.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
        }
        var list: [Entry] = []
        let c = model.config
        switch granularity {
        case .weights:
            for lin in model.linears where selected(lin.name) {
                let layer = model.blocks.firstIndex { b in b.linears.contains { $0 === lin } } ?? -1
                list.append(Entry(name: lin.name, layer: layer, shape: [lin.outDim, lin.inDim], scores: try scores(lin.name),
                                  ranks: [], groupSize: lin.inDim))
            }
        case .neurons, .heads:
            for l in 0..<c.nLayers {
                let name = granularity == .neurons ? ScoreNames.neurons(model, layer: l) : ScoreNames.heads(model, layer: l)
                guard selected(name) else { continue }
                let n = granularity == .neurons ? c.dFF : c.nHeads
                list.append(Entry(name: name, layer: l, shape: [n], scores: try scores(name), ranks: [], groupSize: n))
            }
        }
        if list.isEmpty, let layers { throw CircuitError.noLayersMatch(layers) }
        for e in list where e.scores.count != e.shape.reduce(1, *) { throw CircuitError.missingScores(e.name) }
        total = list.reduce(0) { $0 + $1.scores.count }
        entries = list
        computeRanks()
    }

    /// Descending score order; ties: lower tensor, then lower index first (deterministic).
    private mutating func computeRanks() {
        func order(_ keys: inout [UInt64]) { keys.sort() }
        // Composite: (inverted key) << 32 | position, sorted ascending = best first.
        func composite(_ x: Float, _ pos: Int) -> UInt64 { (UInt64(UInt32.max - Selection.key(x, rank)) << 32) | UInt64(pos) }
        if scheme == .global {
            var keys: [UInt64] = []
            keys.reserveCapacity(total)
            var pos = 0
            for e in entries { for s in e.scores { keys.append(composite(s, pos)); pos += 1 } }
            order(&keys)
            var rankOf = [Int32](repeating: 0, count: total)
            for (r, k) in keys.enumerated() { rankOf[Int(k & 0xFFFF_FFFF)] = Int32(r) }
            var start = 0
            for i in entries.indices {
                let n = entries[i].scores.count
                entries[i].ranks = Array(rankOf[start..<(start + n)])
                entries[i].groupSize = total
                start += n
            }
        } else {
            for i in entries.indices {
                let g = entries[i].groupSize, s = entries[i].scores
                var ranks = [Int32](repeating: 0, count: s.count)
                var keys = [UInt64](repeating: 0, count: g)
                for r0 in stride(from: 0, to: s.count, by: g) {
                    for j in 0..<g { keys[j] = composite(s[r0 + j], j) }
                    keys.sort()
                    for (r, k) in keys.enumerated() { ranks[r0 + Int(k & 0xFFFF_FFFF)] = Int32(r) }
                }
                entries[i].ranks = ranks
            }
        }
    }

    /// Elements a group of `n` keeps at nominal size k.
    func quota(_ k: Int, groupSize n: Int) -> Int {
        scheme == .global ? k : min(n, Int((Double(k) * Double(n) / Double(max(total, 1))).rounded()))
    }

    /// Keep flags per candidate tensor at nominal size k.
    public func keep(_ k: Int) -> [[Bool]] {
        entries.map { e in
            let q = Int32(clamping: quota(k, groupSize: e.groupSize))
            return e.ranks.map { $0 < q }
        }
    }

    /// Kept heads or neurons at nominal size k with their scores, best first (ties: layer, then index); empty for weights.
    public func keptUnits(_ k: Int) -> [(unit: CircuitUnit, score: Float)] {
        guard granularity != .weights else { return [] }
        var out: [(unit: CircuitUnit, score: Float)] = []
        for (e, f) in zip(entries, keep(k)) {
            for (i, on) in f.enumerated() where on { out.append((CircuitUnit(layer: e.layer, index: i), e.scores[i])) }
        }
        return out.sorted { $0.score != $1.score ? $0.score > $1.score : $0.unit < $1.unit }
    }

    /// The number of candidates kept at nominal size k.
    public func keptCount(_ k: Int) -> Int { keep(k).reduce(0) { $0 + $1.lazy.filter { $0 }.count } }

    /// The ablation mask at nominal size k (non-candidates kept).
    public func mask(_ k: Int) -> CircuitMask {
        let flags = keep(k)
        switch granularity {
        case .weights:
            var d: [String: [UInt8]] = [:]
            for (e, f) in zip(entries, flags) { d[e.name] = f.map { $0 ? 1 : 0 } }
            return .weights(d)
        case .neurons, .heads:
            let n = granularity == .neurons ? config.dFF : config.nHeads
            var rows = [[Bool]](repeating: [Bool](repeating: true, count: n), count: config.nLayers)
            for (e, f) in zip(entries, flags) { rows[e.layer] = f }
            return granularity == .neurons ? .neurons(rows) : .heads(rows)
        }
    }
}

// MARK: - Seeded random scores (the floor every method must beat)

public enum RandomScores {
    /// Uniform [0, 1) scores in tensor order from SplitMix64(seed) (`SeededRNG`): a draw is fixed by the seed.
    public static func make(_ shapes: [(name: String, count: Int)], seed: UInt64) -> [String: [Float]] {
        var rng = SeededRNG(seed: seed)
        var out: [String: [Float]] = [:]
        for (name, n) in shapes { out[name] = (0..<n).map { _ in Float(rng.uniform()) } }
        return out
    }
}
