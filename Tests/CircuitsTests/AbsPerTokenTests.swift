import Foundation
import XCTest
@testable import Circuits
@testable import Transformer

/// `--abs-per-token`: R_W = |W| ⊙ Σ_t |δ_t||x_t|ᵀ, i.e. Σ_t |R_W,t| with no
/// cancellation between positions.
final class AbsPerTokenTests: XCTestCase {
    /// One linear layer: the accumulator equals the per-token sum computed by hand.
    func testLinearAbsPerTokenEqualsHandSum() throws {
        let out = 5, inDim = 7, n = 9
        var rng = SeededRNG(seed: 11)
        func r() -> Float { Float(rng.uniform() * 2 - 1) }
        let lin = Linear(name: "model.layers.0.mlp.up_proj.weight", outDim: out, inDim: inDim,
                         weight: (0..<(out * inDim)).map { _ in r() }, bias: nil)
        let x = (0..<(n * inDim)).map { _ in r() }, dy = (0..<(n * out)).map { _ in r() }
        let m = try AttributionFixtures.tiny("tiny-llama-bias")
        let acc = RelevanceAccumulator(model: m, aggregation: .absPerToken)
        var captured: [Float] = []
        final class Capture: RelevanceSink {
            let inner: RelevanceAccumulator; var got: [Float] = []
            init(_ i: RelevanceAccumulator) { inner = i }
            var wantsAbsPerToken: Bool { true }
            func weightGradient(_ l: Linear, _ dW: UnsafePointer<Float>) {}
            func weightAbsGradient(_ l: Linear, _ g: UnsafePointer<Float>) { got = Array(UnsafeBufferPointer(start: g, count: l.weight.count)) }
            func neurons(layer: Int, _ r: [Float]) {}
            func heads(layer: Int, _ r: [Float]) {}
        }
        let cap = Capture(acc)
        let scratch = BackwardScratch(maxWeight: out * inDim)
        x.withUnsafeBufferPointer { xp in dy.withUnsafeBufferPointer { dp in
            m.linearBackward(lin, x: xp.baseAddress!, dy: dp.baseAddress!, z: nil, dx: nil, accumulate: false, rows: n,
                             rules: .attnLRP, sink: cap, scratch: scratch)
        } }
        captured = cap.got
        XCTAssertEqual(captured.count, out * inDim)
        for i in 0..<out { for j in 0..<inDim {
            var s: Float = 0
            for t in 0..<n { s += abs(dy[t * out + i]) * abs(x[t * inDim + j]) }
            XCTAssertEqual(captured[i * inDim + j], s, accuracy: 1e-5 * max(1, s))
        } }
    }

    /// On a real model: Σ_t |R_t| ≥ |Σ_t R_t| for every weight, neuron and head (triangle
    /// inequality), and strictly larger in total (positions do cancel).
    func testAbsPerTokenBoundsSignedRelevance() throws {
        let m = try AttributionFixtures.tiny("tiny-llama-bias")
        let ids = AttributionFixtures.tokens(20, vocab: m.config.vocabSize, seed: 5)
        let signed = RelevanceAccumulator(model: m, aggregation: .signed)
        let perTok = RelevanceAccumulator(model: m, aggregation: .absPerToken)
        _ = try m.lrp(tokens: ids, explain: .nextToken(from: 0), sink: signed)
        _ = try m.lrp(tokens: ids, explain: .nextToken(from: 0), sink: perTok)
        var totalSigned = 0.0, totalAbs = 0.0
        for l in m.linears {
            let s = try XCTUnwrap(signed.weights[l.name]), a = try XCTUnwrap(perTok.weights[l.name])
            for i in s.indices {
                XCTAssertGreaterThanOrEqual(a[i], abs(s[i]) - 1e-4 * max(1, a[i]), "\(l.name)[\(i)]")
                totalSigned += Double(abs(s[i])); totalAbs += Double(a[i])
            }
        }
        XCTAssertGreaterThan(totalAbs, 1.05 * totalSigned, "no cancellation at all is implausible over 19 positions")
        for (k, s) in signed.units {
            let a = try XCTUnwrap(perTok.units[k])
            for i in s.indices { XCTAssertGreaterThanOrEqual(a[i], abs(s[i]) - 1e-4 * max(1, a[i]), "\(k)[\(i)]") }
        }
    }

    func testSettingsRecordTheAggregation() {
        var s = AttributionSettings()
        s.method = .lrp
        let before = s.fingerprint
        s.absPerToken = true
        XCTAssertEqual(s.aggregationMode, .absPerToken)
        XCTAssertNotEqual(s.fingerprint, before, "resume must refuse a checkpoint made with another aggregation")
        XCTAssertTrue(s.fingerprintFields.contains { $0.key == "abs_per_token" && $0.value == "true" })
        XCTAssertTrue(s.aggregation.contains("per position"))
    }
}
