import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - `prune --format sparse-bitmask` against compressed-tensors' own encoding
//
// Golden goldens/ct_sparse_bitmask_tiny_llama_bias.safetensors: compressed-tensors 0.14.0.1's
// `BitmaskTensor.from_dense` applied to every decoder weight of tiny-llama-bias pruned by magnitude,
// row scheme, 50 % (tools/compressed_tensors_check.py --golden; recipe in tools/README.md). That script
// also loaded the directory with `ModelCompressor.decompress` (0.12.2 and 0.14.0.1): every tensor
// bit-identical to the dense output.

final class CompressedTensorsGoldenTests: XCTestCase {
    func testSparseBitmaskTensorsEqualCompressedTensorsEncoding() throws {
        let golden = try SafetensorsFile(path: try Fixtures.path("goldens/ct_sparse_bitmask_tiny_llama_bias.safetensors"))
        XCTAssertEqual(golden.metadata["compressed_tensors"], "0.14.0.1")
        let tmp = try Scratch.dir(self)
        let out = tmp.appendingPathComponent("sb").path
        try PrunePipeline.run(PruneOptions(model: try Fixtures.path("tiny-llama-bias"), scores: .method(.magnitude, nil),
                                           spec: try PruneSpec(scheme: .row, amount: .fraction(0.5)), out: out, format: .sparseBitmask))
        let ours = try SafetensorsFile(path: out + "/" + WeightFormat.sparseBitmask.weightsFileName)
        XCTAssertEqual(golden.names.count, 14 * 4, "14 decoder matrices × (shape, compressed, bitmask, row_offsets)")
        for name in golden.names {
            let g = try XCTUnwrap(golden.entries[name]), o = try XCTUnwrap(ours.entries[name], name)
            XCTAssertEqual(o.dtype, g.dtype, name)
            XCTAssertEqual(o.shape, g.shape, name)
            XCTAssertEqual(Array(try ours.rawBytes(name)), Array(try golden.rawBytes(name)), name)
        }
        // Every compressed component we store is in the golden (nothing extra under the compressed names).
        let components = ours.names.filter { n in [".shape", ".compressed", ".bitmask", ".row_offsets"].contains { n.hasSuffix($0) } }
        XCTAssertEqual(Set(components), Set(golden.names))
        // Our decoder reads the golden back to the weights we pruned (zeros where the mask drops them).
        var decoded: [String: Tensor] = [:]
        try SparseBitmask.decodeAll(golden, into: &decoded, file: golden.path)
        let model = try ModelLoader.load(out, needTokenizer: false).model
        let byName = Dictionary(uniqueKeysWithValues: model.namedTensors())
        XCTAssertEqual(decoded.count, 14)
        for (name, t) in decoded { XCTAssertEqual(t.data, byName[name]?.data, name) }
    }
}
