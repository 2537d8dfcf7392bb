import Foundation

// MARK: - Metrics of one prompt's last-position logits
//
// All in Double from the Float logits. With answer set A and distractor set D
// (one token each for IOI):
//   logit difference  LSE(z_A) − LSE(z_D)        (= z_a − z_d for single tokens; log-odds of the sets)
//   accuracy          logit difference > 0       (answer above distractor)
//   top-1             argmax z ∈ A
//   probability diff  p(A) − p(D),  p = softmax over the whole vocabulary
//   KL(P_full ‖ P)    Σ_v P_full(v) (log P_full(v) − log P(v)), summed over the vocabulary
//                     (Edge Pruning's convention; MIB averages over the vocabulary = KL / |V|).

public struct PromptMetrics: Equatable, Sendable {
    /// nil when the prompt has no distractor.
    public var logitDiff: Double?
    public var correct: Bool?
    public var top1: Bool
    public var probAnswer: Double
    public var probDistractor: Double?
    public var probDiff: Double? { probDistractor.map { probAnswer - $0 } }
    /// log p(A): the headline metric of a task without distractors.
    public var logProbAnswer: Double
    /// KL from the reference distribution (nats, summed over the vocabulary); nil without a reference.
    public var kl: Double?

    /// Metrics of `logits` [vocab]; `reference` = the full model's log-probabilities [vocab] for KL.
    public init(logits z: UnsafeBufferPointer<Float>, answers: [Int], distractors: [Int],
                reference: UnsafeBufferPointer<Float>? = nil) {
        precondition(!answers.isEmpty)
        let logZ = Self.logSumExp(z, over: nil)
        let lseA = Self.logSumExp(z, over: answers)
        logProbAnswer = lseA - logZ
        probAnswer = exp(logProbAnswer)
        var best = 0
        for v in 1..<z.count where z[v] > z[best] { best = v }
        top1 = answers.contains(best)
        if distractors.isEmpty {
            logitDiff = nil; correct = nil; probDistractor = nil
        } else {
            let lseD = Self.logSumExp(z, over: distractors)
            logitDiff = lseA - lseD
            correct = lseA > lseD
            probDistractor = exp(lseD - logZ)
        }
        if let r = reference {
            precondition(r.count == z.count)
            var kl = 0.0
            for v in 0..<z.count {
                let lr = Double(r[v])
                guard lr > -.infinity else { continue }     // 0 · log 0 = 0
                kl += exp(lr) * (lr - (Double(z[v]) - logZ))
            }
            self.kl = kl
        } else {
            kl = nil
        }
    }

    /// log Σ exp(z_i) over `ids` (all of z when nil), shifted by the max for stability.
    static func logSumExp(_ z: UnsafeBufferPointer<Float>, over ids: [Int]?) -> Double {
        var m = -Double.infinity
        if let ids { for i in ids { m = max(m, Double(z[i])) } } else { for x in z { m = max(m, Double(x)) } }
        guard m > -.infinity else { return m }
        var s = 0.0
        if let ids { for i in ids { s += exp(Double(z[i]) - m) } } else { for x in z { s += exp(Double(x) - m) } }
        return m + log(s)
    }

    /// Log-softmax of each row of `logits` [rows, vocab] (the reference for KL).
    public static func logSoftmaxRows(_ logits: [Float], vocab: Int) -> [Float] {
        var out = logits
        logits.withUnsafeBufferPointer { all in
            for r in 0..<(logits.count / vocab) {
                let row = UnsafeBufferPointer(rebasing: all[(r * vocab)..<((r + 1) * vocab)])
                let lz = logSumExp(row, over: nil)
                for v in 0..<vocab { out[r * vocab + v] = Float(Double(row[v]) - lz) }
            }
        }
        return out
    }
}
