import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// The driver: Eq. 1 averaging, |R| per sample, gradient, checkpoint/resume bit-identity,
/// settings checks, output format and metadata.
final class AttributionRunnerTests: XCTestCase {
    typealias F = AttributionFixtures

    /// Samples of random ids on a tiny model, next-token target.
    func samples(_ model: Model, count: Int, length: Int = 12) -> [AttributionSample] {
        (0..<count).map { k in
            AttributionSample(label: "s\(k)", tokens: F.tokens(length + k, vocab: model.config.vocabSize, seed: UInt64(100 + k)),
                              promptLength: length + k, explain: .nextToken(from: 0))
        }
    }

    /// Per-sample R_W maps computed independently (one accumulator per sample).
    func perSample(_ model: Model, _ s: AttributionSample, rules: LRPRules = .attnLRP, abs: Bool = false) throws -> [String: [Float]] {
        let acc = RelevanceAccumulator(model: model, absPerSample: abs)
        _ = try model.lrp(tokens: s.tokens, explain: s.explain, seed: .logit, rules: rules, sink: acc)
        var out = acc.weights
        for (k, v) in acc.units { out[k] = v }
        return out
    }

    func read(_ path: String) throws -> (SafetensorsFile, [String: [Float]]) {
        let f = try SafetensorsFile(path: path)
        var t: [String: [Float]] = [:]
        for n in f.names { t[n] = try f.tensor(n).data }
        return (f, t)
    }

    // MARK: - Eq. 1

