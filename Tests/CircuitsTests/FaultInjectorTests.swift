import XCTest
import Transformer
import TestSupport
@testable import Circuits

/// `workbench faults`' machinery: flips land exactly on the drawn bits of the stored encoding and are
/// undone bit for bit; the majority vote; the flip count is Binomial(bits, BER); trials are
/// reproducible; the protection budget; bad input.
final class FaultInjectorTests: XCTestCase {
    /// Linear layers with rows that are whole blocks, random weights (a few exact zeros).
    private func linears(seed: UInt64 = 1) -> [Linear] {
        var rng = SeededRNG(seed: seed)
        return [(8, 64), (16, 32), (4, 96)].enumerated().map { i, d in
            Linear(name: "model.layers.\(i).mlp.up_proj.weight", outDim: d.0, inDim: d.1,
                   weight: (0..<(d.0 * d.1)).map { k in k % 37 == 0 ? 0 : Float(rng.uniform() * 2 - 1) * 0.1 }, bias: nil)
        }
    }

    private func bits(_ ls: [Linear]) -> [[UInt32]] { ls.map { $0.weight.map(\.bitPattern) } }

    func testInjectFlipsExactlyTheDrawnBitsAndRestoreIsBitExact() throws {
        for type in [GGMLType.f32, .f16, .bf16, .q8_0, .q4_1, .q4_0] {
            let ls = linears()
            let original = ls.map(\.weight)
            let s = try FaultStorage(linears: ls, type: type)
            let stored = bits(ls)
            // The model holds exactly the decode of the clean encoding.
            for (l, o) in zip(ls, original) {
                XCTAssertEqual(l.weight.map(\.bitPattern), GGMLBlockCodec.decode(GGMLBlockCodec.encode(o, type: type), type: type, count: o.count).map(\.bitPattern))
            }
            var rng = SeededRNG(seed: 7)
            let drawn = BitFlips.draw(n: s.totalBits, p: 3e-3, rng: &rng)
            XCTAssertGreaterThan(drawn.count, 10, "\(type)")
            let masks = BitFlips.readMasks(primary: drawn, protected: ProtectedBits())
            XCTAssertEqual(masks.reduce(0) { $0 + $1.mask.nonzeroBitCount }, drawn.count, "unprotected: every drawn bit is read flipped")
            let touched = s.inject(masks)
            // Independent reference: flip the drawn bits in a full copy of each tensor's bytes and decode it whole.
            for (t, l) in ls.enumerated() {
                var bytes = GGMLBlockCodec.encode(original[t], type: type)
                let lo = 8 * s.byteOffsets[t], hi = 8 * s.byteOffsets[t + 1]
                for b in drawn where b >= lo && b < hi { bytes[(b - lo) / 8] ^= 1 << UInt8((b - lo) % 8) }
                let expected = GGMLBlockCodec.decode(bytes, type: type, count: l.weight.count)
                XCTAssertEqual(l.weight.map(\.bitPattern), expected.map(\.bitPattern), "\(type) \(l.name)")
            }
            if type == .f32 {
                // F32: the weight's bit pattern changes in exactly the drawn bits.
                var changed = 0
                for (t, l) in ls.enumerated() { for i in l.weight.indices { changed += (l.weight[i].bitPattern ^ stored[t][i]).nonzeroBitCount } }
                XCTAssertEqual(changed, drawn.count)
            }
            XCTAssertNotEqual(bits(ls), stored, "\(type): the flips changed something")
            s.restore(touched)
            XCTAssertEqual(bits(ls), stored, "\(type): restore is bit for bit")
        }
    }

