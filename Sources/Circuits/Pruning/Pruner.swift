import Foundation
import Transformer

// MARK: - Scores → mask
//
// `Pruner.mask` turns a score map into a keep-mask under one scheme; it never
// touches the model's weights (apply the mask with `PruneMask.apply`). Every
// scheme is exact and deterministic: ties are broken by position, lower flat
// index first (within a row: lower column; across tensors: model order).

public enum Pruner {

    // MARK: - Layer selection

    /// Decoder linear layers (never embeddings or lm_head) whose HF weight name the
    /// regex finds a match in (unanchored search, like Python's re.search); all when nil.
    public static func targets(_ model: Model, layers regex: NSRegularExpression?) throws -> [Linear] {
        let all = model.linears
        guard let regex else { return all }
        let picked = all.filter { matches(regex, $0.name) }
        guard !picked.isEmpty else {
            throw PruneError.noLayersMatched(pattern: regex.pattern, examples: Array(all.prefix(7).map(\.name)))
        }
        return picked
    }

    static func matches(_ regex: NSRegularExpression, _ s: String) -> Bool {
        regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    // MARK: - Entry point

    /// Computes the keep-mask for `spec` from `scores`. Validates the score map against the model.
    public static func mask(_ model: Model, scores: ScoreMap, spec: PruneSpec) throws -> PruneMask {
        try scores.validate(against: model)
        switch spec.scheme {
        case .neurons: return try StructuredPruner.neurons(model, scores: scores, spec: spec)
        case .heads: return try StructuredPruner.heads(model, scores: scores, spec: spec)
        default: break
        }
        let linears = try targets(model, layers: spec.layersRegex)
        let scoreArrays = try linears.map { try scores.weightScores($0) }
        let total = linears.reduce(0) { $0 + $1.weight.count }
        var masks: [TensorMask]
        switch spec.scheme {
        case .row, .layer, .nm:
            try checkColumns(linears, spec.scheme)
            let s = try fraction(spec, total: total)
            masks = zip(linears, scoreArrays).map { matrixMask($0, $1, scheme: spec.scheme, fraction: s, rank: spec.rank) }
        case .global:
            let k: Int
            switch spec.amount {
            case .count(let c)?:
                guard c <= total else { throw PruneError.countTooLarge(count: c, available: total, unit: "weights") }
                k = c
            case .fraction(let s)?: k = PruneSpec.units(of: total, fraction: s)
            case nil: k = 0
            }
            let keeps = withBuffers(scoreArrays) { Selection.lowestMasks($0, k: k, rank: spec.rank) }
            masks = zip(linears, keeps).map { TensorMask(name: $0.name, shape: [$0.outDim, $0.inDim], keep: $1) }
        case .neurons, .heads:
            masks = []
        }
        return PruneMask(tensors: masks)
    }

    // MARK: - Per-matrix schemes

    /// Whether each matrix's mask depends on its own scores alone (row, layer, N:M): then the
    /// matrices can be decided one layer at a time (sequential Wanda) with the same result.
    public static func isPerMatrix(_ s: PruneScheme) -> Bool {
        switch s { case .row, .layer, .nm: return true; case .global, .neurons, .heads: return false }
    }

    /// The fraction a per-matrix scheme prunes: the given one, or count / total weights of the targets.
    static func fraction(_ spec: PruneSpec, total: Int) throws -> Double {
        switch spec.amount {
        case .fraction(let s)?: return s
        case .count(let c)?:
            guard c <= total else { throw PruneError.countTooLarge(count: c, available: total, unit: "weights") }
            return total == 0 ? 0 : Double(c) / Double(total)
        case nil: return 0
        }
    }

    /// N:M needs every target's column count to be a multiple of M.
    static func checkColumns(_ linears: [Linear], _ scheme: PruneScheme) throws {
        if case .nm(_, let m) = scheme, let bad = linears.first(where: { $0.inDim % m != 0 }) {
            throw PruneError.columnsNotMultiple(tensor: bad.name, cols: bad.inDim, m: m)
        }
    }

    /// The mask of one matrix under a per-matrix scheme (`isPerMatrix`).
    static func matrixMask(_ l: Linear, _ sc: [Float], scheme: PruneScheme, fraction s: Double, rank: RankMode) -> TensorMask {
        switch scheme {
        case .row: return rowMask(l, sc, k: PruneSpec.units(of: l.inDim, fraction: s), rank: rank)
        case .nm(let n, let m): return nmMask(l, sc, n: n, m: m, rank: rank)
        default:
            precondition(scheme == .layer, "matrixMask: \(scheme) is not a per-matrix scheme")
            let keep = sc.withUnsafeBufferPointer {
                Selection.lowestMasks([$0], k: PruneSpec.units(of: sc.count, fraction: s), rank: rank)[0]
            }
            return TensorMask(name: l.name, shape: [l.outDim, l.inDim], keep: keep)
        }
    }

    // MARK: - Per-row and N:M

    /// Prunes exactly `k` lowest scores in every row (introselect per row, rows split over 2 workers).
    static func rowMask(_ l: Linear, _ scores: [Float], k: Int, rank: RankMode) -> TensorMask {
        let rows = l.outDim, cols = l.inDim
        var keep = [UInt8](repeating: 1, count: rows * cols)
        if k > 0 {
            keep.withUnsafeMutableBufferPointer { kp in
                scores.withUnsafeBufferPointer { sp in
                    let workers = rows * cols >= 1 << 15 ? 2 : 1
                    DispatchQueue.concurrentPerform(iterations: workers) { w in
                        let keys = UnsafeMutablePointer<UInt32>.allocate(capacity: cols)
                        let scratch = UnsafeMutablePointer<UInt32>.allocate(capacity: cols)
                        defer { keys.deallocate(); scratch.deallocate() }
                        for r in (rows * w / workers)..<(rows * (w + 1) / workers) {
                            let base = r * cols
                            Selection.markLowest(sp.baseAddress! + base, count: cols, k: k, rank: rank,
                                                 keep: kp.baseAddress! + base, keys: keys, scratch: scratch)
                        }
                    }
                }
            }
        }
        return TensorMask(name: l.name, shape: [rows, cols], keep: keep)
    }

    /// In every group of `m` consecutive input columns of each row, prunes the `n` lowest
    /// (insertion sort of the group's composite keys; rows split over 2 workers).
    static func nmMask(_ l: Linear, _ scores: [Float], n: Int, m: Int, rank: RankMode) -> TensorMask {
        let rows = l.outDim, cols = l.inDim
        var keep = [UInt8](repeating: 1, count: rows * cols)
        keep.withUnsafeMutableBufferPointer { kp in
            scores.withUnsafeBufferPointer { sp in
                let workers = rows * cols >= 1 << 15 ? 2 : 1
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    let g = UnsafeMutablePointer<UInt64>.allocate(capacity: m)
                    defer { g.deallocate() }
                    for r in (rows * w / workers)..<(rows * (w + 1) / workers) {
                        var c0 = 0
                        while c0 < cols {
                            let base = r * cols + c0
                            for i in 0..<m {                      // insertion sort, m ≤ 256
                                let v = Selection.composite(sp[base + i], index: i, rank)
                                var j = i - 1
                                while j >= 0 && g[j] > v { g[j + 1] = g[j]; j -= 1 }
                                g[j + 1] = v
                            }
                            for i in 0..<n { kp[base + Int(g[i] & 0xFFFF_FFFF)] = 0 }
                            c0 += m
                        }
                    }
                }
            }
        }
        return TensorMask(name: l.name, shape: [rows, cols], keep: keep)
    }

