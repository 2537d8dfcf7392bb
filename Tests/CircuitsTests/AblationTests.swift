import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Ablation and faithfulness on the tiny fixtures
//
// Independent routes: a head's output is forced to zero by zeroing its value
// vectors (v_proj rows + bias: z_h = Σ a·v = 0), a neuron's by zeroing its
// up_proj/fc1 row + bias (post_j = silu(gate)·0 or relu(0) = 0); the ablator
// instead edits o_proj / down_proj columns.

final class AblationTests: XCTestCase {
    func prompts(_ vocab: Int, seed: UInt64, count: Int = 5) -> [[Int]] {
        var rng = SeededRNG(seed: seed)
        return (0..<count).map { _ in (0..<(2 + Int(rng.next() % 8))).map { _ in Int(rng.next() % UInt64(vocab)) } }
    }

    func lastLogits(_ m: Model, _ ps: [[Int]]) -> [[Float]] { ps.map { Array(m.forward($0).suffix(m.config.vocabSize)) } }

    func maxDiff(_ a: [[Float]], _ b: [[Float]]) -> Float {
        zip(a, b).map { PruneTestKit.maxAbsDiff($0, $1) }.max()!
    }

    func checkHeadZero(_ name: String, layer: Int, kvHead: Int) throws {
        let model = try AttributionFixtures.tiny(name), ref = try AttributionFixtures.tiny(name)
        let c = model.config, hd = c.headDim, group = c.nHeads / c.nKVHeads
        let ps = prompts(c.vocabSize, seed: 5)
        let full = lastLogits(model, ps)
        // Route 1: the ablator, heads sharing kv head `kvHead` outside the circuit.
        var keep = [[Bool]](repeating: [Bool](repeating: true, count: c.nHeads), count: c.nLayers)
        for h in (kvHead * group)..<((kvHead + 1) * group) { keep[layer][h] = false }
        let ab = Ablator(model: model)
        try ab.apply(.heads(keep), ablation: .zero)
        let viaMask = lastLogits(model, ps)
        // Route 2: their value vectors are zero.
        let v = ref.blocks[layer].v
        for r in (kvHead * hd)..<((kvHead + 1) * hd) {
            for j in 0..<v.inDim { v.weight[r * v.inDim + j] = 0 }
            v.bias?[r] = 0
        }
        let viaValues = lastLogits(ref, ps)
        XCTAssertLessThan(maxDiff(viaMask, viaValues), 1e-5, name)
        XCTAssertGreaterThan(maxDiff(viaMask, full), 1e-3, "\(name): the ablation changes the output")
        ab.restore()
        XCTAssertEqual(maxDiff(lastLogits(model, ps), full), 0, "\(name): restore is exact")
    }

    func testZeroHeadEqualsForcingItsOutputToZero() throws {
        try checkHeadZero("tiny-llama-bias", layer: 1, kvHead: 1)   // GQA: query heads 2, 3
        try checkHeadZero("tiny-opt", layer: 0, kvHead: 2)          // MHA: head 2
    }

