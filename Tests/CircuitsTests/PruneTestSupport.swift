import Foundation
import XCTest
@testable import Circuits
import Transformer

// MARK: - Assets and helpers for the pruning tests
//
// Named `PruneAssets` (not TestAssets) so it cannot collide with helpers other
// test files in this target may define.

enum PruneAssets {
    static var repoRoot: URL? {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    /// `shared/assets`: $WORKBENCH_ASSETS, else the first ancestor of this file containing it.
    static var sharedAssets: URL? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["WORKBENCH_ASSETS"], !env.isEmpty {
            return fm.fileExists(atPath: env) ? URL(fileURLWithPath: env) : nil
        }
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            let c = dir.appendingPathComponent("shared/assets")
            if fm.fileExists(atPath: c.path) { return c }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    static func skip(_ reason: String) -> XCTSkip {
        print("SKIP: \(reason)")
        return XCTSkip(reason)
    }

    static func fixture(_ name: String) throws -> String {
        guard let root = repoRoot else { throw skip("package root not found") }
        let p = root.appendingPathComponent("Tests/Fixtures/\(name)").path
        guard FileManager.default.fileExists(atPath: p) else { throw skip("fixture \(name) not found") }
        return p
    }

    static func asset(_ relative: String) throws -> String {
        guard let base = sharedAssets else { throw skip("shared/assets not found (set WORKBENCH_ASSETS)") }
        let p = base.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else { throw skip("asset \(relative) not found under \(base.path)") }
        return p
    }

    static func smolLM2() throws -> String {
        let env = ProcessInfo.processInfo.environment["WORKBENCH_SMOLLM2"] ?? ""
        let p = !env.isEmpty ? env : (repoRoot?.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path ?? "")
        guard FileManager.default.fileExists(atPath: p) else { throw skip("SmolLM2 GGUF not found at '\(p)'") }
        return p
    }

    static func tempDir(_ test: XCTestCase) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wb-prune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    static func load(_ path: String) throws -> Model { try ModelLoader.load(path, needTokenizer: false).model }

    /// Deterministic pseudo-random floats (SplitMix64), optionally quantised to `levels` values to force ties.
    static func values(_ n: Int, seed: UInt64, levels: Int? = nil) -> [Float] {
        var s = seed
        return (0..<n).map { _ in
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let u = Float(z >> 40) / Float(1 << 24) * 2 - 1          // [-1, 1)
            if let levels { return (u * Float(levels)).rounded() / Float(levels) }
            return u
        }
    }

    /// Per-weight scores for every decoder linear weight of `model`.
    static func scores(_ model: Model, seed: UInt64, levels: Int? = nil) -> ScoreMap {
        var t: [String: Tensor] = [:]
        for (i, l) in model.linears.enumerated() {
            t[l.name] = Tensor(shape: [l.outDim, l.inDim], data: values(l.weight.count, seed: seed &+ UInt64(i) * 7919, levels: levels))
        }
        return ScoreMap(tensors: t, source: "synthetic")
    }

    static func writeScores(_ map: ScoreMap, to path: String, metadata: [String: String] = [:]) throws {
        try Safetensors.write(map.tensors.map { SafetensorsRecord(name: $0.key, tensor: $0.value) }, metadata: metadata, to: path)
    }

    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        var m: Float = 0
        for i in a.indices { m = max(m, abs(a[i] - b[i])) }
        return m
    }

    static let tokens = [1, 5, 17, 42, 99, 3, 64, 128, 7, 200, 11, 250]
}