    func testMajorityVote() {
        // Bitwise majority: any one copy wrong in any bits → the clean byte; two copies wrong in the same bit → wrong.
        for clean in [UInt8(0), 0xA5, 0xFF, 0x3C] {
            for m in 1...255 {
                let f = clean ^ UInt8(m)
                XCTAssertEqual(BitFlips.majority(f, clean, clean), clean)
                XCTAssertEqual(BitFlips.majority(clean, f, clean), clean)
                XCTAssertEqual(BitFlips.majority(clean, clean, f), clean)
                XCTAssertEqual(BitFlips.majority(f, f, clean), f, "two copies flipped alike out-vote the third")
            }
        }
        // Through readMasks: protected bits 0..<16 (bytes 0, 1), byte 2 unprotected.
        let p = ProtectedBits(ranges: [(0, 16)])
        func read(_ a: [Int], _ b: [Int] = [], _ c: [Int] = []) -> [Int] {
            BitFlips.readMasks(primary: a, copy2: b, copy3: c, protected: p).flatMap { m in (0..<8).filter { m.mask >> UInt8($0) & 1 == 1 }.map { 8 * m.byte + $0 } }
        }
        XCTAssertEqual(read([5]), [], "one copy")
        XCTAssertEqual(read([], [5]), [])
        XCTAssertEqual(read([], [], [5]), [])
        XCTAssertEqual(read([5], [6], [7]), [], "three copies, different bits")
        XCTAssertEqual(read([5], [5]), [5], "two copies, same bit")
        XCTAssertEqual(read([], [9], [9]), [9])
        XCTAssertEqual(read([5, 9], [5], [9]), [5, 9])
        XCTAssertEqual(read([3], [3], [3]), [3])
        XCTAssertEqual(read([17, 20]), [17, 20], "unprotected bits read copy 1")
        XCTAssertEqual(read([15, 16], [15]), [15, 16])
    }

    func testProtectedBitErrorRateIsTheClosedForm() {
        // Every bit protected; a bit is read wrong iff ≥ 2 of 3 copies flipped: q = 3p² − 2p³.
        let n = 400_000, p = 0.05, q = 3 * p * p - 2 * p * p * p
        let prot = ProtectedBits(ranges: [(0, n)])
        var wrong = 0
        for trial in 0..<5 {
            let t = BitFlips.trial(totalBits: n, ber: p, seed: 11, trial: trial, protected: prot)
            wrong += t.masks.reduce(0) { $0 + $1.mask.nonzeroBitCount }
        }
        let mean = 5 * Double(n) * q, sd = (mean * (1 - q)).squareRoot()
        XCTAssertLessThan(abs(Double(wrong) - mean), 5 * sd, "wrong \(wrong), expected \(mean) ± \(sd)")
        // Half protected: the unprotected half is wrong at rate p.
        let half = ProtectedBits(ranges: [(0, n / 2)])
        let t = BitFlips.trial(totalBits: n, ber: p, seed: 12, trial: 0, protected: half)
        let hi = t.masks.filter { $0.byte >= n / 16 }.reduce(0) { $0 + $1.mask.nonzeroBitCount }
        let lo = t.masks.filter { $0.byte < n / 16 }.reduce(0) { $0 + $1.mask.nonzeroBitCount }
        let m1 = Double(n / 2) * p, s1 = (m1 * (1 - p)).squareRoot(), m2 = Double(n / 2) * q, s2 = (m2 * (1 - q)).squareRoot()
        XCTAssertLessThan(abs(Double(hi) - m1), 5 * s1)
        XCTAssertLessThan(abs(Double(lo) - m2), 5 * s2)
    }

