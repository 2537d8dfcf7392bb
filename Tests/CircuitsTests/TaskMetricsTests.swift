import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Task metrics against hand computation
//
// The reference path is independent of the evaluator: each prompt alone through
// `Model.forward` (full logits [T, vocab]), its last row, and the textbook
// formulas in Double (softmax by exp/sum, no log-sum-exp helper).

final class TaskMetricsTests: XCTestCase {
    /// Textbook metrics of one logits row.
    struct Hand {
        var logitDiff: Double?, probA: Double, probD: Double?, top1: Bool, kl: Double?
        init(_ z: [Float], answers: [Int], distractors: [Int], reference: [Float]? = nil) {
            let e = z.map { exp(Double($0)) }, total = e.reduce(0, +)
            let p = e.map { $0 / total }
            probA = answers.reduce(0) { $0 + p[$1] }
            let pd = distractors.reduce(0) { $0 + p[$1] }
            probD = distractors.isEmpty ? nil : pd
            // log(Σ_A e^z) − log(Σ_D e^z) = log(p(A) / p(D)).
            logitDiff = distractors.isEmpty ? nil : log(probA / pd)
            top1 = answers.contains(z.indices.max { z[$0] < z[$1] }!)
            if let reference {
                let er = reference.map { exp(Double($0)) }, tr = er.reduce(0, +)
                kl = zip(er, p).reduce(0) { acc, x in let q = x.0 / tr; return acc + q * log(q / x.1) }
            } else {
                kl = nil
            }
        }
    }

    func testSingleRowByHand() {
        let z: [Float] = [2, 1, 0, -1, 0.5]
        let m = z.withUnsafeBufferPointer { PromptMetrics(logits: $0, answers: [1], distractors: [0]) }
        XCTAssertEqual(m.logitDiff!, -1, accuracy: 1e-12)
        XCTAssertEqual(m.correct, false)
        XCTAssertFalse(m.top1)
        let s = z.map { exp(Double($0)) }.reduce(0, +)
        XCTAssertEqual(m.probAnswer, exp(1) / s, accuracy: 1e-12)
        XCTAssertEqual(m.probDiff!, (exp(1) - exp(2)) / s, accuracy: 1e-12)
        // Sets: LSE over {0, 4} vs {2}.
        let sets = z.withUnsafeBufferPointer { PromptMetrics(logits: $0, answers: [0, 4], distractors: [2]) }
        XCTAssertEqual(sets.logitDiff!, log(exp(2) + exp(0.5)) - 0, accuracy: 1e-12)
        XCTAssertEqual(sets.correct, true); XCTAssertTrue(sets.top1)
        // No distractor: logit diff and accuracy do not apply.
        let alone = z.withUnsafeBufferPointer { PromptMetrics(logits: $0, answers: [3], distractors: []) }
        XCTAssertNil(alone.logitDiff); XCTAssertNil(alone.correct); XCTAssertNil(alone.probDiff)
        XCTAssertEqual(alone.logProbAnswer, -1 - log(s), accuracy: 1e-12)
        // KL against itself is 0; against a different row it is Σ q log(q/p).
        let lp = PromptMetrics.logSoftmaxRows(z, vocab: 5)
        let same = z.withUnsafeBufferPointer { zp in lp.withUnsafeBufferPointer { PromptMetrics(logits: zp, answers: [1], distractors: [0], reference: $0) } }
        XCTAssertEqual(same.kl!, 0, accuracy: 1e-7)
        let r: [Float] = [0, 0, 3, 0, 0]
        let other = z.withUnsafeBufferPointer { zp in PromptMetrics.logSoftmaxRows(r, vocab: 5).withUnsafeBufferPointer {
            PromptMetrics(logits: zp, answers: [1], distractors: [0], reference: $0) } }
        XCTAssertEqual(other.kl!, Hand(z, answers: [1], distractors: [0], reference: r).kl!, accuracy: 1e-6)
    }

