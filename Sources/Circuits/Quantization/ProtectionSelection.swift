import Foundation
import Transformer

// Which stored bits get triple modular redundancy, at the same overhead for every criterion.
//
// Budget: `fraction` of all stored decoder-weight bits are protected (stored twice more, so the
// overhead is 2·fraction of the storage). Weights are taken in descending order of the criterion
// (|relevance|, |W|, a seeded random score; ties by position); each costs its value bits, plus its
// block's scale bits (Q8_0 d; Q4_1 d and m) the first time a weight of that block is protected —
// a protected weight read through an unprotected scale would not be protected. The first weight
// that no longer fits ends the selection, so every criterion's protected bits lie within one
// weight-plus-scale of the budget (F32/F16: exactly the top ⌊fraction·N⌋ weights).

public enum ProtectionCriterion: Equatable, Sendable {
    case none, magnitude, random
    /// |score| from a score file; `label` names it in reports (the file's method: lrp, gradient, wanda…).
    case scores(label: String)

    public var name: String {
        switch self { case .none: return "none"; case .magnitude: return "magnitude"; case .random: return "random"; case .scores(let l): return l }
    }
}

public enum ProtectionSelection {
    /// Flat importance over the storage's weights (linear after linear, [out, in] row-major) for a
    /// criterion; nil for `.none`. `scores` is required for `.scores` (validated against the model
    /// first: a file for another model is a typed error naming the tensor).
    public static func importance(_ c: ProtectionCriterion, storage: FaultStorage, scores: ScoreMap? = nil, seed: UInt64 = 0) throws -> [Float]? {
        switch c {
        case .none: return nil
        case .magnitude: return storage.linears.flatMap { $0.weight.map { Swift.abs($0) } }
        case .random:
            var rng = SeededRNG(seed: seed ^ 0x5241_4E44)    // "RAND": not the fault streams
            return (0..<storage.totalWeights).map { _ in Float(rng.uniform()) }
        case .scores:
            guard let scores else { preconditionFailure("scores criterion without a score map") }
            var out: [Float] = []
            out.reserveCapacity(storage.totalWeights)
            for l in storage.linears {
                let s = try scores.weightScores(l)
                if let i = s.firstIndex(where: { !$0.isFinite }) { throw PruneError.nonFiniteScore(tensor: l.name, file: scores.source, index: i) }
                out += s.map { Swift.abs($0) }
            }
            return out
        }
    }

    /// Bits protected for `importance` (nil = none) with `fraction` of the stored bits as the budget.
    public static func select(_ storage: FaultStorage, importance: [Float]?, fraction: Double) throws -> ProtectedBits {
        try QuantizationError.checkFraction(fraction)
        guard let importance, fraction > 0 else { return ProtectedBits() }
        let n = storage.totalWeights, g = storage.geometry
        precondition(importance.count == n)
        guard n < 1 << 32 else { throw QuantizationError.tooManyWeights(n) }
        let budget = Int((fraction * Double(storage.totalBits)).rounded(.down))
        let kMax = min(n, budget / g.valueBits)                  // every weight costs at least its value bits
        guard kMax > 0 else { return ProtectedBits() }
        // Candidates: every weight at or above the kMax-th largest |importance| (exact radix select).
        let t = importance.withUnsafeBufferPointer { Selection.threshold([$0], k: n - kMax + 1, rank: .abs) }!
        var order: [UInt64] = []
        order.reserveCapacity(kMax + 1024)
        for (i, x) in importance.enumerated() {
            let k = Selection.key(x, .abs)
            if k >= t.key { order.append(UInt64(~k) << 32 | UInt64(i)) }   // descending key, then ascending position
        }
        order.sort()
        var remaining = budget, ranges: [(start: Int, length: Int)] = [], weights = 0, blocks = 0
        var blockDone = [Bool](repeating: false, count: g.scaleBits > 0 ? n / g.elements : 0)
        ranges.reserveCapacity(kMax)
        for o in order {
            let i = Int(o & 0xFFFF_FFFF), block = i / g.elements
            let needScale = g.scaleBits > 0 && !blockDone[block]
            let cost = g.valueBits + (needScale ? g.scaleBits : 0)
            guard cost <= remaining else { break }
            remaining -= cost
            let tIdx = FaultStorage.segment(storage.weightOffsets, i), local = i - storage.weightOffsets[tIdx]
            let base = 8 * storage.byteOffsets[tIdx]
            ranges.append((base + g.valueBit(local), g.valueBits)); weights += 1
            if needScale {
                blockDone[block] = true; blocks += 1
                ranges.append((base + g.scaleBit(local / g.elements), g.scaleBits))
            }
        }
        return ProtectedBits(ranges: ranges, weights: weights, scaleBlocks: blocks)
    }
}