    func testFlipCountIsBinomial() {
        let n = 1_000_000
        for p in [1e-4, 1e-3, 2e-2] {
            let mean = Double(n) * p, sd = (mean * (1 - p)).squareRoot()
            var total = 0, buckets = [Int](repeating: 0, count: 10)
            let draws = 100
            for d in 0..<draws {
                var rng = BitFlips.stream(seed: 3, trial: d, ber: p, copy: 1)
                let f = BitFlips.draw(n: n, p: p, rng: &rng)
                XCTAssertEqual(f, f.sorted()); XCTAssertEqual(Set(f).count, f.count)
                XCTAssertTrue(f.allSatisfy { $0 >= 0 && $0 < n })
                XCTAssertLessThan(abs(Double(f.count) - mean), 6 * sd, "p \(p): \(f.count) flips")
                total += f.count
                for x in f { buckets[x * 10 / n] += 1 }
            }
            let tm = Double(draws) * mean, ts = (tm * (1 - p)).squareRoot()
            XCTAssertLessThan(abs(Double(total) - tm), 5 * ts, "p \(p): \(total) flips over \(draws) draws, expected \(tm) ± \(ts)")
            // Uniform over positions: each tenth of the range gets Binomial(total, 1/10).
            for b in buckets { XCTAssertLessThan(abs(Double(b) - Double(total) / 10), 5 * (Double(total) * 0.09).squareRoot()) }
        }
        var rng = SeededRNG(seed: 1)
        XCTAssertEqual(BitFlips.draw(n: 100, p: 1e-15, rng: &rng), [])
    }

    func testSameSeedSameTrial() {
        let prot = ProtectedBits(ranges: [(100, 5000), (20_000, 300)])
        let a = BitFlips.trial(totalBits: 1 << 20, ber: 1e-3, seed: 5, trial: 3, protected: prot)
        let b = BitFlips.trial(totalBits: 1 << 20, ber: 1e-3, seed: 5, trial: 3, protected: prot)
        XCTAssertEqual(a.masks.map(\.byte), b.masks.map(\.byte)); XCTAssertEqual(a.masks.map(\.mask), b.masks.map(\.mask))
        let c = BitFlips.trial(totalBits: 1 << 20, ber: 1e-3, seed: 5, trial: 4, protected: prot)
        let d = BitFlips.trial(totalBits: 1 << 20, ber: 1e-3, seed: 6, trial: 3, protected: prot)
        XCTAssertNotEqual(a.masks.map(\.byte), c.masks.map(\.byte))
        XCTAssertNotEqual(a.masks.map(\.byte), d.masks.map(\.byte))
        // The primary draw does not depend on the protection: criteria see the same flips.
        let e = BitFlips.trial(totalBits: 1 << 20, ber: 1e-3, seed: 5, trial: 3, protected: ProtectedBits())
        XCTAssertEqual(a.primaryFlips, e.primaryFlips)
        XCTAssertTrue(Set(e.masks.map(\.byte)).isSuperset(of: a.masks.map(\.byte)))
    }

    func testProtectionBudgetAndRanking() throws {
        // F32: exactly the top ⌊f·N⌋ weights by |importance|, value bits only.
        let ls = linears()
        let s = try FaultStorage(linears: ls, type: .f32)
        let imp = try XCTUnwrap(ProtectionSelection.importance(.magnitude, storage: s))
        let p = try ProtectionSelection.select(s, importance: imp, fraction: 0.1)
        let k = s.totalWeights / 10
        XCTAssertEqual(p.weights, k); XCTAssertEqual(p.count, 32 * k); XCTAssertEqual(p.scaleBlocks, 0)
        let top = Set(imp.indices.sorted { imp[$0] > imp[$1] || (imp[$0] == imp[$1] && $0 < $1) }.prefix(k))
        for i in 0..<s.totalWeights {
            let t = FaultStorage.segment(s.weightOffsets, i), bit = 8 * s.byteOffsets[t] + 32 * (i - s.weightOffsets[t])
            XCTAssertEqual(p.contains(bit) && p.contains(bit + 31), top.contains(i), "weight \(i)")
        }
        // Q4_1: within one weight + scale of the budget; every protected weight's block scale is protected.
        let q = try FaultStorage(linears: linears(), type: .q4_1)
        for c in [ProtectionCriterion.magnitude, .random] {
            let pq = try ProtectionSelection.select(q, importance: try ProtectionSelection.importance(c, storage: q, seed: 2), fraction: 0.05)
            let budget = Int(0.05 * Double(q.totalBits))
            XCTAssertLessThanOrEqual(pq.count, budget); XCTAssertGreaterThan(pq.count, budget - 4 - 32)
            XCTAssertEqual(pq.count, 4 * pq.weights + 32 * pq.scaleBlocks)
            for i in 0..<q.totalWeights {
                let t = FaultStorage.segment(q.weightOffsets, i), local = i - q.weightOffsets[t], base = 8 * q.byteOffsets[t]
                if pq.contains(base + q.geometry.valueBit(local)) { XCTAssertTrue(pq.contains(base + q.geometry.scaleBit(local / 32) + 31)) }
            }
        }
        // Ordinal ↔ bit mapping covers exactly the protected bits.
        let all = (0..<p.count).map { p.bit(ordinal: $0) }
        XCTAssertEqual(all, all.sorted()); XCTAssertTrue(all.allSatisfy(p.contains))
        XCTAssertEqual(try ProtectionSelection.select(s, importance: imp, fraction: 0).count, 0)
        XCTAssertEqual(try ProtectionSelection.select(s, importance: imp, fraction: 1).weights, s.totalWeights)
    }

