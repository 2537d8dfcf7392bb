import XCTest
import Transformer
import TestSupport
@testable import Circuits

/// `workbench imatrix`: the GGUF importance matrix llama.cpp reads (tools/imatrix/imatrix.cpp layout),
/// read back with our GGUF reader: metadata and its types, names, dims, and values = mean |R| per column.
final class ImatrixExportTests: XCTestCase {
    func testLayoutAndValues() throws {
        let model = try ModelLoader.load(try Fixtures.path("tiny-llama-bias"), needTokenizer: false).model
        var rng = SeededRNG(seed: 9)
        var t: [String: Tensor] = [:]
        for l in model.linears {
            var d = (0..<(l.outDim * l.inDim)).map { _ in Float(rng.uniform() * 2 - 1) }
            if l === model.linears[0] { for r in 0..<l.outDim { d[r * l.inDim + 3] = 0 } }     // one dead column
            t[l.name] = Tensor(shape: [l.outDim, l.inDim], data: d)
        }
        let scores = ScoreMap(tensors: t, source: "r.safetensors", metadata: ["method": "lrp"])
        let entries = try ImatrixExport.entries(scores, model: model)
        let path = try Scratch.dir(self).appendingPathComponent("imatrix.gguf").path
        try ImatrixExport.write(entries, datasets: ["wiki.train.raw"], chunkCount: 7, chunkSize: 128, to: path)

        let g = try GGUFFile(path: path)
        XCTAssertEqual(g.metadata["general.type"]?.description, "\"imatrix\"")
        XCTAssertEqual(g.metadataTypes["imatrix.chunk_count"], .u32); XCTAssertEqual(g.metadata["imatrix.chunk_count"]?.intValue, 7)
        XCTAssertEqual(g.metadataTypes["imatrix.chunk_size"], .u32); XCTAssertEqual(g.metadata["imatrix.chunk_size"]?.intValue, 128)
        guard case .stringArray(let ds)? = g.metadata["imatrix.datasets"] else { return XCTFail("imatrix.datasets is not a string array") }
        XCTAssertEqual(ds, ["wiki.train.raw"])
        XCTAssertEqual(g.tensors.count, 2 * model.linears.count)
        // llama-imatrix: entries sorted by name, each as in_sum2 then counts.
        let bases = stride(from: 0, to: g.tensors.count, by: 2).map { String(g.tensors[$0].name.dropLast(".in_sum2".count)) }
        XCTAssertEqual(bases, bases.sorted())
        XCTAssertEqual(g.tensors.map(\.name), bases.flatMap { [$0 + ".in_sum2", $0 + ".counts"] })
        XCTAssertNotNil(g.tensor(named: "blk.0.attn_q.weight.in_sum2")); XCTAssertNotNil(g.tensor(named: "blk.1.ffn_down.weight.counts"))
        for l in model.linears {
            let name = try XCTUnwrap(GGUFLlamaExport.ggufName(hf: l.name, layers: model.config.nLayers))
            let sums = try XCTUnwrap(g.tensor(named: name + ".in_sum2")), counts = try XCTUnwrap(g.tensor(named: name + ".counts"))
            XCTAssertEqual(sums.dims, [l.inDim, 1]); XCTAssertEqual(sums.type, .f32)
            XCTAssertEqual(counts.dims, [1, 1]); XCTAssertEqual(try g.dequantize(counts), [1])
            let v = try g.dequantize(sums), s = t[l.name]!.data
            var mean = [Double](repeating: 0, count: l.inDim)
            for r in 0..<l.outDim { for c in 0..<l.inDim { mean[c] += Double(abs(s[r * l.inDim + c])) / Double(l.outDim) } }
            let avg = mean.reduce(0, +) / Double(l.inDim)
            for c in 0..<l.inDim { XCTAssertEqual(Double(v[c]), max(mean[c], 1e-6 * avg), accuracy: 1e-6 * max(mean[c], 1e-3), "\(name)[\(c)]") }
            if l === model.linears[0] { XCTAssertGreaterThan(v[3], 0, "a dead column is floored, not 0") }
        }
        // GGUF names: q_proj of layer 0 is attn_q, down_proj is ffn_down, as llama.cpp's converter names them.
        XCTAssertEqual(GGUFLlamaExport.ggufName(hf: model.linears[0].name, layers: 2), "blk.0.attn_q.weight")
        XCTAssertEqual(GGUFLlamaExport.ggufName(hf: model.blocks[1].down.name, layers: 2), "blk.1.ffn_down.weight")
        XCTAssertNil(GGUFLlamaExport.ggufName(hf: "nonsense.weight", layers: 2))
    }

    func testScoreFileForAnotherModelIsRefused() throws {
        let model = try ModelLoader.load(try Fixtures.path("tiny-llama-bias"), needTokenizer: false).model
        let l = model.linears[2]
        let wrong = ScoreMap(tensors: [l.name: Tensor(shape: [l.outDim + 1, l.inDim], data: [Float](repeating: 1, count: (l.outDim + 1) * l.inDim))], source: "other.safetensors")
        XCTAssertThrowsError(try ImatrixExport.entries(wrong, model: model)) { XCTAssertTrue("\($0)".contains(l.name), "\($0)") }
    }
}
