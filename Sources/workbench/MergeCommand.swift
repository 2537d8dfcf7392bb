import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - merge

/// `workbench merge PART… --out relevance.safetensors`: shard parts → the file one run writes.
enum MergeCommand: Command {
    enum Options {
        static let out = Option<String>.path("out", "file", default: "relevance.safetensors", help: "Output safetensors")
        static let model = Option<String>.path("model", "path", defaultText: "the path the parts record",
                                          help: "The model the parts were made with (names and shapes; wanda: its weights, sha256-checked)")
        static let keepParts = Flag("keep-parts", help: "Keep the parts after a successful merge (default: remove them)")
        static let noVerify = Flag("no-verify", help: "Skip checking each part's data against its recorded sha256")
    }
    static let spec = CommandSpec(
        name: "merge", abstract: "Add up the shard parts of 'attribute --shard K/N' into the relevance file one run writes.",
        usage: "workbench merge <part> ... [--out <file>] [--model <path>] [--keep-parts]   (evaluation parts: --out <report.json>)",
        options: [Options.out, Options.model, Options.keepParts, Options.noVerify, OutputOptions.quiet],
        discussion: """
        CHECKS: every part must come from one run: the same model and data sha256, every setting (method, rule, target,
          seqlen, seed, samples, …) and the same tool version; shards 0..N−1 each exactly once (a missing or repeated shard
          is named with its samples), each holding exactly the samples its shard takes, with data matching its sha256.
        SUMS: the parts' F64 sums are added in shard order (0, 1, …, N−1) whatever order they are given in, so merging
          the same N parts always gives the same bits; the method's scorer then writes the final tensors from them as one
          run does from its own sums (the same file, up to the last bits of sums that are not exact in F64).
        The output is written atomically; the parts are removed afterwards unless --keep-parts.
        EVALUATION PARTS (.json, from 'evaluate … --shard K/N'): the parts must agree on the tool version, prompts,
          sweep, perplexity text (sha256 each), every setting, the scorer and the list of points, with shards 0..N−1
          each once; their results are put together in point order into --out (the report) and its page (.html
          beside it): the report one 'evaluate' run writes, up to its timestamp and wall times.
        """,
        positional: ("part", "Shard parts written by 'workbench attribute --shard K/N' (any order)"))

    static func run(_ args: Args) throws {
        let paths = args.positionals
        guard !paths.isEmpty else { throw UsageError(message: "Missing parts: give the files 'workbench attribute --shard K/N' wrote") }
        for p in paths {
            if let why = PathValue.problem(p) { throw UsageError(message: "The part '\(QuotedName.safe(p))' is invalid: \(why)") }
        }
        if paths.contains(where: { $0.hasSuffix(".json") }) { return try mergeEvaluation(paths, args) }
        let out = try args[Options.out]
        let quiet = args[OutputOptions.quiet]
        // Cheap checks first: the output is none of the parts, then the parts' metadata.
        try OutputGuard.check(output: out, inputs: paths)
        let t0 = Date()
        let parts = try ShardMerger.plan(paths, verify: !args[Options.noVerify])
        if !quiet { Out.err(String(format: "checked %d parts in %.2f s", parts.count, Date().timeIntervalSince(t0))) }
        let modelPath = try args.ifGiven(Options.model) ?? (parts[0].file.metadata["model"] ?? "")
        try OutputGuard.check(output: out, inputs: SHA256.modelFiles(path: modelPath))
        let model = try ModelLoader.load(modelPath, needTokenizer: false).model
        let s = try ShardMerger.merge(parts, model: model, modelPath: modelPath, out: out, keepParts: args[Options.keepParts])
        Out.print("parts: \(s.parts) (shards 0..\(s.parts - 1) of \(s.parts))")
        Out.print("samples: \(s.samples)")
        Out.print("tokens: \(s.tokens)")
        Out.print(String(format: "time: %.2f s (%.0f MB of sums read, %.0f MB/s)", s.seconds, Double(s.bytesRead) / 1e6,
                         s.seconds > 0 ? Double(s.bytesRead) / 1e6 / s.seconds : 0))
        Out.print("output: \(s.out) (\(s.tensorCount) tensors)" + (args[Options.keepParts] ? "" : "; parts removed"))
    }

    /// Parts of `evaluate --shard K/N` → the report (and page) one `evaluate` run writes.
    static func mergeEvaluation(_ paths: [String], _ args: Args) throws {
        if let p = paths.first(where: { !$0.hasSuffix(".json") }) {
            throw UsageError(message: "The part '\(QuotedName.safe(p))' is not .json: evaluation parts (.json) and attribution parts cannot be merged together")
        }
        if let o = [Options.model, Options.noVerify].first(where: args.given) as (any CLIOption)? {
            throw UsageError(message: "'--\(o.name)' applies to attribution parts only")
        }
        guard args.given(Options.out) else { throw UsageError(message: "Missing expected argument '--out <report.json>' for evaluation parts") }
        let out = try args[Options.out]
        let html = out.hasSuffix(".json") ? String(out.dropLast(5)) + ".html" : out + ".html"
        try OutputGuard.check(output: out, inputs: paths)
        try OutputGuard.check(output: html, inputs: paths + [out])
        let report = try EvaluationPart.merge(paths)
        try AtomicFile.write(try report.json(), to: out)
        try AtomicFile.write(report.html(), to: html)
        if !args[Options.keepParts] { for path in Set(paths) { try? FileManager.default.removeItem(atPath: path) } }
        Out.print("parts: \(paths.count) (evaluation: \(report.baseline == nil ? "" : "baseline and ")\(report.models.count) models)")
        Out.print("report: \(out)")
        Out.print("page: \(html)" + (args[Options.keepParts] ? "" : "; parts removed"))
    }
}
