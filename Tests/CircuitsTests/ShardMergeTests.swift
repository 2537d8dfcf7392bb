import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// `--shard K/N` + merge: the partition, bit-identity of merged parts with one run (any order,
/// several N), shard resume, and every refusal (other settings/model/version, missing, repeated,
/// altered, corrupt parts) naming what is wrong and writing nothing.
final class ShardMergeTests: XCTestCase {
    typealias F = AttributionFixtures

    func samples(_ model: Model, count: Int) -> [AttributionSample] {
        (0..<count).map { k in
            AttributionSample(label: "s\(k)", tokens: F.tokens(9 + k % 4, vocab: model.config.vocabSize, seed: UInt64(300 + k)),
                              promptLength: 9 + k % 4, explain: .nextToken(from: 0))
        }
    }

    func testPartitionCoversEverySampleOnceWhateverN() throws {
        for total in [0, 1, 7, 64, 1000] {
            for n in 1...9 {
                let ranges = try (0..<n).map { try Shard(index: $0, count: n).range(of: total) }
                XCTAssertEqual(ranges.flatMap { Array($0) }, Array(0..<total), "\(total) over \(n)")
                XCTAssertLessThanOrEqual((ranges.map(\.count).max() ?? 0) - (ranges.map(\.count).min() ?? 0), 1)
            }
        }
        XCTAssertEqual(try Shard(parsing: "2/5").range(of: 10), 4..<6)
        for bad in ["3/3", "-1/2", "1", "a/b", "1/0", "1/2/3", ""] {
            XCTAssertThrowsError(try Shard(parsing: bad), bad) { e in
                guard case .badShard(let s, _)? = e as? DistributedError else { return XCTFail("\(bad): \(e)") }
                XCTAssertEqual(s, bad)
            }
        }
    }

    /// Writes the N parts of `settings` over `ss` into `dir`; returns their paths in shard order.
    func parts(_ model: Model, _ ss: [AttributionSample], _ s: AttributionSettings, n: Int, in dir: URL, tag: String = "") throws -> [String] {
        try (0..<n).map { k in
            var t = s
            t.shard = try Shard(index: k, count: n)
            let p = dir.appendingPathComponent("part\(tag)-\(k)-of-\(n).safetensors").path
            _ = try AttributionRunner.run(model: model, samples: ss, settings: t, out: p)
            return p
        }
    }

