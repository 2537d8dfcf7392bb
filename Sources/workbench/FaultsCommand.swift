import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - faults

enum FaultsCommand: Command {
    enum Options {
        static let ber = Option<String>("ber", "list", default: "1e-7,1e-6,1e-5,1e-4", help: "Bit error rates, comma-separated, each in (0, 1)")
        static let trials = Option<Int>("trials", "n", default: 10, min: 1, help: "Trials per BER and criterion")
        static let seed = Option<Int>("seed", "s", default: 0, min: 0, help: "Seed of the flip draws (a trial is a function of seed, trial, BER) and of the random criterion")
        static let protect = Option<String>("protect", "scores.safetensors[,…]", help: "Score files (workbench attribute output, comma-separated): |score| ranks the weights to protect; each file is one criterion, named by its method (lrp, gradient, wanda)")
        static let fraction = Option<Double>("protect-fraction", "f", default: 0.01, range: 0...1,
                                             help: "Fraction of the stored bits stored three times (overhead 2f), the same for every criterion")
        static let criteria = Option<String>("criteria", "list", defaultText: "none,scores,magnitude,random (scores only with --protect)",
                                             help: "Protection criteria to compare: none, scores (one per --protect file), magnitude, random")
        static let storage = Option<String>("storage", "type", default: "f32", choices: ["f32", "f16", "bf16", "q8_0", "q4_1", "q4_0"],
                                            help: "How the decoder linear weights are stored (ggml encoding); every stored bit can flip")
        static let metric = Option<String>("metric", "name", default: "perplexity", choices: ["perplexity", "task"],
                                           help: "perplexity: WikiText-2 windows; task: accuracy on --prompts")
        static let text = Option<String>("text", "file", defaultText: "$WORKBENCH_ASSETS/eval/wikitext-2-raw/wiki.test.raw", help: "Raw text for --metric perplexity")
        static let seqlen = Option<Int>("seqlen", "n", default: 512, min: 2, help: "Window length for --metric perplexity")
        static let windows = Option<Int>("windows", "k", default: 4, min: 1, help: "Windows for --metric perplexity")
        static let prompts = Option<String>("prompts", "file", help: "Task file for --metric task (.jsonl or EAP-IG/MIB .csv)")
        static let floor = Option<Double>("floor", "a", default: 0.5, range: 0...1, help: "--metric task: a trial fails when accuracy falls below this")
        static let out = Option<String>("out", "report.json", help: "Output: the JSON report; the HTML page goes beside it (.html)")
        static let render = Option<String>.path("render", "report.json", help: "Only rewrite the HTML page of an existing JSON report (beside it, .html) with this binary's page; no model, no trials")
    }
    static let spec = CommandSpec(
        name: "faults", abstract: "Random bit flips in the stored weights, with relevance-selected triple modular redundancy.",
        usage: "workbench faults --model <path> [--ber 1e-7,1e-6,1e-5,1e-4] [--trials <n>] [--seed <s>] [--protect <scores>[,<scores>…]] [--protect-fraction 0.01] [--criteria <list>] [--storage f32|f16|bf16|q8_0|q4_1|q4_0] [--metric perplexity|task] [--text <file>] [--windows 4] [--seqlen 512] [--prompts <task>] [--floor 0.5] --out <report.json>  |  workbench faults --render <report.json>",
        options: ModelOptions.all + [Options.ber, Options.trials, Options.seed, Options.protect, Options.fraction, Options.criteria, Options.storage,
                                     Options.metric, Options.text, Options.seqlen, Options.windows, Options.prompts, Options.floor, Options.out, Options.render],
        discussion: """
        The decoder linear weights are encoded in --storage (values and block scales) and the model set to what is stored.
        Each trial flips every stored bit independently with probability BER (geometric skips, seeded per trial), evaluates,
        and restores the weights bit for bit. Protected bits are stored three times with independent flips and read by a
        bitwise majority vote. Criteria rank weights by |score| (--protect), |W| or a seeded random score and fill the
        same bit budget; a protected weight's block scale is protected with it. Failed trial: perplexity > 2 × dense (or
        not finite), accuracy < --floor. Report: median, 10th/90th percentile, failed fraction, reliability gain over none.
        --render re-draws the page of a finished run from its JSON report (everything the page shows is in it), e.g. after
        the page itself changed; it takes no other option.
        """)