    func testBadInput() throws {
        for b in [0, 1, -1e-3, 1.5, .nan, .infinity] {
            XCTAssertThrowsError(try QuantizationError.checkBER(b)) { e in
                guard case .berOutOfRange(let v)? = e as? QuantizationError else { return XCTFail("\(e)") }
                XCTAssertEqual(v.bitPattern, b.bitPattern)
            }
        }
        XCTAssertNoThrow(try QuantizationError.checkBER(1e-9))
        for f in [-0.01, 1.01] { XCTAssertThrowsError(try QuantizationError.checkFraction(f)) { XCTAssertEqual($0 as? QuantizationError, .fractionOutOfRange(f)) } }
        let s = try FaultStorage(linears: linears(), type: .f32)
        XCTAssertThrowsError(try ProtectionSelection.select(s, importance: nil, fraction: 2)) { XCTAssertEqual($0 as? QuantizationError, .fractionOutOfRange(2)) }
        // Rows that are not whole blocks.
        let odd = [Linear(name: "model.layers.0.mlp.down_proj.weight", outDim: 2, inDim: 48, weight: [Float](repeating: 0.5, count: 96), bias: nil)]
        XCTAssertThrowsError(try FaultStorage(linears: odd, type: .q8_0)) {
            XCTAssertEqual($0 as? QuantizationError, .rowNotBlocked(tensor: "model.layers.0.mlp.down_proj.weight", inDim: 48, block: 32))
        }
        XCTAssertNoThrow(try FaultStorage(linears: odd, type: .f16))
        // A type the codec cannot write (Q4_K) is refused naming the flag; the messages of the shared error name the flag
        // (usage errors, exit 64) or the tensor/file (the rest, exit 1).
        XCTAssertThrowsError(try FaultStorage(linears: odd, type: GGMLType(rawValue: 12))) {
            XCTAssertEqual($0 as? QuantizationError, .unknownType(flag: "--storage", value: "q4_k"))
            XCTAssertEqual(($0 as? LocalizedError)?.errorDescription, "--storage: 'q4_k' is not one of f32, f16, bf16, q8_0, q4_1, q4_0")
        }
        let usage: [(QuantizationError, String)] = [(.berOutOfRange(2), "--ber"), (.fractionOutOfRange(-1), "--protect-fraction"),
                                                    (.budgetOutOfRange(bits: 3, min: 4.5, max: 8.5), "--bits-per-weight"),
                                                    (.pruneNeedsScores, "--prune-nonpositive"), (.unknownType(flag: "--types", value: "x"), "--types")]
        for (e, flag) in usage { XCTAssertTrue(e.isUsageError); XCTAssertTrue(e.errorDescription!.hasPrefix(flag), e.errorDescription!) }
        let runtime: [(QuantizationError, String)] = [(.scoreShape(file: "a.safetensors", tensor: "t", expected: [2], found: [3]), "a.safetensors"),
                                                      (.noScoresForModel(file: "b.safetensors"), "b.safetensors"),
                                                      (.rowNotBlocked(tensor: "w", inDim: 48, block: 32), "w:")]
        for (e, name) in runtime { XCTAssertFalse(e.isUsageError); XCTAssertTrue(e.errorDescription!.hasPrefix(name), e.errorDescription!) }
        // A score file for another model: a typed error naming the tensor.
        let model = try ModelLoader.load(try Fixtures.path("tiny-llama-bias"), needTokenizer: false).model
        let st = try FaultStorage(model: model, type: .f32)
        let l = model.linears[0]
        let wrong = ScoreMap(tensors: [l.name: Tensor(shape: [l.inDim, l.outDim + 1], data: [Float](repeating: 1, count: l.inDim * (l.outDim + 1)))], source: "other.safetensors")
        XCTAssertThrowsError(try ProtectionSelection.importance(.scores(label: "lrp"), storage: st, scores: wrong)) {
            XCTAssertTrue("\($0)".contains(l.name), "\($0)")
        }
        // A score file holding |W| ranks exactly like the magnitude criterion (signed scores enter as |s|).
        var signed = ScoreMap.magnitude(model)
        for (k, t) in signed.tensors { signed.tensors[k] = Tensor(shape: t.shape, data: t.data.enumerated().map { $0.offset % 2 == 0 ? -$0.element : $0.element }) }
        let fromFile = try ProtectionSelection.select(st, importance: try ProtectionSelection.importance(.scores(label: "lrp"), storage: st, scores: signed), fraction: 0.2)
        let byMagnitude = try ProtectionSelection.select(st, importance: try ProtectionSelection.importance(.magnitude, storage: st), fraction: 0.2)
        XCTAssertEqual(fromFile.starts, byMagnitude.starts); XCTAssertEqual(fromFile.ends, byMagnitude.ends)
        XCTAssertGreaterThan(fromFile.count, 0)
    }

