import Foundation
import XCTest
@testable import Transformer
import Tokenize
import TestSupport

// MARK: - Minimal safetensors reader (test-local on purpose)
//
// Parses just enough (u64 LE header length, JSON header, F32 data) to compare
// against stories260K/hf/model.safetensors without depending on the project's
// own safetensors loader.

private func readSafetensorsF32(_ path: String) throws -> [String: Tensor] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let n = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
    guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8 ..< 8 + n)) as? [String: Any] else {
        throw XCTSkip("unparseable safetensors header")
    }
    var out = [String: Tensor]()
    for (name, v) in header where name != "__metadata__" {
        guard let e = v as? [String: Any], e["dtype"] as? String == "F32", let shape = e["shape"] as? [Int],
              let off = e["data_offsets"] as? [Int], off.count == 2 else { XCTFail("entry \(name)"); continue }
        let bytes = data.subdata(in: 8 + n + off[0] ..< 8 + n + off[1])
        let floats = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
        out[name] = Tensor(shape: shape, data: floats)
    }
    return out
}

private func int32s(_ v: [Int32]) -> Data { v.reduce(Data()) { $0 + withUnsafeBytes(of: $1.littleEndian) { Data($0) } } }
private func floats(_ v: [Float]) -> Data { v.reduce(Data()) { $0 + withUnsafeBytes(of: $1.bitPattern.littleEndian) { Data($0) } } }

final class Llama2CTests: XCTestCase {
    func testStories260KMatchesHFSafetensors() throws {
        let bin = try Assets.path("stories260K/stories260K.bin")
        let st = try Assets.path("stories260K/hf/model.safetensors")
        let ck = try loadLlama2C(path: bin)
        let c = ck.config
        XCTAssertEqual([c.dModel, c.dFF, c.nLayers, c.nHeads, c.nKVHeads, c.headDim, c.vocabSize, c.maxSeqLen], [64, 172, 5, 8, 4, 8, 512, 512])
        XCTAssertTrue(c.tiedEmbeddings); XCTAssertEqual(c.normEps, 1e-5); XCTAssertEqual(c.ropeTheta, 10000)
        XCTAssertEqual(c.bosTokenId, 1); XCTAssertEqual(c.eosTokenId, 2)
        XCTAssertEqual(ck.format, "llama2c"); XCTAssertEqual(ck.sourceDType, "F32")
        guard case .llama2c(let tok)? = ck.tokenizer else { return XCTFail("tokenizer: \(String(describing: ck.tokenizer))") }
        XCTAssertTrue(tok.hasSuffix("stories260K/tok512.bin"))

        let hf = try readSafetensorsF32(st)
        XCTAssertEqual(Set(ck.tensors.keys), Set(hf.keys))
        for (name, want) in hf {
            // Exact equality: the HF copy is a pure re-ordering of the same F32 values.
            XCTAssertEqual(ck.tensors[name], want, name)
        }
    }

    func testTruncatedAndPaddedFilesAreTypedErrors() throws {
        let bin = try Assets.path("stories260K/stories260K.bin")
        let full = try Data(contentsOf: URL(fileURLWithPath: bin))
        let dir = try Scratch.dir(self)
        for (name, data) in [("cut.bin", full.prefix(full.count - 100)), ("pad.bin", full + Data([0])), ("hdr.bin", full.prefix(20))] {
            let p = dir.appendingPathComponent(name).path
            try data.write(to: URL(fileURLWithPath: p))
            let want = name == "hdr.bin" ? 28 : 1_056_540
            XCTAssertThrowsError(try loadLlama2C(path: p)) { e in
                XCTAssertEqual(e as? Llama2CError, .sizeMismatch(path: p, expected: want, actual: data.count))
                XCTAssertTrue(e.localizedDescription.contains(p))
            }
        }
        var bad = full
        bad.replaceSubrange(12..<16, with: int32s([0]))   // n_heads = 0
        let p = dir.appendingPathComponent("bad.bin").path
        try bad.write(to: URL(fileURLWithPath: p))
        XCTAssertThrowsError(try loadLlama2C(path: p)) { XCTAssertEqual($0 as? Llama2CError, .badHeader(path: p, field: "n_heads", value: 0)) }
    }

    /// Synthetic untied checkpoint (negative vocab_size): values are 0, 1, 2, … in file order.
    func testUntiedClassifierAndTokenizerDiscovery() throws {
        let (dim, hidden, layers, heads, kv, vocab, seq) = (8, 4, 2, 2, 1, 3, 2)
        let header = Llama2CHeader(dim: dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKVHeads: kv,
                                   vocabSize: vocab, seqLen: seq, sharedClassifier: false)
        let total = (header.expectedFileSize - 28) / 4
        let dir = try Scratch.dir(self)
        let path = dir.appendingPathComponent("model.bin").path
        try (int32s([8, 4, 2, 2, 1, -3, 2]) + floats((0..<total).map(Float.init))).write(to: URL(fileURLWithPath: path))

        let ck = try loadLlama2C(path: path)
        XCTAssertFalse(ck.config.tiedEmbeddings)
        XCTAssertNil(ck.tokenizer)
        XCTAssertEqual(ck.tensors["lm_head.weight"]?.data, (total - vocab * dim ..< total).map(Float.init))
        // wq of layer 1 starts after tok_embeddings (24), rms_att (16) and layer 0's wq (64).
        let wq1 = Tensor(shape: [dim, dim], data: (104 ..< 168).map(Float.init))
        XCTAssertEqual(ck.tensors["model.layers.1.self_attn.q_proj.weight"], interleavedToRotateHalf(wq1, heads: heads))
        XCTAssertEqual(ck.tensors["model.layers.1.self_attn.k_proj.weight"]?.shape, [4, 8])
        XCTAssertEqual(ck.tensors["model.layers.0.mlp.down_proj.weight"]?.shape, [8, 4])
        XCTAssertEqual(ck.tensors.count, 2 + 1 + 9 * layers)

        // Discovery order: tokenizer.bin before tok{V}.bin; .bin before .model.
        for (file, expect) in [("tok3.model", "sp"), ("tokenizer.model", "sp"), ("tok3.bin", "l2c"), ("tokenizer.bin", "l2c")] {
            try Data([0]).write(to: dir.appendingPathComponent(file))
            switch findLlama2CTokenizer(modelPath: path, vocabSize: vocab) {
            case .sentencePiece(let p)? where expect == "sp": XCTAssertTrue(p.hasSuffix(file))
            case .llama2c(let p)? where expect == "l2c": XCTAssertTrue(p.hasSuffix(file))
            default: XCTFail("after adding \(file)")
            }
        }
    }
}
