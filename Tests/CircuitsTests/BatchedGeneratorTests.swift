import Circuits
import Foundation
import TestSupport
import Transformer
import XCTest

/// Batched decoding must be invisible: the same tokens as one stream at a time through `Model.generate`
/// (greedy and sampled with the stream's seed), whatever the batch size, EOS per stream.
final class BatchedGeneratorTests: XCTestCase {
    func model() throws -> Model { try ModelLoader.load(try Fixtures.path("tiny-llama-bias"), needTokenizer: false).model }

    let prompts = [[1, 5, 9, 200], [3], [17, 4, 4, 4, 4, 4, 99, 12], [250, 7]]

    func oneAtATime(_ m: Model, temperature: Float, seed: UInt64, samples: Int, n: Int, stop: Set<Int> = []) throws -> [[[Int]]] {
        try prompts.enumerated().map { p, ids in
            try (0..<samples).map { s in
                var smp = Sampler(temperature: temperature, topP: 1, seed: BatchedGenerator.streamSeed(seed, prompt: p, sample: s))
                return try m.generate(prompt: ids, maxNewTokens: n, sampler: &smp, stop: stop).tokens
            }
        }
    }

    func testGreedyEqualsModelGenerate() throws {
        let m = try model()
        let want = try oneAtATime(m, temperature: 0, seed: 0, samples: 1, n: 12)
        for rows in [1, 3, 64] {
            XCTAssertEqual(try BatchedGenerator(temperature: 0, maxRows: rows).generate(m, prompts: prompts, samples: 1, maxNewTokens: 12, stop: []),
                           want, "maxRows \(rows)")
        }
        XCTAssertEqual(want.map { $0[0].count }, [12, 12, 12, 12])
    }

    func testSamplesEqualOneStreamAndIgnoreBatchSize() throws {
        let m = try model()
        let want = try oneAtATime(m, temperature: 1, seed: 7, samples: 5, n: 10)
        for rows in [1, 4, 7, 100] {
            XCTAssertEqual(try BatchedGenerator(temperature: 1, seed: 7, maxRows: rows).generate(m, prompts: prompts, samples: 5, maxNewTokens: 10, stop: []),
                           want, "maxRows \(rows)")
        }
        // Samples of one prompt differ (independent streams), and another seed changes them.
        XCTAssertGreaterThan(Set(want[0]).count, 1)
        XCTAssertNotEqual(try BatchedGenerator(temperature: 1, seed: 8).generate(m, prompts: prompts, samples: 5, maxNewTokens: 10, stop: []), want)
    }

    /// A stop id ends only its own stream, and is not part of the continuation.
    func testStopEndsEachStreamAlone() throws {
        let m = try model()
        let free = try oneAtATime(m, temperature: 1, seed: 3, samples: 4, n: 10)
        let stopId = free[0][0][2]   // a token some stream produces third
        let want = try oneAtATime(m, temperature: 1, seed: 3, samples: 4, n: 10, stop: [stopId])
        let got = try BatchedGenerator(temperature: 1, seed: 3, maxRows: 5).generate(m, prompts: prompts, samples: 4, maxNewTokens: 10, stop: [stopId])
        XCTAssertEqual(got, want)
        XCTAssertEqual(got[0][0], Array(free[0][0].prefix(2)))
        XCTAssertTrue(got.joined().contains { $0.count == 10 }, "some stream never meets the stop id")
    }
}