    /// Runs `body` with stable buffer pointers to all arrays (nested, so each stays valid).
    static func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) -> R) -> R {
        func go(_ i: Int, _ acc: [UnsafeBufferPointer<Float>]) -> R {
            if i == arrays.count { return body(acc) }
            return arrays[i].withUnsafeBufferPointer { go(i + 1, acc + [$0]) }
        }
        return go(0, [])
    }
}

// MARK: - Structured schemes

enum StructuredPruner {

    /// Units per eligible block, ranked globally; `count` is in units, a fraction is of all eligible units.
    static func unitCount(_ spec: PruneSpec, available: Int, unit: String) throws -> Int {
        switch spec.amount {
        case .count(let c)?:
            guard c <= available else { throw PruneError.countTooLarge(count: c, available: available, unit: unit) }
            return c
        case .fraction(let s)?: return PruneSpec.units(of: available, fraction: s)
        case nil: return 0
        }
    }

    /// Blocks whose unit tensor name or any of `names(block)` matches the regex (all when nil).
    static func eligible(_ model: Model, _ regex: NSRegularExpression?, unitName: (Block) -> String,
                         names: (Block) -> [String]) throws -> [Block] {
        guard let regex else { return model.blocks }
        let picked = model.blocks.filter { b in ([unitName(b)] + names(b)).contains { Pruner.matches(regex, $0) } }
        guard !picked.isEmpty else {
            throw PruneError.noLayersMatched(pattern: regex.pattern, examples: model.blocks.prefix(1).flatMap { [unitName($0)] + names($0) })
        }
        return picked
    }

