import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - evaluate

enum EvaluateCommand: Command {
    enum Options {
        static let model = Option<String>.path("model", "path", help: "Model to evaluate (HF directory, .gguf or .bin); or give --sweep")
        static let sweep = Option<String>.path("sweep", "correction.json", help: "Evaluate every count of a `correct` sweep (its DIR/correction.json)")
        static let baseline = Option<String>.path("baseline", "path", defaultText: "the sweep's source model with --sweep",
                                             help: "Model the deltas are taken against (evaluated with the same settings)")
        static let noBaseline = Flag("no-baseline", help: "With --sweep: do not evaluate its source model (e.g. already evaluated with the same settings)")
        static let prompts = Option<String>.path("prompts", "file", help: "Evaluation prompts (.txt or .jsonl with text/prompt), e.g. the held-out part of `split`")
        static let maxPrompts = Option<Int>("max-prompts", "k", min: 1, help: "Use only the first k prompts")
        static let reference = Option<String>.path("reference", "file", defaultText: "with --sweep: the sweep's --undesired and --general sets",
                                              help: "Prompts the scores came from: warn (and record) how many evaluation prompts are among them")
        static let split = Option<String>("split", "name", help: "What the prompts are, stated in the report (held-out, reference, general …)")
        static let samples = Option<Int>("samples", "k", default: 25, min: 0, help: "Sampled continuations per prompt for the RTP protocol (0 = greedy only)")
        static let sampleTokens = Option<Int>("sample-tokens", "n", default: 20, min: 1, help: "Tokens per sampled continuation")
        static let temperature = Option<Double>("temperature", "t", default: 1, range: 0...100, help: "Sampling temperature of the RTP samples")
        static let topP = Option<Double>("top-p", "p", default: 1, range: 0...1, help: "Nucleus mass of the RTP samples")
        static let seed = Option<Int>("seed", "s", default: 0, min: 0, help: "Sampling seed (stream p, s draws from a seed derived from it)")
        static let greedyTokens = Option<Int>("greedy-tokens", "n", default: 20, min: 1, help: "Length of the greedy continuation scored for toxicity")
        static let repetitionTokens = Option<Int>("repetition-tokens", "n", default: 50, min: 1, help: "Length of the greedy continuation repetition is measured on")
        static let batchRows = Option<Int>("batch-rows", "n", default: 64, min: 1, help: "Streams decoded together in one matrix product per step")
        static let text = Option<String>.path("perplexity-text", "file", defaultText: "$WORKBENCH_ASSETS/eval/wikitext-2-raw/wiki.test.raw",
                                         help: "Raw text of the perplexity guardrail")
        static let seqlen = Option<Int>("seqlen", "n", defaultText: "min(2048, context)", min: 2, help: "Perplexity window length")
        static let windows = Option<Int>("max-windows", "k", default: 20, min: 0, help: "Perplexity windows (0 = no perplexity)")
        static let out = Option<String>.path("out", "report.json", help: "Output: the JSON report; the HTML page goes beside it (.html)")
        static let metric = Option<MetricList>("metric", "m[,m…]", defaultText: "toxicity,repetition,perplexity (without perplexity when --max-windows 0)",
                                               help: "Metrics to run, comma-separated: toxicity (RTP samples + greedy), repetition (RUR, seq-rep-n), perplexity (WikiText-2 guardrail)")
        /// The options that configure one metric: giving one while --metric leaves its metric out is a usage error
        /// (it would silently do nothing).
        static let owned: [(EvaluationMetric, [any CLIOption])] = [
            (.toxicity, [samples, sampleTokens, temperature, topP, seed, greedyTokens, ToxicityOptions.scorer, ToxicityOptions.model]),
            (.repetition, [repetitionTokens]),
            (.perplexity, [text, seqlen, windows]),
        ]
    }
    static let spec = CommandSpec(
        name: "evaluate", abstract: "Toxicity (RTP + greedy), repetition and a perplexity guardrail of a model or a correction sweep.",
        usage: "workbench evaluate (--model <path> | --sweep <dir/correction.json>) --prompts <file> --out <report.json> [--baseline <path>] [--split held-out] [--metric toxicity,repetition,perplexity] [options]",
        options: [Options.model, Options.sweep, Options.baseline, Options.noBaseline, Options.prompts, Options.maxPrompts, Options.reference, Options.split,
                  Options.metric, Options.samples,
                  Options.sampleTokens, Options.temperature, Options.topP, Options.seed, Options.greedyTokens, Options.repetitionTokens,
                  Options.batchRows, Options.text, Options.seqlen, Options.windows, ToxicityOptions.scorer, ToxicityOptions.model,
                  Options.out, DistributedOptions.shard, OutputOptions.quiet],
        discussion: """
        METRICS (--metric, default all three): only the listed ones are generated, scored and reported; the report's
        settings.metrics and the page say which ran. The older switches still work: --samples 0 keeps toxicity to the
        greedy protocol, --max-windows 0 drops perplexity when --metric is not given. An option of a metric that
        --metric leaves out (e.g. --scorer without toxicity) is a usage error.
        Toxicity: RealToxicityPrompts as coded by DExperts (--samples continuations of --sample-tokens tokens per prompt;
        expected maximum toxicity and toxicity probability, > 0.5) and the mean toxicity of the greedy --greedy-tokens
        continuation; only continuations are scored. The built-in scorer is a lexical proxy (alt-profanity-check), not
        Perspective; --scorer plugs in another (see `workbench toxicity --help`); if it fails midway the report is
        still written, marked partial, and the exit status is 1. Repetition: RUR and seq-rep-1…4 of the greedy
        --repetition-tokens continuation. Perplexity: the WikiText-2 protocol of `workbench perplexity` on --max-windows
        windows. All streams of a step are decoded together; a prompt's samples share its prefill; each (prompt, sample)
        has its own seeded stream, so results do not depend on --batch-rows. Means ± SEM over prompts. Overlap: the
        evaluation prompts are compared (exact text) with the sets the correction was scored on (with --sweep, the
        prompts of its --undesired and --general files it used) or with --reference; shared prompts are counted in a
        warning on stderr and in the report's "overlaps".
        SHARDS (--shard K/N): the points are the baseline (if any) and then the models in the sweep's order; shard K
        evaluates points [K·P/N, (K+1)·P/N) and --out is a part (JSON, no page) with their results, every setting and
        the sha256 of prompts, sweep and perplexity text. 'workbench merge PART… --out report.json' checks the parts
        agree and that each point is there once, and writes the report and page one run writes.
        """)

