import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// Checkpoints and relevance files carry a checksum of their data (a flipped bit is refused);
/// a device or FIFO output gets no checkpoints; `prune --force` replaces only what prune wrote
/// and never a directory holding an input; leftovers of killed writers are swept.
final class DataSafetyTests: XCTestCase {
    typealias F = AttributionFixtures

    override func setUp() { signal(SIGPIPE, SIG_IGN) }   // a FIFO test that fails must not kill the test run

    func samples(_ model: Model, count: Int) -> [AttributionSample] {
        (0..<count).map { k in
            AttributionSample(label: "s\(k)", tokens: F.tokens(10 + k, vocab: model.config.vocabSize, seed: UInt64(7 + k)),
                              promptLength: 10 + k, explain: .nextToken(from: 0))
        }
    }

    /// `path` rewritten with the same tensors and metadata minus the checksum key (a file from before checksums).
    func stripChecksum(_ path: String) throws {
        let f = try SafetensorsFile(path: path)
        var meta = f.metadata
        XCTAssertNotNil(meta.removeValue(forKey: Safetensors.dataChecksumKey))
        let records = try f.names.map { n in
            SafetensorsRecord(name: n, dtype: f.entries[n]!.dtype, shape: f.entries[n]!.shape, bytes: [UInt8](try f.rawBytes(n)))
        }
        try Safetensors.write(records, metadata: meta, to: path)
    }

    func flipBit(_ path: String, dataOffset: Int, bit: Int) throws {
        let start = try SafetensorsFile(path: path).dataStart
        var d = try Data(contentsOf: URL(fileURLWithPath: path))
        d[start + dataOffset] ^= UInt8(1 << bit)
        try d.write(to: URL(fileURLWithPath: path))
    }

    // MARK: - Checksums

