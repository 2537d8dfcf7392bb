import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// `prune --method gradient|lrp` aggregation: |R| per position by default (the
/// signed mean measured far worse than magnitude for compression), selectable.
final class PruneAggregationTests: XCTestCase {
    func corpus() throws -> String {
        let dir = try Scratch.dir(self)
        let path = dir.appendingPathComponent("corpus.txt").path
        let text = String(repeating: "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ", count: 6)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func scores(_ agg: RelevanceAccumulator.Aggregation?) throws -> ScoreMap {
        let (model, info) = try CheckpointSourceInfo.load(try Assets.path("stories260K/hf"))
        let cal = Calibration.corpus(path: try corpus(), seqlen: 24, samples: 2, seed: 0)
        return try OnTheFlyScores.compute(method: .lrp, calibration: cal, aggregation: agg ?? defaultAggregation, model: model,
                                          source: info, log: { _ in })
    }

    /// The aggregation `ScoreSource.method` gets when none is given.
    var defaultAggregation: RelevanceAccumulator.Aggregation {
        if case .method(_, _, let a) = ScoreSource.method(.lrp, nil) { return a }
        return .signed
    }

    func testDefaultIsAbsPerTokenAndRecorded() throws {
        XCTAssertEqual(defaultAggregation, .absPerToken)
        let map = try scores(nil)
        XCTAssertEqual(map.metadata["abs_per_token"], "true")
        XCTAssertEqual(map.metadata["abs_per_sample"], "false")
        let w = try XCTUnwrap(map.tensors["model.layers.0.mlp.up_proj.weight"]).data
        XCTAssertTrue(w.allSatisfy { $0 >= 0 }, "Σ_t |R_t| cannot be negative")
        XCTAssertGreaterThan(w.reduce(0, +), 0)
    }

    func testSignedStaysAvailable() throws {
        let map = try scores(.signed)
        XCTAssertEqual(map.metadata["abs_per_token"], "false")
        let w = try XCTUnwrap(map.tensors["model.layers.0.mlp.up_proj.weight"]).data
        XCTAssertTrue(w.contains { $0 < 0 }, "the signed mean has negative scores")
    }
}
