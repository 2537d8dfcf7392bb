import Circuits
import Foundation
import Transformer

// MARK: - correct

enum CorrectCommand: Command {
    enum Options {
        static let general = Option<String>.path("general", "file", help: "Prompts of the behaviour to keep (.txt or .jsonl with text/prompt)")
        static let undesired = Option<String>.path("undesired", "file", help: "Prompts that trigger the behaviour to remove")
        static let generalSamples = Option<Int>("general-samples", "k", min: 1, help: "Use only the first k general prompts")
        static let undesiredSamples = Option<Int>("undesired-samples", "k", min: 1, help: "Use only the first k undesired prompts")
        static let method = Option<CorrectionMethod>("method", "m", default: .lrp, choices: CorrectionMethod.allCases,
                                                     help: "Scores whose contrast ranks the components")
        static let granularity = Option<CorrectionGranularity>("granularity", "g", default: .neurons,
                                                               choices: CorrectionGranularity.allCases, help: "What is removed")
        static let count = Option<[Int]>("count", "n[,n…]", help: "How many to remove; a list makes a sweep (attribution runs once)")
        static let sparsity = Option<Double>("sparsity", "f", help: "Fraction of the candidates to remove, in [0, 1)")
        static let aggregation = Option<RelevanceAccumulator.Aggregation>(
            "aggregation", "a", default: .signed, choices: [.signed, .absPerSample, .absPerToken],
            help: "How lrp/gradient relevance is aggregated over positions before the mean")
        static let normalize = Option<CorrectionNormalization>(
            "normalize", "mode", default: CorrectionNormalization.none, choices: CorrectionNormalization.allCases,
            help: "Scale the two sets' means before the difference: none (SparC³ Eq. 7) or per-set (each ÷ its Σ|score| over the ranked components)")
        static let maxNew = Option<Int>("max-new-tokens", "n", default: 50, min: 1,
                                        help: "Length of the undesired prompts' own greedy continuations that are explained")
        static let seed = Option<Int>("seed", "s", default: 0, min: 0, help: "Seed of --method random")
        static let layers = Option<String>("layers", "regex", help: "Only layers whose weight or unit score names match")
        static let out = Option<String>.path("out", "dir", help: "Output: the pruned HF directory, or with several counts a folder of count-N directories")
        static let force = Flag("force", help: "Replace an existing output")
        static let quiet = OutputOptions.quiet
    }
    static let spec = CommandSpec(
        name: "correct", abstract: "Remove a behaviour: prune the components with the most negative R̄_general − R̄_undesired.",
        usage: "workbench correct --model <path> --general <file> --undesired <file> (--count <n[,n…]> | --sparsity <f>) --out <dir> [options]",
        options: ModelOptions.all + [Options.general, Options.undesired, Options.generalSamples, Options.undesiredSamples, Options.method,
                                     Options.granularity, Options.count, Options.sparsity, Options.aggregation, Options.normalize, Options.maxNew, Options.seed,
                                     Options.layers, Options.out, Options.force, Options.quiet],
        discussion: """
        SparC³ §3.4: scores are averaged over each set (Eq. 1) — the general prompts explain their next tokens, the
        undesired prompts explain the model's own greedy continuation of --max-new-tokens tokens — and the components
        with the lowest difference general − undesired are removed (neurons/heads: whole units; weights: one global
        ranking). Methods: lrp (AttnLRP), gradient, wanda and activation (their statistics on each set), random (seeded
        floor). A list of counts writes DIR/count-N/ (each a complete HF checkpoint with its correction.json and
        mask.safetensors) and DIR/correction.json (the sweep index `workbench evaluate --sweep` reads); one count or a
        fraction writes DIR itself. Each checkpoint is a full F32 copy of the model. Bad input writes nothing.
        --normalize per-set divides each set's means by its total |score| over the ranked components before the
        difference, so the set with more relevance mass (the general set, which explains every next token) does not
        decide the ranking alone; the default is the published raw difference.
        """)

    static func run(_ args: Args) throws {
        let o = try parse(args)
        let quiet = args[Options.quiet]
        let t0 = Date()
        let r = try CorrectionPipeline.run(o, progress: !quiet) { Out.err($0) }
        for (s, e) in zip(r.steps, r.record.sweep) {
            let what = e.removed.isEmpty ? "\(e.prunedWeights) weights" : "\(e.removed.count) \(e.removed[0].kind)s"
            Out.print("\(what) removed → \(s.directory)")
        }
        if o.amounts.count > 1 { Out.print("sweep index: \(o.out)/correction.json") }
        Out.err(String(format: "total %.1f s", Date().timeIntervalSince(t0)))
    }

    static func parse(_ args: Args) throws -> CorrectionOptions {
        let amounts: [PruneAmount]
        switch (try args.ifGiven(Options.count), try args.ifGiven(Options.sparsity)) {
        case (let c?, nil): amounts = c.map { .count($0) }
        case (nil, let f?): amounts = [.fraction(f)]
        case (nil, nil): throw UsageError(message: "Missing expected argument '--count <n[,n…]>' or '--sparsity <f>'")
        case (_?, _?): throw UsageError(message: "--count and --sparsity are mutually exclusive")
        }
        let method = try args[Options.method]
        if args.given(Options.aggregation), method != .lrp, method != .gradient {
            throw UsageError(message: "--aggregation applies only with --method lrp or gradient")
        }
        if args.given(Options.normalize), method == .random, try args[Options.normalize] != .none {
            throw UsageError(message: "--normalize applies only to methods with scores (not --method random)")
        }
        if args.given(Options.seed), method != .random { throw UsageError(message: "--seed applies only with --method random") }
        let o = CorrectionOptions(
            model: try args[ModelOptions.model], general: try args[Options.general], undesired: try args[Options.undesired],
            generalSamples: try args.ifGiven(Options.generalSamples), undesiredSamples: try args.ifGiven(Options.undesiredSamples),
            method: method, granularity: try args[Options.granularity], layers: try args.ifGiven(Options.layers), amounts: amounts,
            aggregation: try args[Options.aggregation], normalize: try args[Options.normalize], maxNewTokens: try args[Options.maxNew], seed: UInt64(try args[Options.seed]),
            out: try args[Options.out], force: args[Options.force])
        do { _ = try o.specs() } catch let e as PruneError where e.isUsageError { throw UsageError(message: e.localizedDescription) }
        return o
    }
}
