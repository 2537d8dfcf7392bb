import Foundation
import XCTest
@testable import Circuits
import TestSupport
import Transformer

/// `correct`: the contrastive ranking equals a hand computation, the pruned checkpoint equals the model
/// with those neurons silenced, a sweep entry equals a single run, bad input writes nothing.
final class CorrectionTests: XCTestCase {
    typealias F = AttributionFixtures

    func sets(_ dir: URL) throws -> (general: String, undesired: String) {
        let g = dir.appendingPathComponent("general.txt"), u = dir.appendingPathComponent("undesired.txt")
        try "Once upon a time there was a girl\nThe dog ran to the park and\nLily liked to play with her ball\n"
            .write(to: g, atomically: true, encoding: .utf8)
        try "The cat the cat the cat\nBob was sad. Bob was sad.\n".write(to: u, atomically: true, encoding: .utf8)
        return (g.path, u.path)
    }

    func testNeuronRankingIsTheHandComputedContrastAndPruningSilencesThem() throws {
        let path = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let (g, u) = try sets(dir)
        let out = dir.appendingPathComponent("out").path
        let k = 7
        let r = try CorrectionPipeline.run(CorrectionOptions(model: path, general: g, undesired: u, method: .lrp, granularity: .neurons,
                                                             amounts: [.count(k)], maxNewTokens: 12, out: out))
        // Hand computation: the two means from the attribution engine, subtracted, k lowest (ties: lower flat index).
        let lm = try F.stories()
        let tok = try lm.requireTokenizer()
        func mean(_ file: String, _ target: TargetMode) throws -> [String: Tensor] {
            let smp = try PromptSamples.prepare(try PromptSet.load(file), model: lm.model, tokenizer: tok, target: target, maxNewTokens: 12)
            var s = AttributionSettings(); s.method = .lrp; s.target = target; s.maxNewTokens = 12; s.samples = smp.count
            return try AttributionRunner.scores(model: lm.model, samples: smp, settings: s).tensors
        }
        let gm = try mean(g, .nextToken), um = try mean(u, .continuation)
        var all: [(score: Float, layer: Int, index: Int)] = []
        for l in 0..<lm.model.config.nLayers {
            let name = ScoreNames.neurons(lm.model, layer: l)
            let a = try XCTUnwrap(gm[name]?.data), b = try XCTUnwrap(um[name]?.data)
            for i in a.indices { all.append((a[i] - b[i], l, i)) }
        }
        let want = all.sorted { ($0.score, $0.layer, $0.index) < ($1.score, $1.layer, $1.index) }.prefix(k)
        let got = r.record.sweep[0].removed
        XCTAssertEqual(got.map { [$0.layer, $0.index] }, want.map { [$0.layer, $0.index] })
        XCTAssertEqual(got.map { Float($0.score) }, want.map(\.score))
        for (e, w) in zip(got, want) { XCTAssertEqual(Float(e.general! - e.undesired!), w.score, accuracy: 1e-5) }
        XCTAssertTrue(want.allSatisfy { $0.score < 0 }, "the removed neurons matter more to the undesired set")
        // The written checkpoint = the original with only those neurons' down_proj columns zeroed (output silenced).
        let pruned = try ModelLoader.load(out).model
        let ref = try ModelLoader.load(path).model
        for w in want {
            let down = ref.blocks[w.layer].down
            for row in 0..<down.outDim { down.weight[row * down.inDim + w.index] = 0 }
        }
        let ids = try tok.encode("Once upon a time Lily saw a cat")
        let a = pruned.forward(ids), b = ref.forward(ids)
        XCTAssertEqual(a.count, b.count)
        XCTAssertLessThan(zip(a, b).map { abs($0 - $1) }.max() ?? 1, 1e-5)
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/correction.json"))) as? [String: Any]
        XCTAssertEqual(record?["method"] as? String, "lrp")
        XCTAssertEqual((record?["undesired"] as? [String: Any])?["prompts"] as? Int, 2)
    }

