import Circuits
import Foundation
import Transformer

// MARK: - circuit-compare

enum CircuitCompareCommand: Command {
    enum Options {
        static let model = Option<String>.path("model", "path", defaultText: "the path the first circuit.json records",
                                          help: "The model the circuits were found on (its sha256 must match theirs)")
        static let json = Option<String>.path("json", "file", help: "Also write the overlaps and the transfer matrix as JSON (atomically)")
        /// One prompt set for every circuit instead of their reference sets (e.g. prompts from templates none of them saw).
        static let prompts = Option<String>.path("prompts", "file", help: "Measure every circuit's f on this task file instead of on their reference prompts")
    }
    static let spec = CommandSpec(
        name: "circuit-compare", abstract: "Overlap of circuits (Jaccard, shared heads/neurons) and the faithfulness of each on the others' prompts.",
        usage: "workbench circuit-compare <circuit> <circuit> ... [--model <path>] [--prompts <task>] [--json <file>]",
        options: [Options.model, Options.prompts, Options.json, OutputOptions.quiet],
        discussion: """
        Each argument is a directory `workbench circuit` wrote (or its circuit.json); mask.safetensors beside it gives
        the kept set. All must have one granularity and one model (sha256). OVERLAP per pair: Jaccard |A∩B| / |A∪B|
        (weights: per tensor and in total) and the heads/neurons both keep. TRANSFER: every circuit's mask, with its own
        ablation, evaluated on every circuit's reference prompts (the part of the file its run used with --seeds);
        m(M) and m(∅) are measured on each prompt set with that ablation (every unit/weight ablated, means over that
        set for mean ablation), so the diagonal repeats each circuit's own f_ref when all candidates were ablated.
        --prompts FILE: the transfer has one column, every circuit on FILE (e.g. prompts from templates no circuit saw).
        """,
        positional: ("circuit", "Circuit directories (or their circuit.json)"))

    static func run(_ args: Args) throws {
        let paths = args.positionals
        guard paths.count >= 2 else { throw UsageError(message: "Give at least two circuits (directories written by 'workbench circuit')") }
        let quiet = args[OutputOptions.quiet]
        let circuits = try paths.map(StoredCircuit.load)
        for c in circuits.dropFirst() {
            if c.granularity != circuits[0].granularity { throw CircuitCompareError.mixedGranularity(circuits[0].path, c.path) }
            if c.modelSHA256 != circuits[0].modelSHA256 { throw CircuitCompareError.differentModels(circuits[0].path, c.path) }
        }
        let modelPath = try args.ifGiven(Options.model) ?? circuits[0].modelPath
        let jsonOut = try args.ifGiven(Options.json)
        let promptsPath = try args.ifGiven(Options.prompts)
        if let j = jsonOut {
            try OutputGuard.check(output: j, inputs: circuits.flatMap { [$0.path, $0.directory + "/mask.safetensors", $0.referencePath] }
                                  + (promptsPath.map { [$0] } ?? []))
        }
        let m = try Common.load(args, modelPath: modelPath)
        if let j = jsonOut { try OutputGuard.check(output: j, inputs: m.inputFiles) }
        let sha = try SHA256.model(path: modelPath).sha256
        guard sha == circuits[0].modelSHA256 else { throw CircuitCompareError.differentModels(modelPath, circuits[0].path) }
        let g = circuits[0].granularity

        Out.print("circuits (\(g.rawValue)):")
        for (i, c) in circuits.enumerated() { Out.print("  [\(i)] \(c.directory): \(c.label)") }
        Out.print("overlap (Jaccard = |A∩B| / |A∪B|):")
        var pairs: [[String: Any]] = []
        for i in circuits.indices { for j in circuits.indices where j > i {
            let o = CircuitOverlap.of(circuits[i], circuits[j], model: m.model)
            let shared = o.shared.map { $0.name(g) }
            Out.print(String(format: "  [%d] vs [%d]: %.4f (%d of %d; sizes %d and %d)", i, j, o.jaccard, o.intersection, o.union, o.a, o.b)
                      + (g == .weights ? "" : "; shared \(g.rawValue): " + (shared.isEmpty ? "none" : shared.prefix(40).joined(separator: " ") + (shared.count > 40 ? " …" : ""))))
            var d: [String: Any] = ["a": i, "b": j, "jaccard": o.jaccard, "intersection": o.intersection, "union": o.union, "size_a": o.a, "size_b": o.b]
            if g == .weights {
                d["per_tensor"] = o.perTensor.map { ["name": $0.name, "intersection": $0.intersection, "union": $0.union,
                                                     "jaccard": $0.union == 0 ? 1 : Double($0.intersection) / Double($0.union)] as [String: Any] }
            } else { d["shared"] = shared }
            pairs.append(d)
        } }

        // Each circuit's reference prompts (its part of the file with --seeds), once per distinct (file, part).
        var setKeys: [String] = [], sets: [[TaskItem]] = [], setOf: [Int] = []
        if let p = promptsPath {
            setKeys = [p]; sets = [try TaskSet.load(p).tokenize(tokenizer: m.tokenizer, model: m.model)]
        }
        for c in circuits where promptsPath == nil {
            let key = c.referencePath + (c.referencePart.map { "#\($0.index)/\($0.of)" } ?? "")
            if let k = setKeys.firstIndex(of: key) { setOf.append(k); continue }
            let all = try TaskSet.load(c.referencePath).tokenize(tokenizer: m.tokenizer, model: m.model)
            let items = try c.referencePart.map { try ReferenceResamples.parts(all, parts: $0.of)[$0.index] } ?? all
            setKeys.append(key); sets.append(items); setOf.append(sets.count - 1)
        }
        let f = try CircuitTransfer.matrix(model: m.model, circuits: circuits, sets: sets, progress: { if !quiet { Out.err($0) } })
        Out.print("transfer: f of each circuit (rows) on each prompt set (columns; its own ablation):")
        for (k, key) in setKeys.enumerated() {
            Out.print("  set \(k): \(key) (\(sets[k].count) prompts; " + (promptsPath != nil ? "--prompts)" : "reference of " +
                circuits.indices.filter { setOf[$0] == k }.map { "[\($0)]" }.joined(separator: " ") + ")"))
        }
        Out.print("        " + setKeys.indices.map { String(format: "%9@", "set \($0)") }.joined())
        for (i, row) in f.enumerated() { Out.print(String(format: "  [%2d] ", i) + row.map { String(format: "%9.4f", $0) }.joined()) }
        if let j = jsonOut {
            let d: [String: Any] = [
                "granularity": g.rawValue, "model": ["path": modelPath, "sha256": sha],
                "circuits": circuits.indices.map { i in ["path": circuits[i].path, "label": circuits[i].label, "ablation": circuits[i].ablation.rawValue,
                                                    "reference_set": promptsPath == nil ? setOf[i] as Any : NSNull()] as [String: Any] },
                "overlap": pairs, "prompt_sets": setKeys.enumerated().map { ["set": $0.offset, "reference": $0.element, "prompts": sets[$0.offset].count] as [String: Any] },
                "transfer_f": f, "transfer_axes": "rows: circuits, columns: prompt sets; f = (m(C) - m(empty)) / (m(full) - m(empty)) on that set",
            ]
            try AtomicFile.write(try CircuitReport.json(d), to: j)
            Out.print("wrote \(j)")
        }
    }
}
