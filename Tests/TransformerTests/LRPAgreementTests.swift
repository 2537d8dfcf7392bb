import Foundation
import XCTest
@testable import Transformer
import TestSupport

/// Sums R_W = W ⊙ δW over calls (signed), plus neuron/head relevance.
final class SumSink: RelevanceSink {
    var weights: [String: [Float]] = [:]
    var neurons: [Int: [Float]] = [:]
    var heads: [Int: [Float]] = [:]
    func weightGradient(_ l: Linear, _ dW: UnsafePointer<Float>) {
        var r = weights[l.name] ?? [Float](repeating: 0, count: l.weight.count)
        for i in r.indices { r[i] += l.weight[i] * dW[i] }
        weights[l.name] = r
    }
    func neurons(layer: Int, _ r: [Float]) { neurons[layer] = zip(neurons[layer] ?? r.map { _ in 0 }, r).map { $0 + $1 } }
    func heads(layer: Int, _ r: [Float]) { heads[layer] = zip(heads[layer] ?? r.map { _ in 0 }, r).map { $0 + $1 } }
}

func cosineAndRelErr(_ a: [Float], _ b: [Float]) -> (cos: Double, rel: Double) {
    var ab = 0.0, aa = 0.0, bb = 0.0, dd = 0.0
    for i in a.indices {
        let x = Double(a[i]), y = Double(b[i])
        ab += x * y; aa += x * x; bb += y * y; dd += (x - y) * (x - y)
    }
    return (ab / max((aa * bb).squareRoot(), 1e-30), dd.squareRoot() / max(bb.squareRoot(), 1e-30))
}

/// Agreement with lxt 2.1 efficient AttnLRP (Llama) and the equivalent
/// hand-written OPT rules (GPT-2 patch pattern). Goldens:
/// Tests/Fixtures/goldens/lrp_*.safetensors + lrp_goldens.json, made by
/// tools/lxt_goldens.py (recipe in tools/README.md).
final class LRPAgreementTests: XCTestCase {
    func stories260K() throws -> Model {
        let p = try Assets.path("stories260K/hf")
        return try Model.build(from: ModelLoader.loadHFDirectory(p))
    }

    func compare(model: Model, job: String, seed: SeedValue, rules: LRPRules = .attnLRP, file: String) throws {
        let goldens = try Fixtures.json("goldens/lrp_goldens.json")
        let j = try XCTUnwrap((goldens["jobs"] as? [String: Any])?[job] as? [String: Any])
        let seqs = try XCTUnwrap(j["sequences"] as? [[String: Any]])
        let st = try SafetensorsFile(path: try Fixtures.path("goldens/" + file))
        let sink = SumSink()
        var inputSum = 0.0, explainedSum = 0.0
        for (k, s) in seqs.enumerated() {
            let ids = try XCTUnwrap(s["ids"] as? [Int])
            let r = try model.lrp(tokens: ids, explain: .nextToken(from: 0), seed: seed, rules: rules, sink: sink)
            // Explained logits equal HF's.
            let want = try XCTUnwrap(s["explained_logits"] as? [Double])
            for (i, t) in r.terms.enumerated() { XCTAssertEqual(Double(t.logit), want[i], accuracy: 1e-4) }
            // Per-token input relevance.
            let key = "input_relevance.seq\(k)"
            if st.entries[key] != nil {
                let g = try st.tensor(key).data
                let got = zip(r.tokenRelevance, r.positionRelevance ?? r.tokenRelevance.map { _ in 0 }).map { $0 + $1 }
                let m = cosineAndRelErr(st.entries[key]!.shape.count == 1 && g.count == ids.count ? got : r.tokenRelevance, g)
                XCTAssertGreaterThan(m.cos, 0.999, "\(job) \(key) cosine")
                XCTAssertLessThan(m.rel, 1e-3, "\(job) \(key) rel L2")
            }
            inputSum += r.inputTotal
            explainedSum += r.explained
        }
        // Per-weight relevance, every decoder linear weight in the file.
        var compared = 0
        for name in st.names where name.hasSuffix("_proj.weight") || name.hasSuffix("fc1.weight") || name.hasSuffix("fc2.weight") {
            let g = try st.tensor(name).data
            let got = try XCTUnwrap(sink.weights[name], "no relevance for \(name)")
            let m = cosineAndRelErr(got, g)
            XCTAssertGreaterThan(m.cos, 0.999, "\(job) \(name) cosine \(m.cos)")
            XCTAssertLessThan(m.rel, 1e-3, "\(job) \(name) rel L2 \(m.rel)")
            compared += 1
        }
        XCTAssertGreaterThan(compared, 0)
        // Conservation ratio Σ input relevance / Σ explained equals lxt's (not 1: the softmax rule is not conservative).
        let want = try XCTUnwrap(j["conservation_ratio_total"] as? Double)
        XCTAssertEqual(inputSum / explainedSum, want, accuracy: 1e-3 * max(1, abs(want)), "\(job) conservation ratio")
    }

    func testStories260KSeedLogit() throws {
        try compare(model: stories260K(), job: "lrp_stories260K_logit", seed: .logit, file: "lrp_stories260K_logit.safetensors")
    }
    func testStories260KSeedOne() throws {
        try compare(model: stories260K(), job: "lrp_stories260K_one", seed: .one, file: "lrp_stories260K_one.safetensors")
    }
    func testStories260KPlainGradient() throws {
        try compare(model: stories260K(), job: "grad_stories260K_logit", seed: .logit, rules: .gradient,
                    file: "grad_stories260K_logit.safetensors")
    }
    func testTinyLlamaWithBiases() throws {
        let m = try Model.build(from: ModelLoader.loadHFDirectory(try Fixtures.path("tiny-llama-bias")))
        try compare(model: m, job: "lrp_tiny_llama_bias_logit", seed: .logit, file: "lrp_tiny_llama_bias_logit.safetensors")
    }
    func testTinyOPT() throws {
        let m = try Model.build(from: ModelLoader.loadHFDirectory(try Fixtures.path("tiny-opt")))
        try compare(model: m, job: "lrp_tiny_opt_logit", seed: .logit, file: "lrp_tiny_opt_logit.safetensors")
    }
}
