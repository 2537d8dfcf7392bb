import Foundation
import XCTest
@testable import Transformer

/// A packed LRP pass (`lrp(packed:)`: several independent sequences in one pass, each from position 0) must
/// give every row the δ of its own sequence's pass: weight gradients, neuron/head relevance and bias relevance
/// are the sums of the per-sequence passes, token/position relevance and node-input δ their concatenation.
///
/// The EdgeAttribution tests pack 4–6-token prompts only. Here the spans cross the attention backward's
/// query block (`queryBlock` = 128) inside a span that does not start at row 0, with grouped k/v heads
/// (Llama: 4 query heads on 2 k/v heads), so a wrong span base, key count, k/v row stride or RoPE offset
/// moves the result; a 1-token span is the empty causal history. (Checked: passing every block the one span
/// of all rows instead of the packed spans fails all three tests.) Every rule variant (AttnLRP, CP-LRP's
/// qkFactor 0 early return, the plain gradient, LRP-ε with its pre-RoPE copies) and the recompute path
/// (a memory budget below one block) run.
final class PackedLRPTests: XCTestCase {
    typealias K = LRPTestKit

    /// Per-token absolute aggregation (`wantsAbsPerToken`): Σ_t |δy_t||x_t|ᵀ per linear, Σ_t |·| per neuron/head.
    final class AbsSink: RelevanceSink {
        var abs: [String: [Float]] = [:]
        var neurons: [Int: [Double]] = [:]
        var heads: [Int: [Double]] = [:]
        var wantsAbsPerToken: Bool { true }
        var wantsSignedGradient: Bool { false }
        func weightGradient(_ l: Linear, _ dW: UnsafePointer<Float>) {}
        func weightAbsGradient(_ l: Linear, _ g: UnsafePointer<Float>) {
            var a = abs[l.name] ?? [Float](repeating: 0, count: l.weight.count)
            for i in a.indices { a[i] += g[i] }
            abs[l.name] = a
        }
        func neurons(layer: Int, _ r: [Float]) { neurons[layer] = zip(neurons[layer] ?? r.map { _ in 0 }, r).map { $0 + Double($1) } }
        func heads(layer: Int, _ r: [Float]) { heads[layer] = zip(heads[layer] ?? r.map { _ in 0 }, r).map { $0 + Double($1) } }
    }

    /// δ at every node input, per call in arrival order: [3H, N, d] per layer for heads, [N, d] for MLPs and logits.
    final class NodeSink: RelevanceSink {
        var calls: [(name: String, items: Int, rows: Int, values: [Float])] = []
        let d: Int, headItems: Int                                            // headItems = 3H
        init(_ m: Model) { d = m.config.dModel; headItems = 3 * m.config.nHeads }
        var wantsNodeInputs: Bool { true }
        var wantsWeightRelevance: Bool { false }
        func weightGradient(_ l: Linear, _ dW: UnsafePointer<Float>) {}
        func neurons(layer: Int, _ r: [Float]) {}
        func heads(layer: Int, _ r: [Float]) {}
        func record(_ name: String, _ items: Int, _ g: UnsafePointer<Float>, _ rows: Int) {
            calls.append((name, items, rows, Array(UnsafeBufferPointer(start: g, count: items * rows * d))))
        }
        func headInputs(layer: Int, _ g: UnsafePointer<Float>, rows: Int) { record("heads \(layer)", headItems, g, rows) }
        func mlpInput(layer: Int, _ g: UnsafePointer<Float>, rows: Int) { record("mlp \(layer)", 1, g, rows) }
        func logitsInput(_ g: UnsafePointer<Float>, rows: Int) { record("logits", 1, g, rows) }
    }

    /// Explained terms of one sequence: a logit difference at its last position and one logit in its middle.
    func terms(_ len: Int, vocab: Int, salt: Int) -> [ExplainTerm] {
        [ExplainTerm(position: len - 1, token: (7 * salt + 3) % vocab, coefficient: 1),
         ExplainTerm(position: len - 1, token: (11 * salt + 5) % vocab, coefficient: -0.5),
         ExplainTerm(position: len / 2, token: (13 * salt + 1) % vocab, coefficient: 0.7)]
    }

