import Foundation
import Transformer

// MARK: - Sparsity report
//
// Like Wanda's `check_sparsity`: exact zeros per decoder linear weight, per
// layer and in total (lm_head and embeddings are not decoder linear weights
// and are reported only in the all-parameter line).

public struct SparsityReport: Codable, Sendable {
    public struct Row: Codable, Sendable {
        public var name: String
        public var layer: Int
        public var module: String      // e.g. "q_proj", "fc1"
        public var numel: Int
        public var zeros: Int
        public var sparsity: Double { numel == 0 ? 0 : Double(zeros) / Double(numel) }
    }
    public var rows: [Row]
    public var parameterCount: Int
    public var parameterZeros: Int

    public var numel: Int { rows.reduce(0) { $0 + $1.numel } }
    public var zeros: Int { rows.reduce(0) { $0 + $1.zeros } }
    /// Sparsity over all decoder linear weights.
    public var sparsity: Double { numel == 0 ? 0 : Double(zeros) / Double(numel) }
    public var parameterSparsity: Double { parameterCount == 0 ? 0 : Double(parameterZeros) / Double(parameterCount) }

    /// Counts exact zeros (+0 and −0) in every parameter of `model`.
    public static func measure(_ model: Model) -> SparsityReport {
        var rows: [Row] = []
        for b in model.blocks {
            for l in b.linears {
                rows.append(Row(name: l.name, layer: b.index, module: moduleName(l.name), numel: l.weight.count,
                                zeros: zeroCount(l.weight)))
            }
        }
        var pz = 0, pc = 0
        for (_, t) in model.namedTensors() { pz += zeroCount(t.data); pc += t.count }
        return SparsityReport(rows: rows, parameterCount: pc, parameterZeros: pz)
    }

    static func zeroCount(_ a: [Float]) -> Int {
        a.withUnsafeBufferPointer { p in
            var n = 0
            for x in p where x == 0 { n += 1 }
            return n
        }
    }

    /// "model.layers.3.self_attn.q_proj.weight" → "q_proj"; "model.decoder.layers.0.fc1.weight" → "fc1".
    static func moduleName(_ name: String) -> String {
        let parts = name.split(separator: ".")
        return parts.count >= 2 ? String(parts[parts.count - 2]) : name
    }

    // MARK: - Table

    /// One line per layer with a column per module, a layer total, then the totals.
    public func table() -> String {
        let modules = rows.reduce(into: [String]()) { acc, r in if !acc.contains(r.module) { acc.append(r.module) } }
        let width = max(9, (modules.map(\.count).max() ?? 0) + 2)
        func pad(_ s: String, _ w: Int = width) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
        var out = pad("layer", 6) + modules.map { pad($0) }.joined() + pad("layer") + "\n"
        let layers = rows.reduce(into: [Int]()) { acc, r in if !acc.contains(r.layer) { acc.append(r.layer) } }
        for l in layers {
            let lr = rows.filter { $0.layer == l }
            var line = pad("\(l)", 6)
            for m in modules {
                let cell = lr.filter { $0.module == m }
                let n = cell.reduce(0) { $0 + $1.numel }, z = cell.reduce(0) { $0 + $1.zeros }
                line += pad(n == 0 ? "-" : String(format: "%.4f", Double(z) / Double(n)))
            }
            let n = lr.reduce(0) { $0 + $1.numel }, z = lr.reduce(0) { $0 + $1.zeros }
            line += pad(String(format: "%.4f", n == 0 ? 0 : Double(z) / Double(n)))
            out += line + "\n"
        }
        out += String(format: "decoder linear weights: sparsity %.6f (%d of %d zero)\n", sparsity, zeros, numel)
        out += String(format: "all parameters:         sparsity %.6f (%d of %d zero)\n", parameterSparsity, parameterZeros, parameterCount)
        return out
    }

    /// JSON-ready dictionary (per tensor and totals).
    public var jsonObject: [String: Any] {
        [
            "tensors": rows.map { ["name": $0.name, "layer": $0.layer, "numel": $0.numel, "zeros": $0.zeros, "sparsity": $0.sparsity] as [String: Any] },
            "decoder_linear": ["numel": numel, "zeros": zeros, "sparsity": sparsity],
            "all_parameters": ["numel": parameterCount, "zeros": parameterZeros, "sparsity": parameterSparsity],
        ]
    }
}