    static func run(_ args: Args) throws {
        if let report = try args.ifGiven(Options.render) { return try render(report, args) }
        let modelPath = try args[ModelOptions.model], out = try args[Options.out]
        let html = out.hasSuffix(".json") ? String(out.dropLast(5)) + ".html" : out + ".html"
        var bers: [Double] = []
        for p in try args[Options.ber].split(separator: ",", omittingEmptySubsequences: false) {
            let s = p.trimmingCharacters(in: .whitespaces)
            guard let v = Double(s) else { throw UsageError(message: "--ber: '\(QuotedName.safe(s))' is not a number") }
            do { try QuantizationError.checkBER(v) } catch let e as QuantizationError { throw UsageError(message: e.localizedDescription) }
            bers.append(v)
        }
        let fraction = try args[Options.fraction], trials = try args[Options.trials], seed = UInt64(try args[Options.seed])
        let scorePaths = try args.ifGiven(Options.protect).map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        if scorePaths.contains(where: \.isEmpty) { throw UsageError(message: "--protect: an empty file name in the list") }
        if Set(scorePaths).count != scorePaths.count { throw UsageError(message: "--protect names the same file twice") }
        let scorePath = scorePaths.first
        let criteriaText = try args.ifGiven(Options.criteria) ?? (scorePath == nil ? "none,magnitude,random" : "none,scores,magnitude,random")
        let names = criteriaText.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for n in names where !["none", "scores", "magnitude", "random"].contains(n) {
            throw UsageError(message: "--criteria: '\(QuotedName.safe(n))' is not one of none, scores, magnitude, random")
        }
        guard !names.isEmpty, Set(names).count == names.count else { throw UsageError(message: "--criteria needs distinct criteria") }
        if names.contains("scores"), scorePath == nil { throw UsageError(message: "--criteria scores needs --protect <scores.safetensors>") }
        let storageType = try QuantizationError.parseTypes(try args[Options.storage], flag: "--storage")[0]
        let metricName = try args[Options.metric]
        let promptsPath = try args.ifGiven(Options.prompts)
        if metricName == "task", promptsPath == nil { throw UsageError(message: "--metric task needs --prompts <task file>") }
        let textPath = metricName == "perplexity" ? try args.ifGiven(Options.text) ?? TaskCommandSupport.assetPath("eval/wikitext-2-raw/wiki.test.raw") : nil

        let inputs = [modelPath] + scorePaths + [promptsPath, textPath].compactMap { $0 }
        try TaskCommandSupport.checkOutput(out, inputs: inputs)
        try TaskCommandSupport.checkOutput(html, inputs: inputs + [out])
        let scoreMaps = try scorePaths.map { try ScoreMap.load(path: $0) }
        let m = try Common.load(args)
        for f in m.inputFiles { try OutputGuard.check(output: out, inputs: [f]); try OutputGuard.check(output: html, inputs: [f]) }
        for s in scoreMaps { try s.validate(against: m.model) }
        // One criterion per score file, named by its method; a repeated method gets its file's position (lrp, lrp#2).
        var scoreCriteria: [(label: String, map: ScoreMap)] = []
        for s in scoreMaps {
            let base = s.metadata["method"] ?? "scores"
            let label = scoreCriteria.contains { $0.label == base } ? "\(base)#\(scoreCriteria.count + 1)" : base
            scoreCriteria.append((label, s))
        }

        let metric: FaultMetric
        var tokensPerTrial = 0          // for the progress line's tok/s
        if let textPath {
            let tok = try m.requireTokenizer()
            let ids = try tok.encode(joinRawTextRows(try Common.readText(textPath)))
            let seqlen = try args[Options.seqlen], windows = try args[Options.windows]
            guard ids.count >= seqlen * windows else {
                throw UsageError(message: "--text \(QuotedName.safe(textPath)) has \(ids.count) tokens, fewer than --windows \(windows) × --seqlen \(seqlen)")
            }
            metric = .perplexity(tokens: ids, seqlen: seqlen, windows: windows, text: textPath)
            tokensPerTrial = seqlen * windows
        } else {
            let items = try TaskSet.load(promptsPath!).tokenize(tokenizer: m.tokenizer, model: m.model)
            metric = .task(items: items, floor: try args[Options.floor], prompts: promptsPath!)
            tokensPerTrial = items.reduce(0) { $0 + $1.tokens.count }
        }

        let t0 = Date()
        let storage = try FaultStorage(model: m.model, type: storageType)
        var setups: [FaultCriterionSetup] = []
        for n in names {
            let expanded: [(ProtectionCriterion, ScoreMap?)] = n == "none" ? [(.none, nil)] : n == "magnitude" ? [(.magnitude, nil)]
                : n == "random" ? [(.random, nil)] : scoreCriteria.map { (.scores(label: $0.label), $0.map) }
            for (c, map) in expanded {
                let imp = try ProtectionSelection.importance(c, storage: storage, scores: map, seed: seed)
                setups.append(FaultCriterionSetup(c, try ProtectionSelection.select(storage, importance: imp, fraction: fraction)))
            }
        }
        Out.err(String(format: "faults: %@ storage, %d weights, %d bits; %@ protected bits per criterion; set up in %.1f s",
                       storageType.name, storage.totalWeights, storage.totalBits,
                       setups.map { "\($0.criterion.name) \($0.protected.count)" }.joined(separator: ", "), Date().timeIntervalSince(t0)))
        let bar = ProgressLine("faults", total: bers.count * trials * setups.count, unit: "trials")
        let report = try FaultCampaign.run(model: m.model, storage: storage, criteria: setups, bers: bers, trials: trials, seed: seed,
                                           fraction: fraction, metric: metric, modelPath: modelPath) { done, _ in bar.update(done, tokens: done * tokensPerTrial) }
        try AtomicFile.write(try report.json(), to: out)
        try AtomicFile.write(report.html(), to: html)
        Out.print(String(format: "dense %@: %.4f", report.metric, report.dense))
        for r in report.rows {
            // One line per row (scripts/experiments/faults.sh builds its table from these lines with awk).
            func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "n/a" }
            Out.print(String(format: "BER %g %@: median %@, p10 %@, p90 %@, failed %.0f %%, gain %@ pp, protected %d weights, overhead %.2f %%, flips %.1f, wrong-read %.1f",
                             r.ber, r.criterion, f(r.median), f(r.p10), f(r.p90), 100 * r.failedFraction,
                             r.reliabilityGain.map { String(format: "%+.0f", 100 * $0) } ?? "n/a", r.protectedWeights, 100 * r.overhead,
                             r.meanPrimaryFlips, r.meanReadFlips))
        }
        Out.print("report: \(out)")
        Out.print("page: \(html)")
    }

    /// The page of `path` (a JSON report this command wrote), written beside it as `faults` names it.
    static func render(_ path: String, _ args: Args) throws {
        if let o = spec.options.first(where: { $0.name != Options.render.name && args.given($0) }) {
            throw UsageError(message: "--render takes no other option (--\(o.name) given)")
        }
        guard path.hasSuffix(".json") else { throw UsageError(message: "--render: '\(QuotedName.safe(path))' is not a .json report") }
        let html = String(path.dropLast(5)) + ".html"
        try TaskCommandSupport.checkOutput(html, inputs: [path])
        let report: FaultReport
        do { report = try JSONDecoder().decode(FaultReport.self, from: try readInputFile(path)) } catch let e as DecodingError {
            throw UsageError(message: "--render \(QuotedName.safe(path)) is not a report written by `workbench faults` (\(e.localizedDescription))")
        }
        try AtomicFile.write(report.html(), to: html)
        Out.print("page: \(html)")
    }
}