    func testMergedPartsAreBitIdenticalToOneRunInAnyOrder() throws {
        let cases: [(String, AttributionMethod, RelevanceAccumulator.Aggregation)] = [
            ("tiny-llama-bias", .lrp, .signed), ("tiny-opt", .lrp, .absPerSample), ("tiny-llama-bias", .gradient, .absPerToken),
            ("tiny-opt", .wanda, .signed), ("tiny-llama-bias", .activation, .signed)]
        for (name, method, agg) in cases {
            let model = try F.tiny(name)
            let ss = samples(model, count: 7)
            let dir = try Scratch.dir(self)
            var s = F.settings(method, samples: 7)
            s.absPerSample = agg == .absPerSample
            s.absPerToken = agg == .absPerToken
            s.modelPath = try Fixtures.path(name)
            if method == .wanda { s.modelSHA256 = try SHA256.model(path: s.modelPath).sha256 }
            let single = dir.appendingPathComponent("single.safetensors").path
            _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: single)
            let want = try TensorBytes.read(single), wantMeta = try SafetensorsFile(path: single).metadata
            for n in [1, 2, 3, 7] {
                let ps = try parts(model, ss, s, n: n, in: dir)
                // Each part holds its own samples' sums only.
                let p0 = try SafetensorsFile(path: ps[0])
                XCTAssertEqual(p0.metadata["shard"], "0/\(n)")
                XCTAssertEqual(p0.metadata["samples_done"], "\(7 / n)")
                XCTAssertEqual(p0.metadata["shard_samples"], Shard.text(0..<(7 / n)))
                var outs: [String] = []
                for (i, order) in [ps, ps.reversed(), ps.shuffled()].enumerated() {
                    let out = dir.appendingPathComponent("merged-\(n)-\(i).safetensors").path
                    let plan = try ShardMerger.plan(order)
                    XCTAssertEqual(plan.map(\.shard.index), Array(0..<n), "sorted into shard order")
                    let sum = try ShardMerger.merge(plan, model: model, modelPath: s.modelPath, out: out, keepParts: true)
                    XCTAssertEqual(sum.samples, 7)
                    outs.append(out)
                }
                for out in outs {
                    XCTAssertEqual(try TensorBytes.read(out), want, "\(name) \(method) \(agg) N=\(n): merged = one run, bit for bit")
                    var m = try SafetensorsFile(path: out).metadata, w = wantMeta
                    // The conservation sum is added in another order (a printed double); all else is the same text.
                    for k in ["conservation_sum", Safetensors.dataChecksumKey] { m[k] = nil; w[k] = nil }
                    XCTAssertEqual(m, w, "\(name) \(method) N=\(n): the metadata one run writes")
                }
                for p in ps { try FileManager.default.removeItem(atPath: p) }
            }
        }
    }

    /// Guards the claim above against a test that cannot fail: F32 running sums split over shards
    /// do round differently (so the F64 sums are what makes merging exact here).
    func testF32ShardSumsWouldDiffer() throws {
        let model = try F.tiny("tiny-llama-bias")
        let ss = samples(model, count: 7)
        let per = try ss.map { s -> [Float] in
            let acc = RelevanceAccumulator(model: model)
            _ = try model.lrp(tokens: s.tokens, explain: s.explain, seed: .logit, rules: .attnLRP, sink: acc)
            return acc.weights[model.linears[0].name]!
        }
        let n = per[0].count
        var sequential = [Float](repeating: 0, count: n), a = sequential, b = sequential
        for k in 0..<7 { for i in 0..<n { sequential[i] += per[k][i] } }
        for k in 0..<3 { for i in 0..<n { a[i] += per[k][i] } }
        for k in 3..<7 { for i in 0..<n { b[i] += per[k][i] } }
        XCTAssertNotEqual(sequential, zip(a, b).map { $0 + $1 }, "F32 sums are order-dependent on this data")
    }

    func testShardResumesBitIdentically() throws {
        let model = try F.tiny("tiny-opt")
        let ss = samples(model, count: 9)
        let dir = try Scratch.dir(self)
        var s = F.settings(.lrp, samples: 9)
        s.shard = try Shard(index: 1, count: 2)
        let oneGo = dir.appendingPathComponent("a.safetensors").path, resumed = dir.appendingPathComponent("b.safetensors").path
        _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: oneGo)
        var o = AttributionRunOptions()
        o.stopAfter = 2
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: resumed, options: o)) { e in
            XCTAssertEqual(e as? AttributionError, .interrupted(samplesDone: 2, total: 5, checkpoint: resumed + ".partial"))
        }
        // The checkpoint belongs to shard 1/2: another shard may not continue it.
        o.stopAfter = nil
        o.resume = true
        var other = s
        other.shard = try Shard(index: 0, count: 2)
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: other, out: resumed, options: o)) { e in
            guard case .resumeMismatch(_, "shard", "1/2", "0/2")? = e as? AttributionError else { return XCTFail("\(e)") }
        }
        let sum = try AttributionRunner.run(model: model, samples: ss, settings: s, out: resumed, options: o)
        XCTAssertEqual(sum.resumedAt, 2)
        XCTAssertEqual(try TensorBytes.read(resumed), try TensorBytes.read(oneGo))
        XCTAssertEqual(try SafetensorsFile(path: resumed).metadata, try SafetensorsFile(path: oneGo).metadata)
    }

    /// Rewrites a part with changed metadata (and a fresh checksum), as another run or tool version would have made it.
    func rewrite(_ path: String, to out: String, _ change: (inout [String: String]) -> Void) throws {
        let f = try SafetensorsFile(path: path)
        var m = f.metadata
        m[Safetensors.dataChecksumKey] = nil
        change(&m)
        let tensors = try f.names.map { OutTensor(name: $0, shape: f.entries[$0]!.shape, payload: .f64(try f.sums($0, count: f.entries[$0]!.shape.reduce(1, *)))) }
        try StreamingSafetensors.write(tensors, metadata: m, checksum: true, to: out)
    }

    func testBadPartsAreRefusedNamingTheProblem() throws {
        let model = try F.tiny("tiny-llama-bias")
        let ss = samples(model, count: 6)
        let dir = try Scratch.dir(self)
        let s = F.settings(.lrp, samples: 6)
        let ps = try parts(model, ss, s, n: 3, in: dir)
        let out = dir.appendingPathComponent("merged.safetensors").path
        func refused(_ paths: [String], verify: Bool = true, _ check: (DistributedError) -> Void) {
            XCTAssertThrowsError(try ShardMerger.plan(paths, verify: verify)) { e in
                guard let d = e as? DistributedError else { return XCTFail("\(e)") }
                check(d)
                XCTAssertFalse(d.localizedDescription.isEmpty)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
        refused([ps[0], ps[2]]) { XCTAssertEqual($0, .missingShards(shards: ["1/3"], samples: "2-3", of: 6)) }
        refused([ps[0], ps[1], ps[1], ps[2]]) { XCTAssertEqual($0, .duplicateShard(shard: "1/3", first: ps[1], second: ps[1])) }
        // Parts of another split of the same run: N differs.
        let two = try parts(model, ss, s, n: 2, in: dir, tag: "b")
        refused([ps[0], ps[1], two[1]]) { e in
            guard case .partsDisagree(let f, _, _, _, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(f, "shard count N")
        }
        // Other settings, data, model, version.
        let changes: [(String, String)] = [("method", "gradient"), ("prompts_sha256", "other"), ("model_sha256", "other"),
                                           ("version", "1 (0.0.1)"), ("seed_value", "one"), ("samples", "7")]
        for (key, value) in changes {
            let alt = dir.appendingPathComponent("alt-\(key).safetensors").path
            try rewrite(ps[1], to: alt) { $0[key] = value }
            refused([ps[0], alt, ps[2]]) { e in
                guard case .partsDisagree(let f, let a, _, let b, let v) = e else { return XCTFail("\(key): \(e)") }
                XCTAssertEqual([f, a, b, v], [key, ps[0], alt, value])
            }
        }
        // A part whose recorded samples are not its shard's.
        let shifted = dir.appendingPathComponent("shifted.safetensors").path
        try rewrite(ps[1], to: shifted) { $0["shard_samples"] = "1-2" }
        refused([ps[0], shifted, ps[2]]) { XCTAssertEqual($0, .wrongSamples(path: shifted, recorded: "1-2 (2 done)", expected: "2-3 (2)")) }
        // A final relevance file, a checkpoint.
        let single = dir.appendingPathComponent("single.safetensors").path
        _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: single)
        refused([ps[0], single, ps[2]]) { XCTAssertEqual($0, .notAPart(path: single, format: "sparc3-relevance")) }
        // Corrupt data: refused by the checksum, unless verification is skipped.
        /// A copy of `part` whose last 8 data bytes are overwritten (its recorded sha256 no longer holds).
        func corruptCopy(_ part: String, _ name: String, _ bytes: [UInt8]) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try FileManager.default.copyItem(atPath: part, toPath: path)
            let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
            try h.seekToEnd()
            try h.seek(toOffset: try h.offset() - 8)
            try h.write(contentsOf: Data(bytes))
            try h.close()
            return path
        }
        let corrupt = try corruptCopy(ps[1], "corrupt.safetensors", [1, 2, 3, 4, 5, 6, 7, 8])
        refused([ps[0], corrupt, ps[2]]) { e in
            guard case .badPart(let p, let r) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(p, corrupt)
            XCTAssertTrue(r.contains("rerun its shard"), r)
        }
        XCTAssertNoThrow(try ShardMerger.plan([ps[0], corrupt, ps[2]], verify: false))
        // Two corrupt parts, hashed side by side: the first in shard order is named, whatever the order given.
        let corrupt2 = try corruptCopy(ps[2], "corrupt2.safetensors", [8, 7, 6, 5, 4, 3, 2, 1])
        for order in [[ps[0], corrupt, corrupt2], [corrupt2, corrupt, ps[0]]] {
            refused(order) { e in
                guard case .badPart(let p, _) = e else { return XCTFail("\(e)") }
                XCTAssertEqual(p, corrupt)
            }
        }
        // A part made with another model's shapes.
        let opt = try F.tiny("tiny-opt")
        XCTAssertThrowsError(try ShardMerger.merge(try ShardMerger.plan(ps), model: opt, modelPath: "tiny-opt", out: out, keepParts: true))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        // Nothing above removed a part; a successful merge without keepParts does.
        for p in ps { XCTAssertTrue(FileManager.default.fileExists(atPath: p)) }
        _ = try ShardMerger.merge(try ShardMerger.plan(ps), model: model, modelPath: "", out: out)
        for p in ps { XCTAssertFalse(FileManager.default.fileExists(atPath: p), "parts removed after the merge") }
        XCTAssertEqual(try TensorBytes.read(out), try TensorBytes.read(single))
    }
}
