import Foundation
import XCTest
@testable import Transformer
import TestSupport

/// A NaN or ±Inf weight is refused at load, naming the file that holds it (the shard) and the tensor (issue 12): before, it loaded and
/// failed much later as "score tensor … holds a NaN" with no hint of which file was broken.
final class NonFiniteWeightTests: XCTestCase {
    /// Replaces element `index` of `victim` in a copy of tiny-opt with `value`; returns the directory.
    private func poisoned(_ victim: String, index: Int, value: Float) throws -> String {
        let dir = try copyFixture("tiny-opt", self)
        let path = dir + "/model.safetensors"
        let st = try SafetensorsFile(path: path)
        let records = try st.names.map { name -> SafetensorsRecord in
            var t = try st.tensor(name)
            if name == victim { t.data[index] = value }
            return SafetensorsRecord(name: name, tensor: t)
        }
        try Safetensors.write(records, metadata: ["format": "pt"], to: path)
        return dir
    }

    func testNaNWeightRefusedNamingFileAndTensor() throws {
        let victim = "model.decoder.layers.1.fc1.weight"
        let dir = try poisoned(victim, index: 77, value: .nan)
        XCTAssertThrowsError(try ModelLoader.load(dir)) { e in
            guard case .nonFiniteWeight(let n, let f, let i, let v)? = e as? ModelError else { return XCTFail("got \(e)") }
            XCTAssertEqual(n, victim); XCTAssertEqual(f, dir + "/model.safetensors"); XCTAssertEqual(i, 77); XCTAssertTrue(v.isNaN)
            XCTAssertTrue(e.localizedDescription.contains(victim) && e.localizedDescription.contains(dir), e.localizedDescription)
        }
        let r = try WorkbenchCLI.run(["info", "--model", dir])
        WorkbenchCLI.assertRuntimeError(r, mentions: [victim, dir, "non-finite", "nan"])
    }

    func testInfinityRefusedAndCleanCheckpointPasses() throws {
        let victim = "model.decoder.embed_tokens.weight"
        let dir = try poisoned(victim, index: 0, value: -.infinity)
        XCTAssertThrowsError(try ModelLoader.checkpoint(dir)) { e in
            XCTAssertEqual(e as? ModelError, .nonFiniteWeight(name: victim, file: dir + "/model.safetensors", index: 0, value: -.infinity))
        }
        // The largest finite float and a subnormal are legitimate weights.
        let ok = try poisoned(victim, index: 3, value: .greatestFiniteMagnitude)
        var ck = try ModelLoader.checkpoint(ok)
        ck.tensors[victim]!.data[4] = -.leastNonzeroMagnitude
        XCTAssertNoThrow(try ModelLoader.checkFinite(ck))
    }
}
