import Foundation
import XCTest
@testable import Circuits
import Transformer

// MARK: - --seeds: disjoint reference parts and mean ± SEM over runs

final class CircuitSeedsTests: XCTestCase {
    func testPartsAreDisjointEqualInFileOrderAndDeterministic() throws {
        let items = Array(0..<23)
        let p = try ReferenceResamples.parts(items, parts: 3)
        XCTAssertEqual(p.map(\.count), [7, 7, 7])                    // ⌊23 / 3⌋ each; 2 unused
        XCTAssertEqual(Set(p.flatMap { $0 }).count, 21)              // disjoint
        for part in p { XCTAssertEqual(part, part.sorted()) }        // file order kept
        XCTAssertEqual(try ReferenceResamples.parts(items, parts: 3), p)
        XCTAssertNotEqual(p[0], Array(0..<7), "a shuffle, not consecutive blocks")
        XCTAssertEqual(try ReferenceResamples.parts(items, parts: 1), [items])
        XCTAssertThrowsError(try ReferenceResamples.parts(Array(0..<5), parts: 3)) {
            XCTAssertEqual($0 as? CircuitError, .tooFewPromptsForSeeds(prompts: 5, seeds: 3))
        }
    }

    func testMeanSEMClosedForm() {
        // 1, 2, 3, 4: mean 2.5, sample variance 5/3, SEM = sqrt(5/3 / 4) = 0.645497
        let m = MeanSEM([1, 2, 3, 4])
        XCTAssertEqual(m.mean, 2.5)
        XCTAssertEqual(m.sem!, (5.0 / 12).squareRoot(), accuracy: 1e-15)
        XCTAssertNil(MeanSEM([3]).sem)
        XCTAssertEqual(MeanSEM([3]).text(digits: 1), "3.0 (n = 1)")
        XCTAssertEqual(MeanSEM([]).text(), "–")
    }

    func run(seed: Int, kept: Int, fRef: Double, fHeld: Double, units: [(Int, Int)]) -> CircuitSeedRun {
        var r = CircuitSeedRunFixture.make(seed: seed)
        r.kept = kept; r.fraction = Double(kept) / 100; r.fReference = fRef; r.fHeldout = fHeld
        r.units = units.map { CircuitUnit(layer: $0.0, index: $0.1) }
        r.curve = [(0, 0, 0), (Double(kept) / 100, fRef, fHeld), (1, 1, 1)]
        return r
    }

    func testSummaryAggregatesAndCountsRecurringUnits() throws {
        let s = CircuitSeedSummary(runs: [run(seed: 0, kept: 10, fRef: 0.9, fHeld: 0.8, units: [(1, 2), (3, 4)]),
                                          run(seed: 1, kept: 20, fRef: 0.95, fHeld: 0.6, units: [(3, 4), (0, 0)]),
                                          run(seed: 2, kept: 30, fRef: 1.0, fHeld: 0.7, units: [(3, 4), (1, 2)])], granularity: .heads)
        XCTAssertEqual(s.kept.mean, 20); XCTAssertEqual(s.kept.sem!, (100.0 / 3).squareRoot(), accuracy: 1e-12)  // sd 10, /√3
        XCTAssertEqual(s.fHeldout!.mean, 0.7, accuracy: 1e-15)
        XCTAssertEqual(s.fHeldout!.sem!, (0.01 / 3).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(s.recurrence.map { "\($0.unit.name(.heads))×\($0.seeds)" }, ["a3.h4×3", "a1.h2×2", "a0.h0×1"])
        XCTAssertEqual(s.meanCurve.count, 3)
        XCTAssertEqual(s.meanCurve[1].fraction, 0.2, accuracy: 1e-15)
        XCTAssertEqual(s.meanCurve[1].fReference.mean, 0.95, accuracy: 1e-15)
        let j = s.json(settings: ["method": "lrp"])
        XCTAssertEqual((j["kept"] as? [String: Any])?["mean"] as? Double, 20)
        XCTAssertEqual((j["recurring_heads"] as? [[String: Any]])?.first?["name"] as? String, "a3.h4")
        var settings = CircuitSettings()
        settings.method = .random; settings.seed = 7; settings.granularity = .neurons; settings.ablation = .patch
        let csv = s.csv(settings).split(separator: "\n")
        XCTAssertEqual(csv.count, 4)
        XCTAssertEqual(csv[0], "seed,reference_prompts,candidates,kept,fraction,f_reference,f_heldout,auc_reference,auc_heldout,"
                       + "method,aggregation,granularity,ablation,score_sign,scheme,threshold,score_seed")
        XCTAssertTrue(csv[2].hasPrefix("1,32,100,20,0.2,0.95,0.6,"), String(csv[2]))
        // Every row names what produced it; random's score seed is --seed + the row's seed, no aggregation.
        XCTAssertTrue(csv[2].hasSuffix(",random,,neurons,patch,signed,global,0.9,8"), String(csv[2]))
        settings.method = .lrp; settings.aggregation = .absPerToken; settings.rank = .abs
        XCTAssertTrue(s.csv(settings).split(separator: "\n")[1].hasSuffix(",lrp,abs-per-token,neurons,patch,abs,global,0.9,"))
    }
}

/// A seed run with neutral values (the summary tests set what they check).
enum CircuitSeedRunFixture {
    static func make(seed: Int) -> CircuitSeedRun {
        CircuitSeedRun(seed: seed, referencePrompts: 32, total: 100, kept: 0, fraction: 0, fReference: 0, fHeldout: nil,
                       aucReference: 0.5, aucHeldout: 0.4, curve: [], units: [])
    }
}
