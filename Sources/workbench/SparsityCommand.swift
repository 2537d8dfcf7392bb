import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - sparsity

enum SparsityCommand: Command {
    static let spec = CommandSpec(
        name: "sparsity", abstract: "Per-layer sparsity table (exact zeros) of any checkpoint, like Wanda's check_sparsity.",
        usage: "workbench sparsity --model <path> [--json]",
        options: ModelOptions.all + [OutputOptions.json],
        discussion: """
        Counts exact zeros in every decoder linear weight (q k v o gate up down / q k v out fc1 fc2); lm_head and
        embeddings appear only in the all-parameters line. sparse-bitmask checkpoints are decoded first. If the
        directory holds a pruning.json, its scheme and target are shown. --json prints per-tensor rows and totals.
        """)

    static func run(_ args: Args) throws {
        let path = try args[ModelOptions.model]
        let m = try ModelLoader.load(path, needTokenizer: false)
        let report = SparsityReport.measure(m.model)
        let bytes = DiskUsage.bytes(path)
        var pruning: [String: Any]? = nil
        if InputFile.isRegular(path + "/pruning.json"), let d = try? readInputFile(path + "/pruning.json", limit: 64 << 20) {
            pruning = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any]
        }
        if args[OutputOptions.json] {
            var obj = report.jsonObject
            obj["path"] = path
            obj["format"] = m.format
            obj["bytes_on_disk"] = bytes
            if let pruning { obj["pruning"] = ["scheme": pruning["scheme"] ?? NSNull(), "target": pruning["target"] ?? NSNull(),
                                               "method": pruning["method"] ?? NSNull()] }
            Out.print(Out.json(obj))
            return
        }
        Out.print("\(path) (\(m.format), \(m.sourceDType)), \(DiskUsage.human(bytes)) on disk")
        if let pruning {
            let target = (pruning["target"] as? [String: Any])?.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            Out.print("pruning.json: method \(pruning["method"] ?? "?"), scheme \(pruning["scheme"] ?? "?"), rank \(pruning["rank"] ?? "?"), target \(target ?? "?")")
        }
        Out.write(report.table())
    }
}
