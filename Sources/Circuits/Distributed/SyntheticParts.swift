import Foundation
import Transformer

// MARK: - Parts of a model's full size without running attribution (for timing merges)

public enum SyntheticParts {
    /// Writes `count` lrp shard parts of `model`'s full shape into `dir` (the F64 sum tensors a real
    /// part holds, filled with arbitrary finite values, metadata of one run of `count` samples) and
    /// returns their paths in shard order. `workbench bench --distributed` times merging them.
    public static func write(model: Model, count: Int, dir: String) throws -> [String] {
        var s = AttributionSettings()
        s.method = .lrp
        s.modelSHA256 = "synthetic"
        s.dataKind = .prompts
        s.dataPath = "synthetic"
        s.dataSHA256 = "synthetic"
        s.samples = count
        let c = model.config
        let shapes: [(String, [Int])] = model.linears.map { ($0.name, [$0.outDim, $0.inDim]) }
            + model.blocks.flatMap { b in [(ScoreNames.neurons(model, layer: b.index), [c.dFF]), (ScoreNames.heads(model, layer: b.index), [c.nHeads])] }
        return try (0..<count).map { k in
            s.shard = try Shard(index: k, count: count)
            let tensors = shapes.map { name, shape -> OutTensor in
                let n = shape.reduce(1, *)
                let v = [Double](unsafeUninitializedCapacity: n) { b, done in
                    for i in 0..<n { b[i] = Double(k + 1) * 1e-3 + Double(i & 1023) * 1e-9 }
                    done = n
                }
                return OutTensor(name: name, shape: shape, payload: .f64(v))
            }
            let path = (dir as NSString).appendingPathComponent("part-\(k)-of-\(count).safetensors")
            try StreamingSafetensors.write(tensors, metadata: s.metadata(samplesDone: 1, tokens: 1, conservationSum: 1, conservationCount: 1,
                                                                          kind: .part),
                                           checksum: true, to: path)
            return path
        }
    }
}