    /// MLP neurons: Llama zeroes gate row j, up row j (and their bias entries) and down column j;
    /// OPT zeroes fc1 row j, fc1 bias j and fc2 column j. The neuron then outputs exactly 0.
    static func neurons(_ model: Model, scores: ScoreMap, spec: PruneSpec) throws -> PruneMask {
        let blocks = try eligible(model, spec.layersRegex, unitName: { ScoreNames.neurons(model, layer: $0.index) },
                                  names: { b in [b.gate, b.up, b.down].compactMap { $0?.name } })
        let source = try scores.unitSource(blocks.map { ScoreNames.neurons(model, layer: $0.index) })
        let dFF = model.config.dFF
        var flat: [Float] = []
        for b in blocks { flat += try scores.neuronScores(model, block: b, source: source) }
        let k = try unitCount(spec, available: flat.count, unit: "neurons")
        let picked = Selection.lowestIndices(flat, k: k, rank: spec.rank)
        var masks: [TensorMask] = [], units: [PrunedUnit] = []
        var byBlock = [[Int]](repeating: [], count: blocks.count)
        for i in picked { byBlock[i / dFF].append(i % dFF) }
        for (bi, b) in blocks.enumerated() {
            for l in [b.gate, b.up].compactMap({ $0 }) {
                var w = TensorMask(allKept: l.name, shape: [l.outDim, l.inDim])
                for j in byBlock[bi] { for c in 0..<l.inDim { w.keep[j * l.inDim + c] = 0 } }
                masks.append(w)
                if l.bias != nil {
                    var bm = TensorMask(allKept: l.biasName, shape: [l.outDim])
                    for j in byBlock[bi] { bm.keep[j] = 0 }
                    masks.append(bm)
                }
            }
            var d = TensorMask(allKept: b.down.name, shape: [b.down.outDim, b.down.inDim])
            for j in byBlock[bi] { for r in 0..<b.down.outDim { d.keep[r * dFF + j] = 0 } }
            masks.append(d)
            units += byBlock[bi].map { PrunedUnit(kind: .neuron, layer: b.index, index: $0, score: flat[bi * dFF + $0]) }
        }
        return PruneMask(tensors: masks, units: units)
    }

    /// Attention heads: zero the head's input columns of o_proj/out_proj, so its output
    /// (its slice of z) never reaches the residual stream. q/k/v are left alone: with GQA
    /// they are shared by other heads, and the o_proj columns alone remove the head exactly.
    static func heads(_ model: Model, scores: ScoreMap, spec: PruneSpec) throws -> PruneMask {
        let c = model.config
        let blocks = try eligible(model, spec.layersRegex, unitName: { ScoreNames.heads(model, layer: $0.index) },
                                  names: { b in [b.q.name, b.k.name, b.v.name, b.o.name] })
        let source = try scores.unitSource(blocks.map { ScoreNames.heads(model, layer: $0.index) })
        var flat: [Float] = []
        for b in blocks { flat += try scores.headScores(model, block: b, source: source) }
        let k = try unitCount(spec, available: flat.count, unit: "heads")
        let picked = Selection.lowestIndices(flat, k: k, rank: spec.rank)
        var byBlock = [[Int]](repeating: [], count: blocks.count)
        for i in picked { byBlock[i / c.nHeads].append(i % c.nHeads) }
        var masks: [TensorMask] = [], units: [PrunedUnit] = []
        for (bi, b) in blocks.enumerated() {
            var o = TensorMask(allKept: b.o.name, shape: [b.o.outDim, b.o.inDim])
            for h in byBlock[bi] {
                for r in 0..<b.o.outDim { for j in (h * c.headDim)..<((h + 1) * c.headDim) { o.keep[r * b.o.inDim + j] = 0 } }
            }
            masks.append(o)
            units += byBlock[bi].map { PrunedUnit(kind: .head, layer: b.index, index: $0, score: flat[bi * c.nHeads + $0]) }
        }
        return PruneMask(tensors: masks, units: units)
    }
}
