import Circuits
import Foundation
import Transformer

// MARK: - select

enum SelectCommand: Command {
    enum Options {
        static let prompts = Option<String>("prompts", "file", help: "Candidate prompts (.txt lines or .jsonl with text/prompt); kept lines are copied verbatim")
        static let metric = Option<SelectionMetric>("metric", "name", choices: SelectionMetric.allCases,
                                                    help: "What the greedy continuation is measured by: RUR (unique/total tokens) or toxicity")
        static let below = Option<Double>("below", "x", help: "Keep prompts whose value is < x")
        static let above = Option<Double>("above", "x", help: "Keep prompts whose value is > x")
        static let tokens = Option<Int>("tokens", "n", defaultText: "50 for rur, 20 for toxicity", min: 1,
                                        help: "Length of the greedy continuation (evaluate's --repetition-tokens / --greedy-tokens)")
        static let maxPrompts = Option<Int>("max-prompts", "k", min: 1, help: "Use only the first k prompts")
        static let batchRows = Option<Int>("batch-rows", "n", default: 64, min: 1, help: "Prompts decoded together in one matrix product per step")
        static let out = Option<String>("out", "file", help: "Output: the kept lines, verbatim, in file order")
        static let values = Option<String>("values", "file.jsonl", help: "Also write every prompt's line, value, kept flag and continuation")
    }
    static let spec = CommandSpec(
        name: "select", abstract: "Keep the prompts whose greedy continuation shows a behaviour (RUR below / toxicity above a cut).",
        usage: "workbench select --model <path> --prompts <file> --metric rur|toxicity (--below <x> | --above <x>) --out <file> [--tokens <n>] [--values <file.jsonl>]",
        options: [ModelOptions.model, Options.prompts, Options.metric, Options.below, Options.above, Options.tokens, Options.maxPrompts,
                  Options.batchRows, ToxicityOptions.scorer, ToxicityOptions.model, Options.out, Options.values, OutputOptions.quiet],
        discussion: """
        Builds an undesired-behaviour set from candidates: each prompt's greedy continuation (decoded in batches, the
        same continuation `evaluate` measures) is measured, and the prompt is kept when the value lies strictly beyond
        the cut. SparC³'s repetition set: --metric rur --below 0.3 over 50 tokens (on SmolLM2 ordinary C4 prompts
        already give RUR ≈ 0.41, so 0.5 does not separate trigger prompts). A continuation that stops at once has no
        RUR and is never kept. The summary gives mean ± SEM of all and of the kept prompts; `split` then makes the
        reference and held-out parts.
        """)

    static func run(_ args: Args) throws {
        let below = try args.ifGiven(Options.below), above = try args.ifGiven(Options.above)
        guard (below == nil) != (above == nil) else {
            throw UsageError(message: below == nil ? "Missing expected argument '--below <x>' or '--above <x>'" : "--below and --above are mutually exclusive")
        }
        let bound: SelectionBound = below.map { .below($0) } ?? .above(above!)
        let metric = try args[Options.metric]
        if metric == .rur, args.given(ToxicityOptions.scorer) || args.given(ToxicityOptions.model) {
            throw UsageError(message: "--scorer and --toxicity-model apply to --metric toxicity only")
        }
        let promptsPath = try args[Options.prompts], out = try args[Options.out], valuesPath = try args.ifGiven(Options.values)
        try TaskCommandSupport.checkOutput(out, inputs: [promptsPath])
        if let valuesPath {
            try TaskCommandSupport.checkOutput(valuesPath, inputs: [promptsPath, out])
            if valuesPath == out { throw UsageError(message: "--values and --out name the same file") }
        }
        var entries = try PromptSet.load(promptsPath).entries
        if let k = try args.ifGiven(Options.maxPrompts) { entries = Array(entries.prefix(k)) }
        let texts = try entries.map { e -> String in
            guard let t = e.text else { throw UsageError(message: "\(e.location): select needs prompt text (\"text\" or \"prompt\"), not ids") }
            return t
        }
        let m = try ModelLoader.load(try args[ModelOptions.model], needTokenizer: true)
        for f in m.inputFiles { try OutputGuard.check(output: out, inputs: [f]) }
        let tokens = try args.ifGiven(Options.tokens) ?? metric.defaultTokens
        let sel = try PromptSelection.run(m, prompts: texts, metric: metric, bound: bound, tokens: tokens,
                                          scorer: try ToxicityOptions.scorer(args), batchRows: try args[Options.batchRows],
                                          progress: !args[OutputOptions.quiet])
        guard !sel.kept.isEmpty else {
            let defined = sel.values.compactMap { $0 }
            throw SelectError.noneKept(metric: metric.rawValue, bound: bound.description, prompts: texts.count,
                                       range: defined.isEmpty ? nil : (defined.min()!, defined.max()!))
        }
        // The kept lines verbatim (a .jsonl line keeps its other fields).
        let raw = String(decoding: try readInputFile(promptsPath), as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
            .split(separator: "\n", omittingEmptySubsequences: false)
        let keptLines = sel.kept.map { String(raw[entries[$0].location.line - 1]) }
        try AtomicFile.write(keptLines.joined(separator: "\n") + "\n", to: out)
        if let valuesPath {
            let lines = entries.indices.map { i -> String in
                "{\"line\": \(entries[i].location.line), \"\(metric.rawValue)\": \(sel.values[i].map { "\($0)" } ?? "null"), "
                    + "\"kept\": \(sel.kept.contains(i)), \"prompt\": \(JSONText.quote(texts[i])), \"continuation\": \(JSONText.quote(sel.continuations[i]))}"
            }
            try AtomicFile.write(lines.joined(separator: "\n") + "\n", to: valuesPath)
        }
        let all = Stat(sel.values), kept = Stat(sel.kept.map { sel.values[$0] })
        Out.print("kept: \(sel.kept.count) of \(texts.count) prompts (\(metric.rawValue) \(bound), greedy \(tokens) tokens) → \(out)")
        Out.print("\(metric.rawValue) of all: \(all.text); of the kept: \(kept.text)")
        if let valuesPath { Out.print("values: \(valuesPath)") }
    }
}

enum SelectError: LocalizedError {
    case noneKept(metric: String, bound: String, prompts: Int, range: (Double, Double)?)
    var errorDescription: String? {
        switch self {
        case let .noneKept(metric, bound, prompts, range):
            return "no prompt of \(prompts) has \(metric) \(bound)"
                + (range.map { String(format: " (values range from %.4g to %.4g)", $0.0, $0.1) } ?? " (no continuation had a value)")
                + "; nothing written"
        }
    }
}