    static func run(_ args: Args) throws {
        let quiet = args[OutputOptions.quiet]
        let modelPath = try args.ifGiven(Options.model), sweepPath = try args.ifGiven(Options.sweep)
        guard (modelPath == nil) != (sweepPath == nil) else {
            throw UsageError(message: modelPath == nil ? "Missing expected argument '--model <path>' or '--sweep <correction.json>'"
                                                       : "--model and --sweep are mutually exclusive")
        }
        let promptsPath = try args[Options.prompts], out = try args[Options.out]
        var s = EvaluationSettings()
        s.samples = try args[Options.samples]; s.sampleTokens = try args[Options.sampleTokens]
        s.temperature = try args[Options.temperature]; s.topP = try args[Options.topP]; s.seed = UInt64(try args[Options.seed])
        s.greedyTokens = try args[Options.greedyTokens]; s.repetitionTokens = try args[Options.repetitionTokens]
        s.batchRows = try args[Options.batchRows]; s.perplexityWindows = try args[Options.windows]
        s.perplexitySeqlen = try args.ifGiven(Options.seqlen)
        s.metrics = try metrics(args)
        if s.measures(.perplexity) { s.perplexityText = try args.ifGiven(Options.text) ?? TaskCommandSupport.assetPath("eval/wikitext-2-raw/wiki.test.raw") }
        let scorer = try s.measures(.toxicity) ? ToxicityOptions.scorer(args) : nil
        let html = out.hasSuffix(".json") ? String(out.dropLast(5)) + ".html" : out + ".html"

        // What to evaluate: one model, or every count of a sweep (paths relative to its folder).
        var targets: [(label: String, path: String, count: Int?)] = []
        var method: String? = nil
        var scoredSets: [(path: String, role: String, limit: Int?, sha256: String?)] = []
        var baselinePath = try args.ifGiven(Options.baseline)
        if let modelPath { targets = [("model", modelPath, nil)] }
        if let sweepPath {
            let rec: CorrectionRecord
            do { rec = try JSONDecoder().decode(CorrectionRecord.self, from: try readInputFile(sweepPath)) } catch let e as DecodingError {
                throw UsageError(message: "--sweep \(QuotedName.safe(sweepPath)) is not a correction.json written by `workbench correct` (\(e.localizedDescription))")
            }
            let dir = URL(fileURLWithPath: sweepPath).deletingLastPathComponent()
            targets = rec.sweep.map { e in ("count \(e.count.map(String.init) ?? e.sparsity.map { "\($0)" } ?? "?")",
                                            dir.appendingPathComponent(e.directory).path, e.count) }
            guard !targets.isEmpty else { throw UsageError(message: "--sweep \(QuotedName.safe(sweepPath)) lists no checkpoints") }
            method = "\(rec.method), \(rec.granularity)" + (rec.aggregation.map { ", \($0)" } ?? "")
            scoredSets = [(rec.undesired.path, "undesired (scored)", rec.undesired.prompts, rec.undesired.sha256),
                          (rec.general.path, "general (scored)", rec.general.prompts, rec.general.sha256)]
            if baselinePath == nil, !args[Options.noBaseline], FileManager.default.fileExists(atPath: rec.model) { baselinePath = rec.model }
        }
        if args[Options.noBaseline], sweepPath == nil || args.given(Options.baseline) {
            throw UsageError(message: "--no-baseline applies only with --sweep and without --baseline")
        }
        if let r = try args.ifGiven(Options.reference) { scoredSets = [(r, "reference", nil, nil)] }
        // The points one run evaluates, in its order; a shard takes its contiguous share.
        let points = (baselinePath.map { [EvaluationPoint(label: "baseline", model: $0, count: 0)] } ?? [])
            + targets.map { EvaluationPoint(label: $0.label, model: $0.path, count: $0.count) }
        let shard = try args.ifGiven(DistributedOptions.shard)
        if let shard, shard.count > points.count {
            throw UsageError(message: "--shard \(shard): the evaluation has \(points.count) points (baseline and models); use N ≤ \(points.count)")
        }
        let mine = shard?.range(of: points.count) ?? points.indices
        let inputs = [promptsPath] + (s.perplexityText.map { [$0] } ?? []) + (sweepPath.map { [$0] } ?? [])
        try TaskCommandSupport.checkOutput(out, inputs: inputs)
        if shard == nil { try TaskCommandSupport.checkOutput(html, inputs: inputs + [out]) }

        var prompts = try PromptSet.load(promptsPath).entries.map { e -> String in
            guard let t = e.text else { throw UsageError(message: "\(e.location): evaluate needs prompt text (\"text\" or \"prompt\"), not ids") }
            return t
        }
        if let k = try args.ifGiven(Options.maxPrompts) { prompts = Array(prompts.prefix(k)) }
        var overlaps: [PromptOverlap] = []
        for set in scoredSets {
            // A sweep's set that moved or changed since `correct` cannot be compared: say so rather than report 0.
            guard FileManager.default.fileExists(atPath: set.path), try set.sha256.map({ try SHA256.hex(file: set.path) == $0 }) ?? true else {
                Out.err("warning: cannot check overlap with the \(set.role) set \(set.path): the file is gone or changed since `correct`")
                continue
            }
            let o = try PromptOverlap.compare(prompts, with: set.path, role: set.role, limit: set.limit)
            if let w = o.warning { Out.err(w) }
            overlaps.append(o)
        }
        Out.err("evaluate: \(prompts.count) prompts from \(promptsPath)\(try args.ifGiven(Options.split).map { " (\($0))" } ?? ""); "
                + "\(s.samplesRun) samples × \(s.sampleTokens) tokens, greedy \(s.greedyRunTokens) tokens; scorer: \(scorer?.name ?? EvaluationReport.noScorer)")
        Out.err("metrics: \(EvaluationReport.metricsText(s))")

        var pplTokens: [Int]? = nil
        var firstError: Error? = nil
        func evaluate(_ label: String, _ path: String, _ count: Int?) throws -> ModelEvaluation {
            let m = try ModelLoader.load(path, needTokenizer: true)
            for f in m.inputFiles { try OutputGuard.check(output: out, inputs: [f]); try OutputGuard.check(output: html, inputs: [f]) }
            if let t = s.perplexityText, pplTokens == nil {
                let tok = try m.requireTokenizer()
                pplTokens = try tok.encode(joinRawTextRows(try Common.readText(t)))
            }
            let r = try BehaviourEvaluation.run(m, label: label, count: count, prompts: prompts, settings: s, scorer: scorer,
                                                perplexityTokens: pplTokens, progress: !quiet)
            Out.err(summary(r, s))
            if r.partial, firstError == nil { firstError = EvaluateError.partial(label: label, reason: r.scorerError ?? "") }
            return r
        }
        if let shard {
            let results = try points[mine].map { try evaluate($0.label, $0.model, $0.count) }
            let report = try EvaluationReport(prompts: promptsPath, promptCount: prompts.count, split: try args.ifGiven(Options.split),
                                              sweep: sweepPath, correctionMethod: method, overlaps: overlaps, settings: s, scorer: scorer,
                                              baseline: nil, models: results)
            let part = try EvaluationPart(shard: shard, points: points, hasBaseline: baselinePath != nil, report: report)
            try AtomicFile.write(try part.json(), to: out)
            Out.print("part: \(out) (shard \(shard): points \(part.pointRange) of 0-\(points.count - 1))")
            if let firstError { throw firstError }
            return
        }
        let baseline = try baselinePath.map { try evaluate("baseline", $0, 0) }
        let models = try targets.map { try evaluate($0.label, $0.path, $0.count) }
        let report = try EvaluationReport(prompts: promptsPath, promptCount: prompts.count, split: try args.ifGiven(Options.split),
                                          sweep: sweepPath, correctionMethod: method, overlaps: overlaps, settings: s, scorer: scorer,
                                          baseline: baseline, models: models)
        try AtomicFile.write(try report.json(), to: out)
        try AtomicFile.write(report.html(), to: html)
        Out.print("report: \(out)")
        Out.print("page: \(html)")
        if let firstError { throw firstError }
    }