    func testResumeRefusesAFlippedBitInCheckpointData() throws {
        let model = try F.tiny("tiny-llama-bias")
        let ss = samples(model, count: 4)
        let dir = try Scratch.dir(self)
        let ref = dir.appendingPathComponent("ref.safetensors").path, out = dir.appendingPathComponent("r.safetensors").path
        let s = F.settings(.lrp, samples: 4)
        _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: ref)
        var o = AttributionRunOptions()
        o.stopAfter = 2
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: o))
        let cp = out + ".partial"
        XCTAssertEqual(try SafetensorsFile(path: cp).verifyDataChecksum(), .verified)
        let good = try Data(contentsOf: URL(fileURLWithPath: cp))
        let dataBytes = good.count - (try SafetensorsFile(path: cp).dataStart)
        o.stopAfter = nil
        o.resume = true
        for (offset, bit) in [(0, 0), (dataBytes / 3, 6), (dataBytes - 1, 2)] {
            try good.write(to: URL(fileURLWithPath: cp))
            try flipBit(cp, dataOffset: offset, bit: bit)
            let flipped = try Data(contentsOf: URL(fileURLWithPath: cp))
            XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: o)) { e in
                guard case .badCheckpoint(cp, let reason)? = e as? AttributionError else { return XCTFail("\(e)") }
                XCTAssertTrue(reason.contains("checksum") && reason.contains("corrupt"), reason)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no final file from a corrupt checkpoint")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: cp)), flipped, "checkpoint left as it was")
        }
        // The intact checkpoint resumes to the same file as an uninterrupted run.
        try good.write(to: URL(fileURLWithPath: cp))
        _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: o)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), try Data(contentsOf: URL(fileURLWithPath: ref)))
    }

    func testOlderCheckpointWithoutChecksumResumesWithANote() throws {
        let model = try F.tiny("tiny-opt")
        let ss = samples(model, count: 3)
        let dir = try Scratch.dir(self)
        let ref = dir.appendingPathComponent("ref.safetensors").path, out = dir.appendingPathComponent("r.safetensors").path
        let s = F.settings(.wanda, samples: 3)
        _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: ref)
        var o = AttributionRunOptions()
        o.stopAfter = 1
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: o))
        try stripChecksum(out + ".partial")
        var notes: [String] = []
        o.stopAfter = nil; o.resume = true; o.log = { notes.append($0) }
        XCTAssertEqual(try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: o).resumedAt, 1)
        XCTAssertEqual(notes.count, 1)
        XCTAssertTrue(notes.first?.contains("not verified") == true, "\(notes)")
        XCTAssertEqual(try TensorBytes.read(out), try TensorBytes.read(ref))
    }

    func testRelevanceFileChecksumCoversTheDataAndScoresAreVerified() throws {
        let model = try F.tiny("tiny-opt")
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("rel.safetensors").path
        _ = try AttributionRunner.run(model: model, samples: samples(model, count: 2), settings: F.settings(.lrp, samples: 2), out: out)
        let f = try SafetensorsFile(path: out)
        let data = try Data(contentsOf: URL(fileURLWithPath: out)).suffix(from: f.dataStart)
        XCTAssertEqual(f.metadata[Safetensors.dataChecksumKey], SHA256.hex(data))
        XCTAssertEqual(try ScoreMap.load(path: out).dataChecksum, .verified)
        // The tensor bytes are exactly what the writer produces without a checksum.
        let plain = dir.appendingPathComponent("plain.safetensors").path
        let s = F.settings(.lrp, samples: 2)
        let scorer = AttributionRunner.makeScorer(model, s)
        for x in samples(model, count: 2) { _ = try scorer.process(x) }
        try StreamingSafetensors.write(scorer.finalTensors(samples: 2, tokens: 21), metadata: nil, to: plain)
        XCTAssertEqual(try TensorBytes.read(plain), try TensorBytes.read(out))
        // A flipped bit is refused when the file is used as --scores, naming the file.
        let bad = dir.appendingPathComponent("bad.safetensors").path
        try FileManager.default.copyItem(atPath: out, toPath: bad)
        try flipBit(bad, dataOffset: 5, bit: 4)
        XCTAssertThrowsError(try ScoreMap.load(path: bad)) {
            guard case .mismatch(bad, _, _)? = $0 as? SafetensorsChecksumError else { return XCTFail("\($0)") }
        }
        let spec = try PruneSpec(scheme: .row, amount: .fraction(0.5))
        let pruned = dir.appendingPathComponent("pruned").path
        XCTAssertThrowsError(try PrunePipeline.run(PruneOptions(model: try Fixtures.path("tiny-opt"), scores: .file(bad), spec: spec, out: pruned)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: pruned))
        // A file from before checksums is still accepted, with a note that it is unverified.
        try stripChecksum(bad)
        XCTAssertEqual(try ScoreMap.load(path: bad).dataChecksum, .absent)
        var notes: [String] = []
        try PrunePipeline.run(PruneOptions(model: try Fixtures.path("tiny-opt"), scores: .file(out), spec: spec, out: pruned)) { notes.append($0) }
        XCTAssertFalse(notes.contains { $0.contains("not verified") }, "\(notes)")
        notes = []
        try PrunePipeline.run(PruneOptions(model: try Fixtures.path("tiny-opt"), scores: .file(bad), spec: spec, out: pruned + "2")) { notes.append($0) }
        XCTAssertTrue(notes.contains { $0.contains("not verified") }, "\(notes)")
    }

    // MARK: - Device or FIFO output

    func testFIFOOutputIsWrittenThroughWithoutCheckpoints() throws {
        let model = try F.tiny("tiny-opt")
        let ss = samples(model, count: 3)
        let dir = try Scratch.dir(self)
        let ref = dir.appendingPathComponent("ref.safetensors").path, fifo = dir.appendingPathComponent("pipe").path
        let s = F.settings(.lrp, samples: 3)
        _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: ref)
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        var received = Data()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { received = FileHandle(forReadingAtPath: fifo)?.readDataToEndOfFile() ?? Data(); done.signal() }
        var o = AttributionRunOptions()
        o.checkpointEvery = 1
        _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: fifo, options: o)
        done.wait()
        XCTAssertEqual(received, try Data(contentsOf: URL(fileURLWithPath: ref)), "the reader gets the same file")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["pipe", "ref.safetensors"], "no checkpoint, no temp")
        o.resume = true
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: fifo, options: o)) {
            XCTAssertEqual($0 as? AttributionError, .resumeNeedsFile(out: fifo))
        }
        o.resume = false; o.stopAfter = 1
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: "/dev/null", options: o)) {
            XCTAssertEqual($0 as? AttributionError, .interruptedWithoutCheckpoint(samplesDone: 1, total: 3, out: "/dev/null"))
            XCTAssertTrue(($0 as? AttributionError)?.isInterruption == true)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/null.partial"))
        // A checkpoint path that is not a regular file is refused before any work.
        XCTAssertEqual(mkfifo(dir.appendingPathComponent("x.safetensors.partial").path, 0o600), 0)
        XCTAssertThrowsError(try AttributionRunner.preflight(out: dir.appendingPathComponent("x.safetensors").path, resume: true)) {
            guard case .notRegularFile(_, "FIFO")? = $0 as? OutputError else { return XCTFail("\($0)") }
        }
    }

    // MARK: - prune --force and leftovers

    func prune(_ input: String, _ out: String, scores: ScoreSource = .method(.magnitude, nil), force: Bool = false) throws {
        try PrunePipeline.run(PruneOptions(model: input, scores: scores, spec: try PruneSpec(scheme: .row, amount: .fraction(0.5)),
                                           out: out, force: force))
    }

    func listing(_ dir: String) throws -> [String: Data] {
        var r: [String: Data] = [:]
        for n in try FileManager.default.contentsOfDirectory(atPath: dir) { r[n] = FileManager.default.contents(atPath: dir + "/" + n) }
        return r
    }

    func testForceReplacesOnlyWhatPruneWrote() throws {
        let input = try Fixtures.path("tiny-opt")
        let dir = try Scratch.dir(self).path
        let out = dir + "/pruned"
        try prune(input, out)
        try prune(input, out, force: true)                   // its own earlier output: replaced
        // The user's file in it: refused, everything kept.
        try Data("my notes".utf8).write(to: URL(fileURLWithPath: out + "/notes.txt"))
        let before = try listing(out)
        XCTAssertThrowsError(try prune(input, out, force: true)) {
            guard case .refusingToReplace(out, let reason)? = $0 as? CheckpointWriteError else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("notes.txt"), reason)
        }
        XCTAssertEqual(try listing(out), before)
        // An empty --out is refused (it would resolve to the working directory).
        XCTAssertThrowsError(try prune(input, "", force: true)) { XCTAssertEqual($0 as? OutputError, .emptyPath) }
        // Another model's folder (no pruning.json): refused, untouched.
        let other = dir + "/other"
        try FileManager.default.copyItem(atPath: try Fixtures.path("tiny-llama-bias"), toPath: other)
        let otherBefore = try listing(other)
        XCTAssertThrowsError(try prune(input, other, force: true)) {
            guard case .refusingToReplace(other, let reason)? = $0 as? CheckpointWriteError else { return XCTFail("\($0)") }
            XCTAssertTrue(reason.contains("pruning.json"), reason)
        }
        XCTAssertEqual(try listing(other), otherBefore)
        // An input inside the folder to replace (here the scores file, under a name prune writes): refused.
        try FileManager.default.removeItem(atPath: out + "/notes.txt")
        let rel = dir + "/rel.safetensors"
        let model = try F.tiny("tiny-opt")
        _ = try AttributionRunner.run(model: model, samples: samples(model, count: 1), settings: F.settings(.lrp, samples: 1), out: rel)
        try FileManager.default.removeItem(atPath: out + "/mask.safetensors")
        try FileManager.default.moveItem(atPath: rel, toPath: out + "/mask.safetensors")
        XCTAssertThrowsError(try prune(input, out, scores: .file(out + "/mask.safetensors"), force: true)) {
            guard case .containsInput? = $0 as? OutputError else { return XCTFail("\($0)") }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/mask.safetensors"))
    }

    func testLeftoversOfAKilledPruneAreRemovedByTheNextWrite() throws {
        let input = try Fixtures.path("tiny-opt")
        let dir = try Scratch.dir(self).path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run(); p.waitUntilExit()
        let dead = p.processIdentifier
        let stale = dir + "/.pruned.tmp-\(dead)-77", live = dir + "/.pruned.tmp-1-78"
        for d in [stale, live] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: false)
            try Data(count: 4096).write(to: URL(fileURLWithPath: d + "/.model.safetensors.tmp-\(dead)-1"))
        }
        try Data("mine".utf8).write(to: URL(fileURLWithPath: dir + "/.notes"))
        try prune(input, dir + "/pruned")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), [".notes", ".pruned.tmp-1-78", "pruned"])
    }
}