    func testZeroNeuronEqualsForcingItsOutputToZero() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let model = try AttributionFixtures.tiny(name), ref = try AttributionFixtures.tiny(name)
            let c = model.config
            let ps = prompts(c.vocabSize, seed: 9)
            let full = lastLogits(model, ps)
            let dead = [3, 17, c.dFF - 1]
            var keep = [[Bool]](repeating: [Bool](repeating: true, count: c.dFF), count: c.nLayers)
            for j in dead { keep[0][j] = false }
            try Ablator(model: model).apply(.neurons(keep), ablation: .zero)
            let up = ref.blocks[0].up        // up_proj (Llama) / fc1 (OPT)
            for j in dead {
                for i in 0..<up.inDim { up.weight[j * up.inDim + i] = 0 }
                up.bias?[j] = 0
            }
            XCTAssertLessThan(maxDiff(lastLogits(model, ps), lastLogits(ref, ps)), 1e-5, name)
            XCTAssertGreaterThan(maxDiff(lastLogits(model, ps), full), 1e-4, name)
        }
    }

    /// With a one-token reference prompt, every mean equals that token's activation,
    /// so mean-ablating everything leaves that prompt's logits unchanged (and changes others').
    func testMeanAblationWithOneTokenReferenceIsIdentityOnIt() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let model = try AttributionFixtures.tiny(name)
            let x = [[42]], other = [[7, 42, 9, 100]]
            let means = MeanActivations.measure(model, x)
            XCTAssertEqual(means.tokens, 1)
            let before = lastLogits(model, x), otherBefore = lastLogits(model, other)
            let ab = Ablator(model: model)
            for g in [Granularity.neurons, .heads] {
                try ab.apply(.uniform(g, kept: false, model: model), ablation: .mean, means: means)
                XCTAssertLessThan(maxDiff(lastLogits(model, x), before), 1e-4, "\(name) \(g)")
                XCTAssertGreaterThan(maxDiff(lastLogits(model, other), otherBefore), 1e-3, "\(name) \(g)")
                ab.restore()
            }
            XCTAssertEqual(maxDiff(lastLogits(model, other), otherBefore), 0)
        }
    }

    /// Mean ablation of MLP neurons against a hand computation: the means summed in Double, one prompt at a time
    /// (no packing), and a forward run block by block that, after each MLP, moves every ablated neuron's output
    /// from its actual value to its mean by adding down[:, j]·(μ_j − post_j) to the residual row (Double) — the
    /// definition, not the ablator's bias rewrite. Ablated neurons in two layers, so the second layer's posts
    /// already see the first ablation.
    func testMeanAblatingNeuronsMatchesAHandComputation() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let model = try AttributionFixtures.tiny(name)
            let c = model.config, d = c.dModel
            let reference = prompts(c.vocabSize, seed: 12, count: 6), evaluated = prompts(c.vocabSize, seed: 13, count: 4)
            let dead: [Int: [Int]] = [0: [3, 17, c.dFF - 1], c.nLayers - 1: [0, 5, c.dFF / 2]]
            XCTAssertGreaterThan(c.nLayers, 1, name)
            /// Runs `tokens` alone, block by block; `after(l, x, post)` may edit the residual after block l.
            func run(_ tokens: [Int], after: (Int, inout [Float], Buffer) -> Void) -> [Float] {
                let seg = Segment(rowStart: 0, count: tokens.count, pos0: 0, cache: KVCache(config: c, capacity: tokens.count))
                var x = model.embedRows(tokens, segments: [seg])                   // [T, d]
                let b = BlockBuffers(config: c, rows: tokens.count)
                for l in 0..<c.nLayers { model.runBlock(l, &x, segments: [seg], buffers: b); after(l, &x, b.post) }
                let h = model.finalNormRows(x, rows: tokens.count)
                return h.withUnsafeBufferPointer { model.logits($0.baseAddress! + (tokens.count - 1) * d, rows: 1) }
            }
            // Hand means [layers][dFF] over every token of every reference prompt.
            var sum = [[Double]](repeating: [Double](repeating: 0, count: c.dFF), count: c.nLayers), tokens = 0
            for p in reference {
                _ = run(p) { l, _, post in for r in 0..<p.count { for j in 0..<c.dFF { sum[l][j] += Double(post[r * c.dFF + j]) } } }
                tokens += p.count
            }
            let mu = sum.map { $0.map { $0 / Double(tokens) } }
            let means = MeanActivations.measure(model, reference)
            XCTAssertEqual(means.tokens, tokens, name)
            for l in 0..<c.nLayers { for j in 0..<c.dFF { XCTAssertEqual(Double(means.post[l][j]), mu[l][j], accuracy: 1e-5, "\(name) μ[\(l)][\(j)]") } }
            // The hand-ablated forward.
            let down = model.blocks.map { $0.down.weight }                         // [d, dFF] per layer (unablated)
            let hand = evaluated.map { p in
                run(p) { l, x, post in
                    for j in dead[l] ?? [] {
                        for r in 0..<p.count {
                            let delta = mu[l][j] - Double(post[r * c.dFF + j])
                            for i in 0..<d { x[r * d + i] = Float(Double(x[r * d + i]) + Double(down[l][i * c.dFF + j]) * delta) }
                        }
                    }
                }
            }
            let full = lastLogits(model, evaluated)
            var keep = [[Bool]](repeating: [Bool](repeating: true, count: c.dFF), count: c.nLayers)
            for (l, js) in dead { for j in js { keep[l][j] = false } }
            let ab = Ablator(model: model)
            try ab.apply(.neurons(keep), ablation: .mean, means: means)
            let viaMask = lastLogits(model, evaluated)
            XCTAssertLessThan(maxDiff(viaMask, hand), 1e-4, name)
            XCTAssertGreaterThan(maxDiff(viaMask, full), 1e-3, "\(name): the ablation changes the output")
            // Zero ablation of the same neurons lands elsewhere: the means are not ≈ 0, so the test can tell them apart.
            try ab.apply(.neurons(keep), ablation: .zero)
            XCTAssertGreaterThan(maxDiff(lastLogits(model, evaluated), hand), 1e-3, name)
            ab.restore()
            XCTAssertEqual(maxDiff(lastLogits(model, evaluated), full), 0, "\(name): restore is exact")
        }
    }

    /// Means are over every token of every prompt: two one-token prompts average their single-token means.
    func testMeansAverageOverTokensAndPrompts() throws {
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let a = MeanActivations.measure(model, [[5]]), b = MeanActivations.measure(model, [[77]])
        let both = MeanActivations.measure(model, [[5], [77]], maxRows: 1)
        XCTAssertEqual(both.tokens, 2)
        for l in 0..<model.config.nLayers {
            for j in 0..<model.config.dFF { XCTAssertEqual(both.post[l][j], (a.post[l][j] + b.post[l][j]) / 2, accuracy: 1e-6) }
            for j in 0..<model.config.qDim { XCTAssertEqual(both.z[l][j], (a.z[l][j] + b.z[l][j]) / 2, accuracy: 1e-6) }
        }
    }

    func testFaithfulnessEndsAreMeasuredAndExact() throws {
        let model = try AttributionFixtures.tiny("tiny-opt")
        let c = model.config
        let items = TaskTestSupport.randomItems(vocab: c.vocabSize, seed: 21)
        let originals = model.linears.map { ($0.weight, $0.bias) }
        let means = MeanActivations.measure(model, items.map(\.tokens))
        let patch = try PatchSource.capture(model, items)
        let ab = Ablator(model: model)
        var rng = SeededRNG(seed: 4)
        for (g, kind) in [(Granularity.weights, AblationKind.zero), (.neurons, .zero), (.heads, .zero), (.neurons, .mean), (.heads, .mean),
                          (.neurons, .patch), (.heads, .patch)] {
            let base = try Faithfulness.baseline(ab, items, granularity: g, ablation: kind, means: means, patch: patch)
            XCTAssertNotEqual(base.full, base.empty, "\(g) \(kind)")
            XCTAssertEqual(try Faithfulness.evaluate(ab, items, mask: .uniform(g, kept: true, model: model), baseline: base, means: means, patch: patch).f, 1)
            XCTAssertEqual(try Faithfulness.evaluate(ab, items, mask: .uniform(g, kept: false, model: model), baseline: base, means: means, patch: patch).f, 0)
            // A random half circuit lands elsewhere, and m(M) is still the fresh model's metric afterwards.
            var half = CircuitMask.uniform(g, kept: true, model: model)
            switch half {
            case .weights(var w): for k in w.keys { w[k] = w[k]!.map { _ in UInt8(rng.next() % 2) } }; half = .weights(w)
            case .neurons(var n): n = n.map { $0.map { _ in rng.next() % 2 == 0 } }; half = .neurons(n)
            case .heads(var h): h = h.map { $0.map { _ in rng.next() % 2 == 0 } }; half = .heads(h)
            }
            let f = try Faithfulness.evaluate(ab, items, mask: half, baseline: base, means: means, patch: patch).f
            XCTAssertNotEqual(f, 1, "\(g) \(kind)"); XCTAssertNotEqual(f, 0, "\(g) \(kind)")
            XCTAssertEqual(try Faithfulness.metric(model, items, base.metric), base.full)
        }
        for (lin, o) in zip(model.linears, originals) {
            XCTAssertEqual(lin.weight, o.0, lin.name); XCTAssertEqual(lin.bias, o.1, lin.name)
        }
        XCTAssertThrowsError(try ab.apply(.uniform(.weights, kept: false, model: model), ablation: .mean, means: means)) {
            XCTAssertEqual($0 as? AblationError, .unsupported(.weights, .mean))
        }
        XCTAssertThrowsError(try ab.apply(.uniform(.heads, kept: false, model: model), ablation: .mean)) {
            XCTAssertEqual($0 as? AblationError, .needsMeans)
        }
        XCTAssertThrowsError(try ab.apply(.uniform(.weights, kept: false, model: model), ablation: .patch, patch: patch)) {
            XCTAssertEqual($0 as? AblationError, .unsupported(.weights, .patch))
        }
        let other = Array(items.dropLast())
        XCTAssertThrowsError(try Faithfulness.baseline(ab, other, granularity: .heads, ablation: .patch, patch: patch)) {
            XCTAssertEqual($0 as? AblationError, .patchMismatch(captured: items.map(\.tokens.count), now: other.map(\.tokens.count)))
        }
        XCTAssertTrue(model.linears.allSatisfy { $0.inputEdit == nil }, "restore removes every edit")
    }

    /// Clean and corrupted prompts that share only their last token: patching every head and every
    /// neuron leaves the clean run's last position nothing but that token's embedding, so its logits
    /// must be the corrupted run's. Patching with the clean prompt itself changes nothing.
    func testPatchingEverythingGivesTheCorruptedRun() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let model = try AttributionFixtures.tiny(name)
            let v = model.config.vocabSize
            var rng = SeededRNG(seed: 8)
            let items: [TaskItem] = (0..<4).map { i in
                let n = 3 + i * 2
                let clean = (0..<n).map { _ in Int(rng.next() % UInt64(v)) }
                var corrupted = clean.map { ($0 + 1 + Int(rng.next() % UInt64(v - 1))) % v }
                corrupted[n - 1] = clean[n - 1]
                return TaskItem(location: SourceLocation(file: "p", line: i + 1), kind: .ioi, template: nil, tokens: clean,
                                corruptedTokens: corrupted, answerIds: [1], distractorIds: [2])
            }
            let ab = Ablator(model: model)
            let patch = try PatchSource.capture(model, items, maxRows: 9)
            let everything = [CircuitMask.uniform(.heads, kept: false, model: model), .uniform(.neurons, kept: false, model: model)]
            try ab.apply(everything, ablation: .patch, patch: patch)
            let patched = TaskEvaluator.lastLogits(model, items.map(\.tokens), maxRows: 9)
            ab.restore()
            let corruptedRun = lastLogits(model, items.map { $0.corruptedTokens! }).flatMap { $0 }
            let cleanRun = lastLogits(model, items.map(\.tokens)).flatMap { $0 }
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(patched, corruptedRun), 1e-4, name)
            XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(cleanRun, corruptedRun), 1e-2, "\(name): the prompts differ")
            // Neurons only: attention still reads the clean earlier positions, so the result lies elsewhere.
            // (Heads only would already be exact here: the last position's MLPs see only that position.)
            try ab.apply(everything[1], ablation: .patch, patch: patch)
            XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(TaskEvaluator.lastLogits(model, items.map(\.tokens), maxRows: 9), corruptedRun), 1e-3)
            // Patching from the clean prompts is the identity.
            let selfItems = items.map { var t = $0; t.corruptedTokens = t.tokens; return t }
            try ab.apply(everything, ablation: .patch, patch: try { ab.restore(); return try PatchSource.capture(model, selfItems) }())
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(TaskEvaluator.lastLogits(model, items.map(\.tokens)), cleanRun), 1e-5, name)
            ab.restore()
        }
    }
}
