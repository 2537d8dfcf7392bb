import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - heatmap

enum HeatmapCommand: Command {
    enum Options {
        static let prompt = GenerateCommand.Options.prompt
        static let target = Option<TargetMode>("target", "spec", default: .lastMax, help: "What is explained, as in 'attribute'")
        /// Unlike `attribute`, the plain gradient is a rule here (Gradient×Input).
        static let rule = Option<LRPRules.Variant>("rule", "r", default: .attnLRP, choices: [.attnLRP, .cpLRP, .gradient],
                                                   help: "LRP rule, or gradient for Gradient×Input")
        static let out = Option<String>.path("out", "file", default: "heatmap.html", help: "Output HTML")
    }
    static let spec = CommandSpec(
        name: "heatmap", abstract: "Write a self-contained HTML heatmap of per-token input relevance for one prompt.",
        usage: "workbench heatmap --model <path> --prompt <text> [--target <spec>] [--rule attnlrp|cp-lrp|gradient] [--out <file.html>]",
        options: ModelOptions.all + [Options.prompt, Options.target, LRPOptions.seedValue, Options.rule, LRPOptions.epsilon,
                                     LRPOptions.maxNewTokens, Options.out],
        discussion: """
        Targets: last-max (default: the model's top prediction after the prompt), next-token, continuation
        (greedy continuation, then its tokens are explained and shown), or [POS:]REF[-REF],… e.g. '" Paris"' or
        '-1:" Mary"-" John"' (a logit difference). Colours: red positive, blue negative, normalised by max |R|;
        hover shows the raw value and token id; a table lists every value. The page has no external assets.
        """)

    static func run(_ args: Args) throws {
        let prompt = try args[Options.prompt]
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        let target = try args[Options.target]
        let lrp = try LRPOptions.chosen(args, rule: Options.rule)
        let out = try args[Options.out]
        let modelPath = try args[ModelOptions.model]
        _ = try OutputDestination.of(out)   // a directory or socket is refused before any work

        let m = try Common.load(args)
        try OutputGuard.check(output: out, inputs: m.inputFiles)
        let tok = try m.requireTokenizer()
        let set = PromptSet(path: "--prompt", entries: [PromptEntry(location: SourceLocation(file: "--prompt", line: 0), text: prompt)])
        guard let sample = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: target,
                                                     maxNewTokens: lrp.maxNewTokens).first else { throw ModelError.emptyPrompt }
        let rules = lrp.rules
        let r = try m.model.lrp(tokens: sample.tokens, explain: sample.explain, seed: lrp.seedValue, rules: rules, sink: nil)
        var report = HeatmapReport.from(tokens: sample.tokens, result: r, tokenizer: tok, model: modelPath,
                                        rule: rules.variant.rawValue + (rules.epsilon > 0 ? " (ε = \(rules.epsilon))" : ""), seedValue: lrp.seedValue)
        report.title = "Input relevance: \(target)"
        if sample.tokens.count > sample.promptLength {
            report.notes.append("Tokens from position \(sample.promptLength) on are the continuation.")
        }
        try AtomicFile.write(Heatmap.html(report), to: out)
        Out.print("wrote \(out): \(sample.tokens.count) tokens, \(r.terms.count) explained logit\(r.terms.count == 1 ? "" : "s")")
        if let c = report.conservation { Out.print(String(format: "conservation (Σ input relevance / Σ explained): %.4f", c)) }
    }
}