    func testSweepEntryEqualsSingleRunAndRandomIsSeeded() throws {
        let path = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let (g, u) = try sets(dir)
        func run(_ counts: [Int], _ out: String, seed: UInt64 = 3) throws -> CorrectionOutcome {
            try CorrectionPipeline.run(CorrectionOptions(model: path, general: g, undesired: u, method: .random, granularity: .heads,
                                                         amounts: counts.map { .count($0) }, maxNewTokens: 4, seed: seed, out: out))
        }
        let sweep = dir.appendingPathComponent("sweep").path, single = dir.appendingPathComponent("single").path
        let s = try run([6, 2], sweep)
        _ = try run([6], single)
        XCTAssertEqual(s.steps.map(\.directory), [sweep + "/count-2", sweep + "/count-6"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: sweep + "/count-6/model.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: single + "/model.safetensors")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: sweep + "/correction.json"))
        let heads2 = Set(s.record.sweep[0].removed.map { [$0.layer, $0.index] }), heads6 = Set(s.record.sweep[1].removed.map { [$0.layer, $0.index] })
        XCTAssertTrue(heads2.isSubset(of: heads6), "masks of one ranking are nested")
        let other = try run([6], dir.appendingPathComponent("seed4").path, seed: 4)
        XCTAssertNotEqual(other.record.sweep[0].removed.map { [$0.layer, $0.index] }, s.record.sweep[1].removed.map { [$0.layer, $0.index] })
        XCTAssertEqual(s.record.seed, 3)
        XCTAssertNil(s.record.aggregation)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }, [], "no temporaries left")
    }

    func testBadInputWritesNothing() throws {
        let path = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self)
        let (g, u) = try sets(dir)
        let out = dir.appendingPathComponent("out").path
        func opts(_ amounts: [PruneAmount], method: CorrectionMethod = .random, agg: RelevanceAccumulator.Aggregation = .signed) -> CorrectionOptions {
            CorrectionOptions(model: path, general: g, undesired: u, method: method, granularity: .neurons, amounts: amounts,
                              aggregation: agg, maxNewTokens: 4, out: out)
        }
        XCTAssertThrowsError(try CorrectionPipeline.run(opts([.count(1), .count(1_000_000)]))) { e in
            guard case .countTooLarge(1_000_000, _, _)? = e as? PruneError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try CorrectionPipeline.run(opts([.count(2), .count(2)])))
        XCTAssertThrowsError(try CorrectionPipeline.run(opts([.count(2)], method: .wanda, agg: .absPerToken))) { e in
            XCTAssertEqual((e as? PruneError)?.isUsageError, true)
        }
        XCTAssertThrowsError(try CorrectionPipeline.run(opts([])))
        var randomNormalized = opts([.count(2)])
        randomNormalized.normalize = .perSet
        XCTAssertThrowsError(try CorrectionPipeline.run(randomNormalized)) { e in
            XCTAssertEqual((e as? PruneError)?.isUsageError, true, "random scores have no sets to normalise")
        }
        try "\n\n".write(toFile: u, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CorrectionPipeline.run(opts([.count(2)]))) { e in
            XCTAssertEqual(e as? AttributionError, .emptyPromptFile(path: u))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["general.txt", "undesired.txt"])
    }
}

/// Seeded splits: exact sizes, disjoint, order kept, deterministic, seed-dependent.
final class PromptSplitTests: XCTestCase {
    func testSplitIsSeededExactAndDisjoint() throws {
        let lines = (0..<10).map { "p\($0)" } + ["", "  "]
        let a = try PromptSplit.make(lines: lines, heldoutFraction: 0.3, seed: 5)
        XCTAssertEqual(a.heldout.count, 3)
        XCTAssertEqual(a.reference.count, 7)
        XCTAssertEqual(Set(a.heldout).union(a.reference), Set((0..<10).map { "p\($0)" }))
        XCTAssertTrue(Set(a.heldout).isDisjoint(with: a.reference))
        XCTAssertEqual(a.reference, a.reference.sorted { Int($0.dropFirst())! < Int($1.dropFirst())! }, "file order kept")
        XCTAssertEqual(try PromptSplit.make(lines: lines, heldoutFraction: 0.3, seed: 5), a)
        XCTAssertNotEqual(try PromptSplit.make(lines: lines, heldoutFraction: 0.3, seed: 6).heldout, a.heldout)
        XCTAssertEqual(try PromptSplit.make(lines: ["x", "x", "y"], heldoutFraction: 0.5, seed: 0).duplicates, 1)
        XCTAssertThrowsError(try PromptSplit.make(lines: lines, heldoutFraction: 1, seed: 0))
        XCTAssertThrowsError(try PromptSplit.make(lines: ["only"], heldoutFraction: 0.5, seed: 0))
        let dir = try Scratch.dir(self)
        let src = dir.appendingPathComponent("p.txt").path
        try lines.joined(separator: "\n").write(toFile: src, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PromptSplit.write(prompts: src, heldoutFraction: 0.5, seed: 0, reference: src, heldout: dir.appendingPathComponent("h").path))
        XCTAssertEqual(try String(contentsOfFile: src, encoding: .utf8), lines.joined(separator: "\n"), "the input is never overwritten")
    }
}