    /// The perplexity metric keeps one logit block for all evaluations of a campaign: every evaluation (dense, a
    /// faulty trial, dense again after restore) has exactly the bits of `Model.perplexity` with a fresh block.
    func testPerplexityMetricWithKeptBlockEqualsFreshEvaluation() throws {
        let model = try ModelLoader.load(try Fixtures.path("tiny-llama-bias"), needTokenizer: false).model
        let st = try FaultStorage(model: model, type: .f16)         // its rows (48) are not whole Q8_0 blocks
        var rng = SeededRNG(seed: 5)
        let ids = (0..<(3 * 16)).map { _ in Int(rng.next() % UInt64(model.config.vocabSize)) }
        let metric = FaultMetric.perplexity(tokens: ids, seqlen: 16, windows: 3, text: "random")
        func fresh() throws -> Double { try model.perplexity(tokens: ids, seqlen: 16, protocol: .wanda, maxWindows: 3).perplexity }
        let dense = try metric.evaluate(model)
        XCTAssertEqual(dense.bitPattern, try fresh().bitPattern)
        let t = BitFlips.trial(totalBits: st.totalBits, ber: 2e-3, seed: 1, trial: 0, protected: ProtectedBits())
        XCTAssertGreaterThan(t.primaryFlips, 0)
        let touched = st.inject(t.masks)
        let faulty = try metric.evaluate(model)
        XCTAssertEqual(faulty.bitPattern, try fresh().bitPattern)
        XCTAssertNotEqual(faulty.bitPattern, dense.bitPattern, "the flips changed the metric")
        st.restore(touched)
        XCTAssertEqual(try metric.evaluate(model).bitPattern, dense.bitPattern)
    }

    func testPercentiles() {
        XCTAssertEqual(FaultReport.percentile([1, 2, 3, 4, 5], 0.5), 3)
        XCTAssertEqual(FaultReport.percentile([1, 2, 3, 4], 0.5), 2.5)
        XCTAssertEqual(FaultReport.percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110], 0.1), 20)
        XCTAssertEqual(FaultReport.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), 9.1, accuracy: 1e-12)   // numpy: 9.1
        XCTAssertEqual(FaultReport.percentile([1, .infinity, .infinity], 0.5), .infinity)
    }
}
