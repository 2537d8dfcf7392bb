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
        usage: "workbench merge <part> ... [--out <file>] [--model <path>] [--keep-parts]",
        options: [Options.out, Options.model, Options.keepParts, Options.noVerify, OutputOptions.quiet],
        discussion: """
        CHECKS: every part must come from one run: the same model and data sha256, every setting (method, rule, target,
          seqlen, seed, samples, …) and the same tool version; shards 0..N−1 each exactly once (a missing or repeated shard
          is named with its samples), each holding exactly the samples its shard takes, with data matching its sha256.
        SUMS: the parts' F64 sums are added in shard order (0, 1, …, N−1) whatever order they are given in, so merging
          the same N parts always gives the same bits; the method's scorer then writes the final tensors from them as one
          run does from its own sums (the same file, up to the last bits of sums that are not exact in F64).
        The output is written atomically; the parts are removed afterwards unless --keep-parts.
        """,
        positional: ("part", "Shard parts written by 'workbench attribute --shard K/N' (any order)"))

    static func run(_ args: Args) throws {
        let paths = args.positionals
        guard !paths.isEmpty else { throw UsageError(message: "Missing parts: give the files 'workbench attribute --shard K/N' wrote") }
        for p in paths {
            if let why = PathValue.problem(p) { throw UsageError(message: "The part '\(QuotedName.safe(p))' is invalid: \(why)") }
        }
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
}