    func testTwoSamplesGiveTheMeanOfPerSampleMaps() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let model = try F.tiny(name)
            let ss = samples(model, count: 2)
            let out = try Scratch.dir(self).appendingPathComponent("r.safetensors").path
            let summary = try AttributionRunner.run(model: model, samples: ss, settings: F.settings(.lrp, samples: 2), out: out)
            XCTAssertEqual(summary.samples, 2)
            XCTAssertEqual(summary.tokens, 12 + 13)
            let a = try perSample(model, ss[0]), b = try perSample(model, ss[1])
            let (_, t) = try read(out)
            XCTAssertEqual(Set(t.keys), Set(a.keys), "weights under HF names + neuron/head scores")
            for l in model.linears { XCTAssertEqual(t[l.name]?.count, l.weight.count) }
            var maxDiff: Float = 0, scale: Float = 0
            for (k, v) in t {
                for i in v.indices {
                    let expected = (a[k]![i] + b[k]![i]) / 2
                    maxDiff = max(maxDiff, abs(v[i] - expected)); scale = max(scale, abs(expected))
                }
            }
            XCTAssertGreaterThan(scale, 0)
            XCTAssertLessThanOrEqual(maxDiff, 1e-6 * scale, "\(name): file = mean of the per-sample maps")
            // And it is not simply one of them.
            let q = model.linears[0].name
            XCTAssertNotEqual(t[q]!, a[q]!)
        }
    }

    func testAbsPerSampleIsMeanOfAbsoluteMapsAndDiffersFromSigned() throws {
        let model = try F.tiny("tiny-llama-bias")
        let ss = samples(model, count: 2)
        let dir = try Scratch.dir(self)
        let signed = dir.appendingPathComponent("s.safetensors").path, absolute = dir.appendingPathComponent("a.safetensors").path
        _ = try AttributionRunner.run(model: model, samples: ss, settings: F.settings(.lrp, samples: 2), out: signed)
        _ = try AttributionRunner.run(model: model, samples: ss, settings: F.settings(.lrp, samples: 2, abs: true), out: absolute)
        let (fa, ta) = try read(absolute), (_, ts) = try read(signed)
        XCTAssertEqual(fa.metadata["abs_per_sample"], "true")
        let a = try perSample(model, ss[0]), b = try perSample(model, ss[1])
        var differs = false
        for (k, v) in ta {
            for i in v.indices {
                let expected = (abs(a[k]![i]) + abs(b[k]![i])) / 2
                XCTAssertEqual(v[i], expected, accuracy: 1e-6 * max(1, abs(expected)), "\(k)[\(i)]")
                XCTAssertGreaterThanOrEqual(v[i], 0)
                if abs(v[i] - ts[k]![i]) > 1e-6 { differs = true }
            }
        }
        XCTAssertTrue(differs, "|R| per sample must differ from the signed mean")
    }

    func testGradientMethodIsPlainGradientTimesWeight() throws {
        let model = try F.tiny("tiny-llama-bias")
        let ss = samples(model, count: 1)
        let dir = try Scratch.dir(self)
        let g = dir.appendingPathComponent("g.safetensors").path, l = dir.appendingPathComponent("l.safetensors").path
        _ = try AttributionRunner.run(model: model, samples: ss, settings: F.settings(.gradient, samples: 1), out: g)
        _ = try AttributionRunner.run(model: model, samples: ss, settings: F.settings(.lrp, samples: 1), out: l)
        let (fg, tg) = try read(g), (_, tl) = try read(l)
        XCTAssertEqual(fg.metadata["rule"], "gradient")
        let ref = try perSample(model, ss[0], rules: .gradient)
        for lin in model.linears { XCTAssertEqual(tg[lin.name]!, ref[lin.name]!, lin.name) }
        XCTAssertNotEqual(tg[model.linears[0].name]!, tl[model.linears[0].name]!, "gradient ≠ AttnLRP")
    }

    // MARK: - Resume

    func testResumeGivesBitIdenticalTensors() throws {
        for method in [AttributionMethod.lrp, .wanda, .activation] {
            let model = try F.tiny("tiny-opt")
            let ss = samples(model, count: 5)
            let dir = try Scratch.dir(self)
            let oneGo = dir.appendingPathComponent("one.safetensors").path
            let resumed = dir.appendingPathComponent("two.safetensors").path
            var s = F.settings(method, samples: 5, abs: false)
            if method == .lrp { s.absPerSample = true }
            var o = AttributionRunOptions()
            o.checkpointEvery = 2
            _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: oneGo, options: o)
            XCTAssertFalse(FileManager.default.fileExists(atPath: oneGo + ".partial"), "checkpoint removed at the end")
            // Stop after 3 samples (as a signal would), then resume.
            o.stopAfter = 3
            XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: resumed, options: o)) { e in
                XCTAssertEqual(e as? AttributionError, .interrupted(samplesDone: 3, total: 5, checkpoint: resumed + ".partial"))
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: resumed), "no final file after a stop")
            let partial = try SafetensorsFile(path: resumed + ".partial")
            XCTAssertEqual(partial.metadata["samples_done"], "3")
            XCTAssertEqual(partial.metadata["format"], "sparc3-relevance-partial")
            XCTAssertEqual(partial.metadata["fingerprint"], s.fingerprint)
            // Without --resume the leftover checkpoint is refused.
            o.stopAfter = nil
            XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: resumed, options: o)) { e in
                XCTAssertEqual(e as? AttributionError, .checkpointExists(path: resumed + ".partial"))
            }
            o.resume = true
            let sum = try AttributionRunner.run(model: model, samples: ss, settings: s, out: resumed, options: o)
            XCTAssertEqual(sum.resumedAt, 3)
            XCTAssertEqual(sum.samples, 5)
            XCTAssertFalse(FileManager.default.fileExists(atPath: resumed + ".partial"))
            XCTAssertEqual(try TensorBytes.read(resumed), try TensorBytes.read(oneGo), "\(method): bit-identical tensors")
            XCTAssertEqual(try SafetensorsFile(path: resumed).metadata, try SafetensorsFile(path: oneGo).metadata)
        }
    }

    func testResumeWithOtherSettingsIsAnErrorNamingTheFieldAndWritesNothing() throws {
        let model = try F.tiny("tiny-llama-bias")
        let ss = samples(model, count: 4)
        let out = try Scratch.dir(self).appendingPathComponent("r.safetensors").path
        let s = F.settings(.lrp, samples: 4)
        var o = AttributionRunOptions()
        o.stopAfter = 2
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: o))
        let before = try Data(contentsOf: URL(fileURLWithPath: out + ".partial"))
        o.stopAfter = nil
        o.resume = true
        var changes: [(String, (inout AttributionSettings) -> Void)] = [
            ("abs_per_sample", { $0.absPerSample = true }),
            ("seed_value", { $0.seedValue = .one }),
            ("rule", { $0.rules = .cpLRP }),
            ("epsilon", { $0.rules = LRPRules(.attnLRP, epsilon: 1e-6) }),
            ("target", { $0.target = .lastMax }),
            ("method", { $0.method = .gradient }),
            ("model_sha256", { $0.modelSHA256 = "other" }),
            ("prompts_sha256", { $0.dataSHA256 = "other" }),
        ]
        changes.append(("seqlen", { $0.dataKind = .corpus; $0.seqlen = 12 }))
        for (field, change) in changes {
            var t = s
            change(&t)
            XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: t, out: out, options: o), field) { e in
                guard case .resumeMismatch(let p, let f, _, _)? = e as? AttributionError else { return XCTFail("\(field): \(e)") }
                XCTAssertEqual(p, out + ".partial")
                XCTAssertEqual(f, field)
                XCTAssertTrue(e.localizedDescription.contains(field), e.localizedDescription)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(field): nothing written")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + ".partial")), before, "\(field): checkpoint untouched")
        }
        // Same settings but a different number of samples.
        var more = s
        more.samples = 5
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: samples(model, count: 5), settings: more, out: out, options: o)) { e in
            guard case .resumeMismatch(_, "samples", "4", "5")? = e as? AttributionError else { return XCTFail("\(e)") }
        }
        // A file that is not a checkpoint.
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: out + ".partial"))
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: o)) { e in
            guard case .badCheckpoint? = e as? AttributionError else { return XCTFail("\(e)") }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// A hard kill (no chance to write) leaves the last periodic checkpoint: resuming from it is bit-identical too.
    func testResumeFromPeriodicCheckpointAfterHardKill() throws {
        let model = try F.tiny("tiny-llama-bias")
        let ss = samples(model, count: 5)
        let dir = try Scratch.dir(self)
        let out = dir.appendingPathComponent("r.safetensors").path, backup = dir.appendingPathComponent("saved.partial").path
        let s = F.settings(.lrp, samples: 5)
        var o = AttributionRunOptions()
        o.checkpointEvery = 2
        var seen: [String] = []
        o.shouldStop = {   // called before each sample: snapshot the checkpoint as a killed process would leave it
            if let m = try? SafetensorsFile(path: out + ".partial").metadata["samples_done"], !seen.contains(m) {
                seen.append(m)
                if m == "4" { try? FileManager.default.copyItem(atPath: out + ".partial", toPath: backup) }
            }
            return false
        }
        _ = try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: o)
        XCTAssertEqual(seen, ["2", "4"], "checkpoints after samples 2 and 4")
        let full = try TensorBytes.read(out)
        try FileManager.default.removeItem(atPath: out)
        try FileManager.default.moveItem(atPath: backup, toPath: out + ".partial")
        var r = AttributionRunOptions()
        r.resume = true
        let sum = try AttributionRunner.run(model: model, samples: ss, settings: s, out: out, options: r)
        XCTAssertEqual(sum.resumedAt, 4)
        XCTAssertEqual(try TensorBytes.read(out), full)
    }

    func testShouldStopHookCheckpointsBetweenSamples() throws {
        let model = try F.tiny("tiny-opt")
        let ss = samples(model, count: 3)
        let out = try Scratch.dir(self).appendingPathComponent("r.safetensors").path
        var calls = 0
        var o = AttributionRunOptions()
        o.checkpointEvery = 0
        o.shouldStop = { calls += 1; return calls == 2 }   // set "during" sample 0
        XCTAssertThrowsError(try AttributionRunner.run(model: model, samples: ss, settings: F.settings(.lrp, samples: 3), out: out, options: o)) {
            XCTAssertEqual($0 as? AttributionError, .interrupted(samplesDone: 1, total: 3, checkpoint: out + ".partial"))
        }
        XCTAssertEqual(try SafetensorsFile(path: out + ".partial").metadata["samples_done"], "1")
    }

    // MARK: - Format

    func testMetadataAndLayout() throws {
        let model = try F.tiny("tiny-llama-bias")
        let out = try Scratch.dir(self).appendingPathComponent("r.safetensors").path
        var s = F.settings(.lrp, samples: 2)
        s.modelPath = "tiny"
        s.modelFiles = ["config.json", "model.safetensors"]
        _ = try AttributionRunner.run(model: model, samples: samples(model, count: 2), settings: s, out: out)
        let f = try SafetensorsFile(path: out)
        for key in ["method", "rule", "epsilon", "target", "seed_value", "samples", "seqlen", "model_sha256", "prompts_sha256",
                    "version", "seed", "abs_per_sample", "tokens", "format", "fingerprint", "aggregation", "conservation_mean",
                    "model", "prompts", "model_files", "neuron_scores", "head_scores"] {
            XCTAssertNotNil(f.metadata[key], "metadata '\(key)'")
        }
        XCTAssertEqual(f.metadata["method"], "lrp")
        XCTAssertEqual(f.metadata["rule"], "attnlrp")
        XCTAssertEqual(f.metadata["samples"], "2")
        XCTAssertEqual(f.metadata["tokens"], "25")
        XCTAssertEqual(f.metadata["model_sha256"], "model-sha")
        XCTAssertEqual(f.metadata["format"], "sparc3-relevance")
        for b in model.blocks {
            XCTAssertEqual(f.entries[ScoreNames.neurons(model, layer: b.index)]?.shape, [model.config.dFF])
            XCTAssertEqual(f.entries[ScoreNames.heads(model, layer: b.index)]?.shape, [model.config.nHeads])
        }
        for l in model.linears { XCTAssertEqual(f.entries[l.name]?.shape, [l.outDim, l.inDim]) }
    }

    func testStreamingWriterMatchesSafetensorsSerialize() throws {
        let out = try Scratch.dir(self).appendingPathComponent("w.safetensors").path
        let a: [Float] = (0..<37).map { Float($0) * 0.5 - 3 }, b: [Float] = [1, -2, 3]
        let meta = ["z": "last", "a": "quote \" and \\ and \n newline", "m": "ünïcødé"]
        try StreamingSafetensors.write([OutTensor(name: "b.weight", shape: [3], payload: .f32(b)),
                                        OutTensor(name: "a.weight", shape: [37], payload: .computed(count: 37) { r, d in
                                            for i in r { d[i - r.lowerBound] = a[i] } })], metadata: meta, to: out)
        let expected = Safetensors.serialize([SafetensorsRecord(name: "a.weight", tensor: Tensor(shape: [37], data: a)),
                                              SafetensorsRecord(name: "b.weight", tensor: Tensor(shape: [3], data: b))], metadata: meta)
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: out))), expected)
        let f = try SafetensorsFile(path: out)
        XCTAssertEqual(f.metadata, meta)
        // F64 round trip is bit-exact.
        let d: [Double] = [1.0 / 3.0, -2e-300, .pi]
        try StreamingSafetensors.write([OutTensor(name: "x", shape: [3], payload: .f64(d))], metadata: nil, to: out)
        XCTAssertEqual(try SafetensorsFile(path: out).sums("x", count: 3), d)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: (out as NSString).deletingLastPathComponent)
        XCTAssertEqual(leftovers, ["w.safetensors"], "no temporary files left")
    }

    func testSHA256KnownVectors() throws {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        var inc = SHA256()
        for chunk in stride(from: 0, to: 1_000_000, by: 4099) { inc.update([UInt8](repeating: 0x61, count: min(4099, 1_000_000 - chunk))) }
        XCTAssertEqual(inc.finalizeHex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

// MARK: - Units only (head and neuron circuits)

final class UnitsOnlyAttributionTests: XCTestCase {
    /// Skipping every δW changes no neuron or head score (bit for bit) for lrp and gradient in every
    /// aggregation, on both tiny families, and returns no weight tensor.
    func testUnitScoresAreThoseOfTheFullRunWithoutWeightTensors() throws {
        for name in ["tiny-llama-bias", "tiny-opt"] {
            let model = try AttributionFixtures.tiny(name)
            let smp = (0..<3).map { k in
                AttributionSample(label: "s\(k)", tokens: AttributionFixtures.tokens(9 + k, vocab: model.config.vocabSize, seed: UInt64(7 + k)),
                                  promptLength: 9 + k, explain: .nextToken(from: 0))
            }
            for method in [AttributionMethod.lrp, .gradient] {
                for (perSample, perToken) in [(false, false), (true, false), (false, true)] {
                    var s = AttributionSettings()
                    s.method = method; s.dataKind = .prompts; s.samples = smp.count
                    s.absPerSample = perSample; s.absPerToken = perToken
                    let full = try AttributionRunner.scores(model: model, samples: smp, settings: s).tensors
                    s.unitsOnly = true
                    let units = try AttributionRunner.scores(model: model, samples: smp, settings: s).tensors
                    let tag = "\(name) \(method) perSample \(perSample) perToken \(perToken)"
                    let unitNames = Set(model.blocks.flatMap { [ScoreNames.neurons(model, layer: $0.index), ScoreNames.heads(model, layer: $0.index)] })
                    XCTAssertEqual(Set(units.keys), unitNames, tag)
                    XCTAssertTrue(model.linears.allSatisfy { full[$0.name] != nil }, tag)
                    for n in unitNames {
                        XCTAssertEqual(units[n]?.data, full[n]?.data, "\(tag) \(n)")
                        XCTAssertTrue(full[n]!.data.contains { $0 != 0 }, "\(tag) \(n): scores are not all zero")
                    }
                }
            }
        }
    }
}