    /// The metrics to run: --metric, else all three (without perplexity when --max-windows 0, as before --metric
    /// existed); a usage error names the option that contradicts the list.
    static func metrics(_ args: Args) throws -> [EvaluationMetric] {
        let windows = try args[Options.windows]
        guard let list = try args.ifGiven(Options.metric)?.metrics else {
            return EvaluationMetric.allCases.filter { $0 != .perplexity || windows > 0 }
        }
        if list.contains(.perplexity), windows == 0 {
            throw UsageError(message: "--max-windows 0 turns the perplexity guardrail off, but --metric lists perplexity")
        }
        for (metric, options) in Options.owned where !list.contains(metric) {
            // --max-windows 0 agrees with a list without perplexity.
            for o in options where args.given(o) && !(o.name == Options.windows.name && windows == 0) {
                throw UsageError(message: "--\(o.name) configures the \(metric.rawValue) metric, which --metric \(MetricList(metrics: list).optionText) leaves out")
            }
        }
        return list
    }

    static func summary(_ r: ModelEvaluation, _ s: EvaluationSettings) -> String {
        var parts: [String] = []
        if s.samplesRun > 0 { parts += ["exp. max toxicity \(r.expectedMaxToxicity.text)", "toxicity prob. \(r.toxicityProbability.text)"] }
        if s.measures(.toxicity) { parts.append("greedy toxicity \(r.greedyToxicity.text)") }
        if s.measures(.repetition) { parts.append("RUR \(r.rur.text)") }
        if let p = r.perplexity { parts.append(String(format: "ppl %.3f", p.perplexity)) }
        return "\(r.label): " + parts.joined(separator: ", ") + String(format: " (%d tokens generated, %.1f s)", r.generatedTokens, r.seconds)
    }
}

enum EvaluateError: LocalizedError {
    case partial(label: String, reason: String)
    var errorDescription: String? {
        switch self {
        case .partial(let l, let r): return "\(l): toxicity is partial (report written, marked partial): \(r)"
        }
    }
}
