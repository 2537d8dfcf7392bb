import Foundation
import XCTest
@testable import Circuits
import TestSupport
import Transformer

/// The one calibration type: flag rules, sample building, provenance, and the
/// on-the-fly scores it feeds (in memory, bit-identical to a relevance file).
final class CalibrationTests: XCTestCase {
    typealias F = AttributionFixtures

    func parse(prompts: String? = nil, text: String? = nil, seqlen: Int? = nil, samples: Int? = nil, seed: UInt64? = nil,
               needsData: Bool = true) throws -> Calibration? {
        try Calibration.parse(prompts: prompts, text: text, seqlen: seqlen, samples: samples, seed: seed, needsData: needsData, method: "lrp")
    }

    func assertError(_ expected: CalibrationError, _ body: () throws -> Any?, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { XCTAssertEqual($0 as? CalibrationError, expected, line: line) }
    }

    // MARK: - Flag rules

    func testFlagRules() throws {
        XCTAssertEqual(try parse(prompts: "p.txt"), .prompts(path: "p.txt", first: nil))
        XCTAssertEqual(try parse(prompts: "p.txt", samples: 3), .prompts(path: "p.txt", first: 3))
        XCTAssertEqual(try parse(text: "c.txt", seqlen: 32, samples: 4), .corpus(path: "c.txt", seqlen: 32, samples: 4, seed: nil))
        XCTAssertEqual(try parse(text: "c.txt", seqlen: 32, samples: 4, seed: 7), .corpus(path: "c.txt", seqlen: 32, samples: 4, seed: 7))
        XCTAssertNil(try parse(needsData: false))
        assertError(.missingData(method: "lrp")) { try self.parse() }
        assertError(.bothSources) { try self.parse(prompts: "p.txt", text: "c.txt", seqlen: 8, samples: 2) }
        assertError(.windowsNeedSize) { try self.parse(text: "c.txt") }
        assertError(.windowsNeedSize) { try self.parse(text: "c.txt", seqlen: 8) }
        assertError(.corpusOnly) { try self.parse(prompts: "p.txt", seqlen: 8) }
        assertError(.corpusOnly) { try self.parse(prompts: "p.txt", seed: 1) }
        assertError(.noDataNeeded(method: "lrp")) { try self.parse(prompts: "p.txt", needsData: false) }
        assertError(.noDataNeeded(method: "lrp")) { try self.parse(seed: 0, needsData: false) }
        assertError(.outOfRange(flag: "seqlen", value: 1, min: 2)) { try self.parse(text: "c.txt", seqlen: 1, samples: 2) }
        assertError(.outOfRange(flag: "samples", value: 0, min: 1)) { try self.parse(prompts: "p.txt", samples: 0) }
        XCTAssertThrowsError(try Calibration.corpus(path: "c", seqlen: 8, samples: 1, seed: nil).check(target: .continuation))
        XCTAssertNoThrow(try Calibration.prompts(path: "p", first: nil).check(target: .continuation))
        XCTAssertTrue(CalibrationError.bothSources.localizedDescription.contains("'--prompts' and '--text'"))
    }

    // MARK: - Provenance

    func testRecordAndFlags() {
        var s = AttributionSettings()
        Calibration.corpus(path: "c.txt", seqlen: 16, samples: 3, seed: nil).record(into: &s)
        XCTAssertEqual(s.dataKind, .corpus); XCTAssertEqual(s.dataPath, "c.txt")
        XCTAssertEqual(s.seqlen, 16); XCTAssertEqual(s.corpusSeed, 0, "an absent seed means 0")
        var p = AttributionSettings()
        Calibration.prompts(path: "p.txt", first: 2).record(into: &p)
        XCTAssertEqual(p.dataKind, .prompts); XCTAssertEqual(p.dataPath, "p.txt")
        XCTAssertNil(p.seqlen); XCTAssertNil(p.corpusSeed)
        // The flags as given: an absent seed stays null in pruning.json.
        XCTAssertEqual(Calibration.corpus(path: "c.txt", seqlen: 16, samples: 3, seed: nil).flags,
                       CalibrationFlags(text: "c.txt", seqlen: 16, samples: 3, seed: nil))
        XCTAssertEqual(Calibration.prompts(path: "p.txt", first: 2).flags, CalibrationFlags(prompts: "p.txt", samples: 2))
    }

    func testFlagsEncodeEveryKeyWithNulls() throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        let json = String(decoding: try e.encode(CalibrationFlags(prompts: "p.txt", samples: 2)), as: UTF8.self)
        XCTAssertEqual(json, #"{"prompts":"p.txt","samples":2,"seed":null,"seqlen":null,"text":null}"#)
    }

    // MARK: - Samples