    func checkAgainstPlainForward(_ name: String) throws {
        let model = try AttributionFixtures.tiny(name)
        let v = model.config.vocabSize
        let its = TaskTestSupport.randomItems(vocab: v, seed: 11)
        // Reference distribution for KL: the same model with one MLP weight scaled (a different model).
        let perturbed = try AttributionFixtures.tiny(name)
        perturbed.blocks[1].down.weight = perturbed.blocks[1].down.weight.map { $0 * 3 }
        let refLast = its.map { Array(perturbed.forward($0.tokens).suffix(v)) }
        let reference = PromptMetrics.logSoftmaxRows(refLast.flatMap { $0 }, vocab: v)
        let e = TaskEvaluator.evaluate(model, its, reference: reference)
        let chunked = TaskEvaluator.evaluate(model, its, reference: reference, maxRows: 1)   // one prompt per pass
        for (i, item) in its.enumerated() {
            let last = Array(model.forward(item.tokens).suffix(v))
            let h = Hand(last, answers: item.answerIds, distractors: item.distractorIds, reference: refLast[i])
            let m = e.clean[i]
            XCTAssertEqual(m.logitDiff!, h.logitDiff!, accuracy: 1e-4, "\(name) prompt \(i)")
            XCTAssertEqual(m.correct, h.logitDiff! > 0)
            XCTAssertEqual(m.probAnswer, h.probA, accuracy: 1e-5)
            XCTAssertEqual(m.probDiff!, h.probA - h.probD!, accuracy: 1e-5)
            XCTAssertEqual(m.top1, h.top1)
            XCTAssertEqual(m.kl!, h.kl!, accuracy: 1e-4)
            XCTAssertGreaterThan(m.kl!, 1e-4, "the perturbed reference differs")
            XCTAssertEqual(chunked.clean[i].logitDiff!, m.logitDiff!, accuracy: 1e-5)
            let lc = Array(model.forward(item.corruptedTokens!).suffix(v))
            let hc = Hand(lc, answers: item.answerIds, distractors: item.distractorIds)
            XCTAssertEqual(e.corrupted![i].logitDiff!, hc.logitDiff!, accuracy: 1e-4)
            XCTAssertNil(e.corrupted![i].kl)
        }
        // Set means, by hand.
        let s = TaskSummary(e)
        XCTAssertEqual(s.headline, .logitDiff)
        let diffs = e.clean.map { $0.logitDiff! }
        let mean = diffs.reduce(0, +) / Double(diffs.count)
        XCTAssertEqual(s.clean.logitDiff!, mean, accuracy: 1e-12)
        XCTAssertEqual(s.headlineValue!, mean, accuracy: 1e-12)
        let sd = (diffs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(diffs.count - 1)).squareRoot()
        XCTAssertEqual(s.clean.headlineSEM!, sd / Double(diffs.count).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(s.clean.accuracy!, Double(e.clean.filter { $0.correct! }.count) / 7, accuracy: 1e-12)
        XCTAssertEqual(s.clean.klPerVocab!, s.clean.kl! / Double(v), accuracy: 1e-15)
        XCTAssertEqual(s.byFamily.map(\.family), ["ABBA", "BABA"])
        XCTAssertEqual(s.byFamily.map(\.summary.count), [3, 4])
        XCTAssertEqual(s.byTemplate.map(\.template), ["ABBA:1", "ABBA:3", "ABBA:5", "BABA:0", "BABA:2", "BABA:4", "BABA:6"])
        XCTAssertEqual(s.corruptedHeadlineValue!, e.corrupted!.map { $0.logitDiff! }.reduce(0, +) / 7, accuracy: 1e-12)
    }

    func testTinyLlamaAgainstPlainForward() throws { try checkAgainstPlainForward("tiny-llama-bias") }
    func testTinyOPTAgainstPlainForward() throws { try checkAgainstPlainForward("tiny-opt") }

    func testHeadlineMetricChoice() {
        func item(_ k: TaskKind, _ d: [Int]) -> TaskItem {
            TaskItem(location: SourceLocation(file: "f", line: 1), kind: k, template: nil, tokens: [1], corruptedTokens: nil,
                     answerIds: [2], distractorIds: d)
        }
        XCTAssertEqual(HeadlineMetric.forItems([item(.ioi, [3])]), .logitDiff)
        XCTAssertEqual(HeadlineMetric.forItems([item(.greaterThan, [3, 4])]), .probDiff)
        XCTAssertEqual(HeadlineMetric.forItems([item(.custom, [3]), item(.custom, [])]), .logProbAnswer)
    }
}
