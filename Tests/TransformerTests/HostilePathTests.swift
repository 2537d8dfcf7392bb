import Foundation
import XCTest
@testable import Transformer
import Tokenize
import TestSupport

// Hostile paths (issue 12): a FIFO, device or directory where a file is expected is refused
// without blocking; shard paths in model.safetensors.index.json stay inside the model folder.

final class HostilePathTests: XCTestCase {
    // MARK: - Paths that are not regular files

    func testFIFOAndDevicesRefusedWithoutBlocking() throws {
        let dir = try Scratch.dir(self)
        for name in ["model.gguf", "model.bin", "model.safetensors"] {
            let p = dir.appendingPathComponent(name).path
            XCTAssertEqual(mkfifo(p, 0o600), 0)
            XCTAssertThrowsError(try ModelLoader.load(p)) { e in
                XCTAssertEqual(e as? ModelError, .unreadable(path: p, reason: "is a FIFO, not a regular file or a model directory"))
            }
            let r = try WorkbenchCLI.run(["info", "--model", p], timeout: 20)
            WorkbenchCLI.assertRuntimeError(r, mentions: [p, "FIFO"])
        }
        XCTAssertThrowsError(try ModelLoader.load("/dev/null")) { e in
            XCTAssertTrue(e.localizedDescription.contains("character device"), e.localizedDescription)
        }
        // Inside an HF folder: config.json, the weights and the tokenizer as FIFOs.
        let hf = try Assets.path("stories260K/hf")
        for victim in ["config.json", "model.safetensors", "tokenizer.model"] {
            let m = dir.appendingPathComponent("m-\(victim)").path
            try FileManager.default.copyItem(atPath: hf, toPath: m)
            try FileManager.default.removeItem(atPath: m + "/" + victim)
            XCTAssertEqual(mkfifo(m + "/" + victim, 0o600), 0)
            let r = try WorkbenchCLI.run(["tokenize", "--model", m, "--text", "hi"], timeout: 20)
            WorkbenchCLI.assertRuntimeError(r, mentions: [m + "/" + victim, "FIFO"])
        }
        // Input files of the commands.
        let fifo = dir.appendingPathComponent("corpus.txt").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let r = try WorkbenchCLI.run(["perplexity", "--model", hf, "--text", fifo, "--seqlen", "16"], timeout: 20)
        WorkbenchCLI.assertRuntimeError(r, mentions: [fifo, "FIFO"])
        XCTAssertThrowsError(try InputFile.read(dir.path)) { e in
            XCTAssertEqual(e as? InputFileError, .notRegular(path: dir.path, kind: "directory"))
        }
        XCTAssertThrowsError(try InputFile.read("/dev/zero", limit: 1 << 20)) { e in
            XCTAssertEqual(e as? InputFileError, .notRegular(path: "/dev/zero", kind: "character device"))
        }
    }

    // MARK: - Shards

    private func shardedCopy(_ weightMap: (String) -> String) throws -> String {
        let dir = try copyFixture("tiny-opt", self)
        let st = try SafetensorsFile(path: dir + "/model.safetensors")
        let map = Dictionary(uniqueKeysWithValues: st.names.map { ($0, weightMap($0)) })
        try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": map]).write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        return dir
    }

    func testShardPathsMustStayInsideTheModelFolder() throws {
        let outside = try Scratch.dir(self)
        try FileManager.default.copyItem(atPath: try Fixtures.path("tiny-opt/model.safetensors"), toPath: outside.appendingPathComponent("w.safetensors").path)
        let control = try shardedCopy { _ in "model.safetensors" }
        XCTAssertEqual(try ModelLoader.load(control, needTokenizer: false).format, "hf-safetensors")
        for (shard, why) in [(outside.path + "/w.safetensors", "absolute"), ("sub/../../w.safetensors", ".."), ("link.safetensors", "outside")] {
            let dir = try shardedCopy { _ in shard }
            try FileManager.default.createSymbolicLink(atPath: dir + "/link.safetensors", withDestinationPath: outside.path + "/w.safetensors")
            let index = dir + "/model.safetensors.index.json"
            XCTAssertThrowsError(try ModelLoader.load(dir, needTokenizer: false)) { e in
                guard case .badConfig(let f, let k, let reason)? = e as? ModelError else { return XCTFail("\(e)") }
                XCTAssertEqual(f, index); XCTAssertEqual(k, "weight_map")
                XCTAssertTrue(reason.contains(shard) && reason.contains(why), reason)
            }
            WorkbenchCLI.assertRuntimeError(try WorkbenchCLI.run(["info", "--model", dir], timeout: 60), mentions: [index, "weight_map"])
        }
        // A symlink that stays inside the folder is fine.
        let inside = try shardedCopy { _ in "alias.safetensors" }
        try FileManager.default.createSymbolicLink(atPath: inside + "/alias.safetensors", withDestinationPath: "model.safetensors")
        XCTAssertEqual(try ModelLoader.load(inside, needTokenizer: false).format, "hf-safetensors")
    }

    func testSameTensorInTwoShardsRefused() throws {
        let dir = try shardedCopy { $0.contains("layers.0") ? "b.safetensors" : "a.safetensors" }
        try FileManager.default.copyItem(atPath: dir + "/model.safetensors", toPath: dir + "/a.safetensors")
        try FileManager.default.copyItem(atPath: dir + "/model.safetensors", toPath: dir + "/b.safetensors")
        XCTAssertThrowsError(try ModelLoader.load(dir, needTokenizer: false)) { e in
            XCTAssertTrue(e.localizedDescription.contains(dir + "/b.safetensors"), e.localizedDescription)
            XCTAssertTrue(e.localizedDescription.contains("another shard"), e.localizedDescription)
        }
    }
}