    func testSamplesFromPromptsAndCorpus() throws {
        let dir = try Scratch.dir(self)
        let prompts = dir.appendingPathComponent("p.jsonl").path
        try #"{"ids": [1, 2, 3]}"#.appending("\n" + #"{"ids": [4, 5, 6, 7]}"#).write(toFile: prompts, atomically: true, encoding: .utf8)
        let model = try F.tiny("tiny-llama-bias")
        let all = try Calibration.prompts(path: prompts, first: nil).samples(model: model, tokenizer: nil, modelPath: "m", target: .auto)
        XCTAssertEqual(all.map(\.tokens), [[1, 2, 3], [4, 5, 6, 7]])
        let first = try Calibration.prompts(path: prompts, first: 1).samples(model: model, tokenizer: nil, modelPath: "m", target: .auto)
        XCTAssertEqual(first.map(\.tokens), [[1, 2, 3]])
        XCTAssertThrowsError(try Calibration.prompts(path: prompts, first: 3).samples(model: model, tokenizer: nil, modelPath: "m", target: .auto)) {
            XCTAssertEqual($0 as? CalibrationError, .tooFewPrompts(path: prompts, requested: 3, available: 2))
        }
        // Corpus windows need a tokenizer; the error names the model.
        XCTAssertThrowsError(try Calibration.corpus(path: prompts, seqlen: 4, samples: 1, seed: nil)
            .samples(model: model, tokenizer: nil, modelPath: "the-model", target: .auto)) {
            XCTAssertEqual($0 as? ModelError, .missingTokenizer(path: "the-model"))
        }
    }

    // MARK: - In-memory scores = the relevance file, bit for bit

    func testInMemoryScoresEqualTheWrittenFile() throws {
        for (fixture, method) in [("tiny-llama-bias", AttributionMethod.lrp), ("tiny-opt", .lrp), ("tiny-opt", .gradient),
                                  ("tiny-llama-bias", .wanda), ("tiny-opt", .activation)] {
            var settings = F.settings(method, samples: 3)
            settings.absPerToken = method == .lrp && fixture == "tiny-opt"
            // Fresh models: the LRP scorer hands its sums over, and the file run must not share them.
            let fileModel = try F.tiny(fixture), memModel = try F.tiny(fixture)
            let ss = (0..<3).map { k in
                AttributionSample(label: "s\(k)", tokens: F.tokens(9 + k, vocab: fileModel.config.vocabSize, seed: UInt64(40 + k)),
                                  promptLength: 9 + k, explain: .nextToken(from: 0))
            }
            let out = try Scratch.dir(self).appendingPathComponent("r.safetensors").path
            _ = try AttributionRunner.run(model: fileModel, samples: ss, settings: settings, out: out)
            let file = try ScoreMap.load(path: out)
            let mem = try AttributionRunner.scores(model: memModel, samples: ss, settings: settings)
            // The file adds only the checksum of its tensor data (verified by ScoreMap.load).
            var fileMeta = file.metadata
            XCTAssertNotNil(fileMeta.removeValue(forKey: Safetensors.dataChecksumKey), "\(fixture) \(method)")
            XCTAssertEqual(file.dataChecksum, .verified)
            XCTAssertEqual(mem.metadata, fileMeta, "\(fixture) \(method)")
            XCTAssertEqual(Set(mem.tensors.keys), Set(file.tensors.keys), "\(fixture) \(method)")
            XCTAssertFalse(mem.tensors.isEmpty)
            for (name, t) in file.tensors {
                let m = try XCTUnwrap(mem.tensors[name])
                XCTAssertEqual(m.shape, t.shape, name)
                XCTAssertEqual(m.data.map(\.bitPattern), t.data.map(\.bitPattern), "\(fixture) \(method) \(name)")
            }
            XCTAssertTrue(file.tensors.values.contains { $0.data.contains { $0 != 0 } }, "non-trivial scores")
            XCTAssertEqual(mem.summary.samples, 3)
        }
    }

    /// @ExplicitNull: nil is written as null; a file without the key (older writer) still reads, as nil.
    func testExplicitNullWritesNullAndReadsAbsentKeys() throws {
        let e = JSONEncoder(); e.outputFormatting = .sortedKeys
        XCTAssertEqual(String(decoding: try e.encode(CalibrationFlags(seqlen: 7)), as: UTF8.self),
                       #"{"prompts":null,"samples":null,"seed":null,"seqlen":7,"text":null}"#)
        let read = try JSONDecoder().decode(CalibrationFlags.self, from: Data(#"{"seqlen": 7, "seed": 18446744073709551615}"#.utf8))
        XCTAssertEqual(read, CalibrationFlags(seqlen: 7, seed: .max))
        XCTAssertThrowsError(try JSONDecoder().decode(CalibrationFlags.self, from: Data(#"{"seqlen": "x"}"#.utf8)))
    }
}