    func tokens(_ len: Int, vocab: Int, seed: UInt64) -> [Int] {
        var rng = SeededRNG(seed: seed)
        return (0..<len).map { _ in Int(rng.next() % UInt64(vocab)) }
    }

    /// max |a − b| ≤ rel · max |b|; b all zero (CP-LRP's q/k, a rule's unused gradient) only with a all zero.
    func assertClose(_ a: [Float], _ b: [Float], rel: Float = 2e-4, _ msg: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, msg, file: file, line: line)
        let scale = b.map { Swift.abs($0) }.max() ?? 0
        let worst = zip(a, b).map { Swift.abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, rel * scale, "\(msg): max diff \(worst), scale \(scale)", file: file, line: line)
    }

    func assertClose(_ a: [Double], _ b: [Double], rel: Double = 2e-4, _ msg: String, file: StaticString = #filePath, line: UInt = #line) {
        assertClose(a.map { Float($0) }, b.map { Float($0) }, rel: Float(rel), msg, file: file, line: line)
    }

    /// Packed pass vs one pass per sequence, for every rule variant and both memory paths.
    func checkPacked(_ m: Model, lengths: [Int], _ family: String) throws {
        let v = m.config.vocabSize
        let seqs = lengths.enumerated().map { tokens($1, vocab: v, seed: UInt64(100 + $0)) }
        let perSeq = lengths.enumerated().map { terms($1, vocab: v, salt: $0) }
        var starts: [Int] = [], row = 0
        for len in lengths { starts.append(row); row += len }
        // (rule, memory budget: 1 = recompute every block, seed value); each rule once, the other axes where they matter.
        let keep = Model.defaultLRPMemoryBudget
        let configs: [(String, LRPRules, Int, SeedValue)] = [
            ("attnLRP", .attnLRP, keep, .logit), ("cpLRP", .cpLRP, 1, .logit), ("gradient", .gradient, keep, .one),
            ("epsilon", LRPRules(.attnLRP, epsilon: 0.5), 1, .one)]
        for (ruleName, r, budget, seed) in configs {
            let tag = "\(family) \(ruleName) budget \(budget) seed \(seed)"
            // Reference: one pass per sequence, sinks accumulating over the passes.
            let refSink = RecordingSink(), refAbs = AbsSink()
            var refTok: [Float] = [], refPos: [Float] = [], refBias = 0.0, refExplained = 0.0
            var refLogits: [Float] = []
            for (s, seq) in seqs.enumerated() {
                let a = try m.lrp(tokens: seq, explain: .groups([perSeq[s]]), seed: seed, rules: r, sink: refSink,
                                  memoryBudget: budget)
                _ = try m.lrp(tokens: seq, explain: .groups([perSeq[s]]), seed: seed, rules: r, sink: refAbs, memoryBudget: budget)
                refTok += a.tokenRelevance; refPos += a.positionRelevance ?? []
                refBias += a.biasRelevance; refExplained += a.explained
                refLogits += a.terms.map(\.logit)
            }
            // Packed: one group per sequence, positions in packed rows.
            let groups = perSeq.enumerated().map { s, ts in
                ts.map { ExplainTerm(position: $0.position + starts[s], token: $0.token, coefficient: $0.coefficient) }
            }
            let sink = RecordingSink(), absSink = AbsSink()
            let p = try m.lrp(tokens: seqs.flatMap { $0 }, explain: .groups(groups), seed: seed, rules: r, sink: sink,
                              memoryBudget: budget, packed: lengths)
            _ = try m.lrp(tokens: seqs.flatMap { $0 }, explain: .groups(groups), seed: seed, rules: r, sink: absSink,
                          memoryBudget: budget, packed: lengths)
            assertClose(p.terms.map(\.logit), refLogits, rel: 1e-5, "\(tag): explained logits (forward)")
            XCTAssertEqual(p.explained, refExplained, accuracy: 1e-4 * max(1, Swift.abs(refExplained)), tag)
            XCTAssertGreaterThan(refTok.map { Swift.abs($0) }.max()!, 1e-4, "\(tag): relevance reaches the tokens")
            assertClose(p.tokenRelevance, refTok, "\(tag): token relevance per row")
            if m.config.family == .opt { assertClose(p.positionRelevance ?? [], refPos, "\(tag): position relevance per row") }
            XCTAssertEqual(p.biasRelevance, refBias, accuracy: 2e-4 * max(1, Swift.abs(refBias)), "\(tag): bias relevance")
            XCTAssertEqual(Set(sink.grad.keys), Set(refSink.grad.keys), tag)
            for (name, g) in refSink.grad { assertClose(sink.grad[name]!, g, "\(tag): δW \(name)") }
            for (l, h) in refSink.heads { assertClose(sink.heads[l]!, h, "\(tag): heads layer \(l)") }
            for (l, n) in refSink.neurons { assertClose(sink.neurons[l]!, n, "\(tag): neurons layer \(l)") }
            for (name, a) in refAbs.abs { assertClose(absSink.abs[name]!, a, "\(tag): Σ_t|δy||x| \(name)") }
            for (l, h) in refAbs.heads { assertClose(absSink.heads[l]!, h, "\(tag): |heads| layer \(l)") }
            for (l, n) in refAbs.neurons { assertClose(absSink.neurons[l]!, n, "\(tag): |neurons| layer \(l)") }
        }
    }

    func testPackedPassEqualsOnePassPerSequenceLlamaGQA() throws {
        let m = try K.randomLlama(seed: 71, layers: 2, bias: true, maxSeq: 160)
        XCTAssertEqual(m.config.nHeads / m.config.nKVHeads, 2, "grouped k/v heads")
        // 130: two query blocks from row 0; 1: no history; 7: short; 150: two query blocks from row 138.
        try checkPacked(m, lengths: [130, 1, 7, 150], "llama")
    }

    /// OPT's own part is its learned positions (no RoPE): short spans suffice (the attention backward is the same code).
    func testPackedPassEqualsOnePassPerSequenceOPT() throws {
        let m = try K.randomOPT(seed: 72, layers: 2, maxSeq: 48)
        try checkPacked(m, lengths: [7, 30, 1, 13], "opt")
    }

    /// δ at the component graph's node inputs (ungrouped heads): rows of each span equal its own pass's rows.
    func testPackedNodeInputsAreEachSequencesOwn() throws {
        for (family, m, lengths) in [("llama", try K.randomLlama(seed: 73, layers: 2, bias: true, nKV: 4, maxSeq: 160), [129, 3, 133]),
                                     ("opt", try K.randomOPT(seed: 74, layers: 2, maxSeq: 48), [20, 3, 31])] {
            let d = m.config.dModel, v = m.config.vocabSize
            let seqs = lengths.enumerated().map { tokens($1, vocab: v, seed: UInt64(200 + $0)) }
            let perSeq = lengths.enumerated().map { terms($1, vocab: v, salt: $0 + 5) }
            for (ruleName, r) in [("attnLRP", LRPRules.attnLRP), ("gradient", .gradient)] {
                let tag = "\(family) \(ruleName)"
                let refs = try seqs.indices.map { s -> NodeSink in
                    let sink = NodeSink(m)
                    _ = try m.lrp(tokens: seqs[s], explain: .groups([perSeq[s]]), rules: r, sink: sink)
                    return sink
                }
                var starts: [Int] = [], row = 0
                for len in lengths { starts.append(row); row += len }
                let group = perSeq.enumerated().flatMap { s, ts in
                    ts.map { ExplainTerm(position: $0.position + starts[s], token: $0.token, coefficient: $0.coefficient) }
                }
                let packed = NodeSink(m)
                _ = try m.lrp(tokens: seqs.flatMap { $0 }, explain: .groups([group]), rules: r, sink: packed, packed: lengths)
                XCTAssertEqual(packed.calls.map(\.name), refs[0].calls.map(\.name), tag)
                for (k, call) in packed.calls.enumerated() {
                    XCTAssertEqual(call.rows, row, "\(tag) \(call.name): every packed row")
                    for (s, ref) in refs.enumerated() {
                        let rc = ref.calls[k], n = lengths[s]
                        // Rows starts[s] ..< starts[s] + n of every item.
                        var mine: [Float] = []
                        for i in 0..<call.items {
                            let first: Int = (i * row + starts[s]) * d
                            mine += call.values[first..<(first + n * d)]
                        }
                        assertClose(mine, rc.values, "\(tag) \(call.name) span \(s)")
                    }
                }
            }
        }
    }
}
