import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - heatmap

enum HeatmapCommand: Command {
    static let spec = CommandSpec(
        name: "heatmap", abstract: "Write a self-contained HTML heatmap of per-token input relevance for one prompt.",
        usage: "workbench heatmap --model <path> --prompt <text> [--target <spec>] [--rule attnlrp|cp-lrp|gradient] [--out <file.html>]",
        options: [Common.model,
                  OptionSpec(name: "prompt", value: "text", help: "Prompt text (BOS added per the tokenizer's rule)."),
                  OptionSpec(name: "target", value: "spec", help: "What is explained (default last-max; as in 'attribute')."),
                  OptionSpec(name: "seed-value", value: "v", help: "logit (default) or one."),
                  OptionSpec(name: "rule", value: "r", help: "attnlrp (default), cp-lrp, or gradient (Gradient×Input)."),
                  OptionSpec(name: "epsilon", value: "e", help: "LRP-ε on linear layers (default 0)."),
                  OptionSpec(name: "max-new-tokens", value: "n", help: "Continuation length for --target continuation (default 20)."),
                  OptionSpec(name: "out", value: "file", help: "Output HTML (default heatmap.html).")],
        discussion: """
        Targets: last-max (default: the model's top prediction after the prompt), next-token, continuation
        (greedy continuation, then its tokens are explained and shown), or [POS:]REF[-REF],… e.g. '" Paris"' or
        '-1:" Mary"-" John"' (a logit difference). Colours: red positive, blue negative, normalised by max |R|;
        hover shows the raw value and token id; a table lists every value. The page has no external assets.
        """)

    static func run(_ args: Args) throws {
        let prompt = try args.required("prompt")
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        let target: TargetMode
        do { target = try TargetMode.parse(args.string("target") ?? "last-max") } catch {
            throw UsageError(message: error.localizedDescription)
        }
        let variant: LRPRules.Variant = try args.choice("rule", default: .attnLRP)
        let epsilon = try args.double("epsilon", default: 0, range: 0...1)!
        let seedValue: SeedValue = try args.choice("seed-value", default: .logit)
        let maxNew = try args.int("max-new-tokens", default: 20, min: 0)!
        let out = args.string("out") ?? "heatmap.html"
        let modelPath = try args.required("model")
        func canonical(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
        guard canonical(out) != canonical(modelPath) else { throw AttributionError.outputIsInput(path: out) }

        let m = try Common.load(args)
        let tok = try m.requireTokenizer()
        let set = PromptSet(path: "--prompt", entries: [PromptEntry(location: SourceLocation(file: "--prompt", line: 0), text: prompt)])
        guard let sample = try PromptSamples.prepare(set, model: m.model, tokenizer: tok, target: target,
                                                     maxNewTokens: maxNew).first else { throw ModelError.emptyPrompt }
        let rules = LRPRules(variant, epsilon: Float(epsilon))
        let r = try m.model.lrp(tokens: sample.tokens, explain: sample.explain, seed: seedValue, rules: rules, sink: nil)
        var report = HeatmapReport.from(tokens: sample.tokens, result: r, tokenizer: tok, model: modelPath,
                                        rule: rules.variant.rawValue + (epsilon > 0 ? " (ε = \(epsilon))" : ""), seedValue: seedValue)
        report.title = "Input relevance: \(target)"
        if sample.tokens.count > sample.promptLength {
            report.notes.append("Tokens from position \(sample.promptLength) on are the continuation.")
        }
        try AtomicFile.write(Heatmap.html(report), to: out)
        Out.print("wrote \(out): \(sample.tokens.count) tokens, \(r.terms.count) explained logit\(r.terms.count == 1 ? "" : "s")")
        if let c = report.conservation { Out.print(String(format: "conservation (Σ input relevance / Σ explained): %.4f", c)) }
    }
}
