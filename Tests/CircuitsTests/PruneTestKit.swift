import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - Helpers for the pruning tests
//
// Synthetic scores and comparisons. Locating fixtures, assets and scratch
// directories is TestSupport's job (Assets, Fixtures, Scratch).

enum PruneTestKit {
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

}
