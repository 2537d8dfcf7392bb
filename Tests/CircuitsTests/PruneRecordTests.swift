import Foundation
import XCTest
@testable import Circuits
import TestSupport
import Transformer

/// pruning.json: typed (Codable), every key present (nulls explicit), bytes as
/// JSONSerialization writes the same values with sorted keys.
final class PruneRecordTests: XCTestCase {
    func prune(_ scores: ScoreSource, scheme: PruneScheme = .row, amount: PruneAmount? = .fraction(0.5)) throws -> (Data, [String: Any]) {
        let tmp = try Scratch.dir(self)
        let out = tmp.appendingPathComponent("out").path
        try PrunePipeline.run(PruneOptions(model: try Fixtures.path("tiny-opt"), scores: scores,
                                           spec: try PruneSpec(scheme: scheme, amount: amount), out: out))
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/pruning.json"))
        return (data, try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any]))
    }

    func testKeysNullsAndBytes() throws {
        let (data, obj) = try prune(.method(.magnitude, nil))
        XCTAssertEqual(Set(obj.keys), ["tool", "timestamp", "input", "method", "scheme", "scheme_definition", "rank", "target", "layers",
                                       "tie_break", "output_format", "scores", "calibration", "achieved", "units"])
        XCTAssertEqual(obj["tool"] as? String, Workbench.version)
        XCTAssertEqual(obj["method"] as? String, "magnitude")
        XCTAssertTrue(obj["layers"] is NSNull)
        XCTAssertEqual(obj["target"] as? [String: Double], ["sparsity": 0.5])
        // magnitude: every calibration flag, all null.
        let cal = try XCTUnwrap(obj["calibration"] as? [String: Any])
        XCTAssertEqual(Set(cal.keys), ["prompts", "text", "seqlen", "samples", "seed"])
        XCTAssertTrue(cal.values.allSatisfy { $0 is NSNull })
        let achieved = try XCTUnwrap(obj["achieved"] as? [String: Any])
        XCTAssertEqual(Set(achieved.keys), ["tensors", "targeted_weights", "decoder_linear", "all_parameters"])
        let tensors = try XCTUnwrap(achieved["tensors"] as? [[String: Any]])
        XCTAssertEqual(Set(tensors[0].keys), ["name", "shape", "numel", "pruned", "sparsity", "zeros_after"])
        // Row 50% of a 32×32 q_proj: 16 of 32 per row.
        XCTAssertEqual(tensors[0]["name"] as? String, "model.decoder.layers.0.self_attn.q_proj.weight")
        XCTAssertEqual(tensors[0]["pruned"] as? Int, 512)
        let scores = try XCTUnwrap(obj["scores"] as? [String: Any])
        XCTAssertEqual(Set(scores.keys), ["source", "metadata", "prompts_hash"])
        XCTAssertTrue(scores["prompts_hash"] is NSNull)
        // The writer the file had before it was typed: same values → same bytes.
        let again = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
        XCTAssertEqual(String(decoding: data, as: UTF8.self), String(decoding: again, as: UTF8.self))
        // And it reads back as the typed record.
        let record = try JSONDecoder().decode(PruneRecord.self, from: data)
        XCTAssertEqual(record.calibration, CalibrationFlags())
        XCTAssertEqual(try record.json(), data)
    }

    func testScoreFileHasNullCalibrationAndUnits() throws {
        let tmp = try Scratch.dir(self)
        let scoresPath = tmp.appendingPathComponent("s.safetensors").path
        try PruneTestKit.writeScores(PruneTestKit.scores(try PruneTestKit.load(try Fixtures.path("tiny-opt")), seed: 3), to: scoresPath)
        let (data, obj) = try prune(.file(scoresPath), scheme: .neurons, amount: .count(5))
        XCTAssertTrue(obj["calibration"] is NSNull)
        XCTAssertEqual(obj["target"] as? [String: Int], ["count": 5])
        let units = try XCTUnwrap(obj["units"] as? [[String: Any]])
        XCTAssertEqual(units.count, 5)
        XCTAssertEqual(Set(units[0].keys), ["kind", "layer", "index", "score"])
        XCTAssertEqual(units[0]["kind"] as? String, "neuron")
        let again = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
        XCTAssertEqual(String(decoding: data, as: UTF8.self), String(decoding: again, as: UTF8.self))
    }
}
