import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - tasks ioi / tasks greater-than / task-eval

enum TaskCommandSupport {
    static func canonical(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }

    /// --out must be a new or regular file and none of the inputs.
    static func checkOutput(_ out: String, inputs: [String]) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDir) {
            let attrs = try? FileManager.default.attributesOfItem(atPath: out)
            guard !isDir.boolValue, (attrs?[.type] as? FileAttributeType) == .typeRegular else {
                throw UsageError(message: "'--out \(out)' exists and is not a regular file")
            }
        }
        for i in inputs where canonical(i) == canonical(out) { throw AttributionError.outputIsInput(path: out) }
    }

    /// The IOI asset: --templates-file, else $WORKBENCH_ASSETS, else ../shared/assets or shared/assets from here.
    static func ioiAssetPath(_ args: Args) -> String {
        if let p = args.string("templates-file") { return p }
        let rel = "eval/ioi/ioi_templates.json"
        if let env = ProcessInfo.processInfo.environment["WORKBENCH_ASSETS"], !env.isEmpty { return env + "/" + rel }
        for base in ["../shared/assets", "shared/assets"] where FileManager.default.fileExists(atPath: base + "/" + rel) {
            return base + "/" + rel
        }
        return "../shared/assets/" + rel
    }

    static let n = OptionSpec(name: "n", value: "n", help: "Number of prompts (default 128).")
    static let seed = OptionSpec(name: "seed", value: "s", help: "Seed 0..<\(PromptPartition.count) (default 0); different seeds give disjoint sets.")
    static let out = OptionSpec(name: "out", value: "file.jsonl", help: "Output task file (written atomically).")
}

enum TasksIOICommand: Command {
    static let spec = CommandSpec(
        name: "tasks ioi", abstract: "Generate indirect-object-identification prompts (ACDC templates) as a task file.",
        usage: "workbench tasks ioi --model <path> --out <file.jsonl> [--n <n>] [--seed <s>] [--templates <list>] [--templates-file <json>]",
        options: [Common.model, TaskCommandSupport.n, TaskCommandSupport.seed,
                  OptionSpec(name: "templates", value: "list", help: "Template selection (default BABA,ABBA), e.g. BABA:0-9 or BABA,ABBA,-ABBA:14."),
                  OptionSpec(name: "templates-file", value: "json", help: "ACDC template asset (default $WORKBENCH_ASSETS/eval/ioi/ioi_templates.json)."),
                  TaskCommandSupport.out],
        discussion: """
        Each line: task, template (FAMILY:INDEX), text (ends before the IO name), answer (" IO"), distractor (" S"),
        answer_id, distractor_id, corrupted (ACDC's ABC counterfactual: the three names replaced by three others, same
        token count), target_id/contrast_id (so 'attribute --prompts' explains logit(IO) − logit(S)), io, s, place,
        object, corrupted_names. Only names that are one token with a leading space in this model's tokenizer are used.
        Seeds own disjoint hash partitions of the prompt space, so sets from different seeds never share a prompt.
        """)

    static func run(_ args: Args) throws {
        let out = try args.required("out")
        let n = try args.int("n", default: 128, min: 1)!
        let seed = try args.int("seed", default: 0, min: 0)!
        guard seed < PromptPartition.count else { throw UsageError(message: TaskError.seedOutOfRange(seed: seed, partitions: PromptPartition.count).localizedDescription) }
        let assetPath = TaskCommandSupport.ioiAssetPath(args)
        try TaskCommandSupport.checkOutput(out, inputs: [try args.required("model"), assetPath])
        let assets = try IOIAssets.load(assetPath)
        let templates: [IOITemplate]
        do { templates = try assets.select(args.string("templates") ?? IOIAssets.defaultSelection) } catch let e as TaskError {
            throw UsageError(message: e.localizedDescription)
        }
        let m = try Common.load(args)
        let gen = try IOIGenerator.generate(assets: assets, templates: templates, tokenizer: try m.requireTokenizer(), n: n, seed: seed)
        try AtomicFile.write(TaskRecord.jsonl(gen.prompts.map(\.record)), to: out)
        Out.err("names: \(gen.keptNames.count) of \(assets.names.count) are single tokens with a leading space; dropped \(gen.droppedNames.count)"
                + (gen.droppedNames.isEmpty ? "" : ": " + gen.droppedNames.joined(separator: ", ")))
        Out.err("templates: \(templates.count) (\(templates.first!.id) … \(templates.last!.id)); prompt space \(gen.spaceSize), seed \(seed) owns ≈ 1/\(PromptPartition.count)")
        Out.print("wrote \(out): \(gen.prompts.count) prompts")
    }
}

enum TasksGreaterThanCommand: Command {
    static let spec = CommandSpec(
        name: "tasks greater-than", abstract: "Generate greater-than (years) prompts as a task file.",
        usage: "workbench tasks greater-than --model <path> --out <file.jsonl> [--n <n>] [--seed <s>]",
        options: [Common.model, TaskCommandSupport.n, TaskCommandSupport.seed, TaskCommandSupport.out],
        discussion: """
        "The <noun> lasted from the year XXYY to the year XX" (XX 11…17, YY 02…98). answer_ids / distractor_ids are the
        tokens that start a year above / below XXYY in this tokenizer (a token starting both, e.g. the start's own tens
        digit under per-digit splitting, is in neither); metric: p(answers) − p(distractors). corrupted uses XX01.
        """)

    static func run(_ args: Args) throws {
        let out = try args.required("out")
        let n = try args.int("n", default: 128, min: 1)!
        let seed = try args.int("seed", default: 0, min: 0)!
        guard seed < PromptPartition.count else { throw UsageError(message: TaskError.seedOutOfRange(seed: seed, partitions: PromptPartition.count).localizedDescription) }
        try TaskCommandSupport.checkOutput(out, inputs: [try args.required("model")])
        let m = try Common.load(args)
        let gen = try GreaterThanGenerator.generate(tokenizer: try m.requireTokenizer(), n: n, seed: seed)
        try AtomicFile.write(TaskRecord.jsonl(gen.prompts.map(\.record)), to: out)
        if gen.skippedKeys > 0 {
            Out.err("skipped \(gen.skippedKeys) drawn prompts whose year sets are empty or whose corrupted prompt re-tokenizes in this tokenizer")
        }
        Out.print("wrote \(out): \(gen.prompts.count) prompts")
    }
}

enum TaskEvalCommand: Command {
    static let spec = CommandSpec(
        name: "task-eval", abstract: "Evaluate a model on a task file: logit difference, accuracy, top-1, probability difference, KL.",
        usage: "workbench task-eval --model <path> --prompts <file.jsonl|file.csv> [--reference-model <path>] [--ablate weights|neurons|heads --ablation zero|mean|patch] [--json]",
        options: [Common.model,
                  OptionSpec(name: "prompts", value: "file", help: "Task file: .jsonl (text, answer, distractor?, corrupted?) or EAP-IG/MIB .csv."),
                  OptionSpec(name: "reference-model", value: "path", help: "Full model for KL(P_reference ‖ P_model) at the last position (e.g. the unpruned original)."),
                  OptionSpec(name: "ablate", value: "granularity", help: "Also evaluate with every weight/neuron/head ablated (the m(∅) end of faithfulness)."),
                  OptionSpec(name: "ablation", value: "kind", help: "zero (default), mean (over these prompts' tokens) or patch (from their corrupted prompts)."),
                  OptionSpec(name: "json", value: nil, help: "Print one JSON object instead of the table.")],
        discussion: """
        Metrics at the last prompt position: logit difference LSE(answers) − LSE(distractors) (= logit(IO) − logit(S) for IOI),
        accuracy (answer above distractor), top-1 (argmax is an answer), probability difference p(answers) − p(distractors)
        (softmax over the whole vocabulary), and with --reference-model KL summed over the vocabulary plus MIB's mean over it
        (= KL / |V|). Corrupted prompts, when every prompt has one, are evaluated too. All prompts run in packed forwards.
        --ablate G: the model with everything at granularity G removed, KL measured from the full model; zero sets
        weights / neuron outputs / head outputs to 0, mean replaces neuron and head outputs by their mean over every
        token of these prompts, patch by their value on the corrupted prompt at the same position.
        """)

    static func run(_ args: Args) throws {
        let promptsPath = try args.required("prompts")
        let ablate: Granularity? = try args.string("ablate").map { _ in try args.choice("ablate", default: Granularity.heads) }
        let ablation: AblationKind = try args.choice("ablation", default: .zero)
        if ablate == nil, args.string("ablation") != nil { throw UsageError(message: "--ablation needs --ablate") }
        if let ablate, ablate == .weights, ablation != .zero {
            throw UsageError(message: AblationError.unsupported(.weights, ablation).localizedDescription)
        }
        let set = try TaskSet.load(promptsPath)
        let m = try Common.load(args)
        let items = try set.tokenize(tokenizer: m.tokenizer, model: m.model.config)
        var reference: [Float]? = nil
        var refPath: String? = nil
        if let rp = args.string("reference-model") {
            let r = try ModelLoader.load(rp, needTokenizer: false)
            guard r.model.config.vocabSize == m.model.config.vocabSize else {
                throw UsageError(message: "--reference-model has vocabulary \(r.model.config.vocabSize), the model \(m.model.config.vocabSize)")
            }
            reference = PromptMetrics.logSoftmaxRows(TaskEvaluator.lastLogits(r.model, items.map(\.tokens)), vocab: r.model.config.vocabSize)
            refPath = rp
        }
        let t0 = Date()
        let e = TaskEvaluator.evaluate(m.model, items, reference: reference)
        let seconds = Date().timeIntervalSince(t0)
        let s = TaskSummary(e)
        var ablated: (TaskSummary, String)? = nil
        if let ablate {
            let own = PromptMetrics.logSoftmaxRows(TaskEvaluator.lastLogits(m.model, items.map(\.tokens)), vocab: m.model.config.vocabSize)
            let means = ablation == .mean ? MeanActivations.measure(m.model, items.map(\.tokens)) : nil
            let patch = ablation == .patch ? try PatchSource.capture(m.model, items) : nil
            let ab = Ablator(model: m.model)
            try ab.apply(.uniform(ablate, kept: false, model: m.model), ablation: ablation, means: means, patch: patch)
            ablated = (TaskSummary(TaskEvaluator.evaluate(m.model, items, reference: own, corrupted: false)),
                       "every \(ablate.rawValue.dropLast()) \(ablation.rawValue)-ablated")
            ab.restore()
        }
        if args.flag("json") {
            var j = TaskEvalReport.json(s, prompts: promptsPath, model: try args.required("model"), reference: refPath, seconds: seconds)
            if let (a, label) = ablated {
                j["ablated"] = TaskEvalReport.dict(a.clean).merging(["what": label, "kl_reference_model": "the unablated model"]) { x, _ in x }
            }
            Out.print(Out.json(j))
        } else {
            Out.write(TaskEvalReport.text(s, prompts: promptsPath, reference: refPath, seconds: seconds))
            if let (a, label) = ablated {
                Out.write(TaskEvalReport.line("ablated", a.clean) + "  (\(label); KL from the unablated model)\n")
            }
        }
    }
}

enum TaskEvalReport {
    static func dict(_ m: MetricSummary) -> [String: Any] {
        var d: [String: Any] = ["n": m.count, "top1": m.top1, "log_prob_answer": m.logProbAnswer]
        if let v = m.logitDiff { d["logit_diff"] = v }
        if let v = m.accuracy { d["accuracy"] = v }
        if let v = m.probDiff { d["prob_diff"] = v }
        if let v = m.kl { d["kl_sum_over_vocab"] = v }
        if let v = m.klPerVocab { d["kl_mean_over_vocab_mib"] = v }
        if let v = m.headlineSEM { d["headline_sem"] = v }
        return d
    }

    static func json(_ s: TaskSummary, prompts: String, model: String, reference: String?, seconds: Double) -> [String: Any] {
        var d: [String: Any] = ["prompts": prompts, "model": model, "headline_metric": s.headline.rawValue,
                                "clean": dict(s.clean), "eval_seconds": seconds,
                                "by_family": Dictionary(uniqueKeysWithValues: s.byFamily.map { ($0.family, dict($0.summary)) }),
                                "by_template": Dictionary(uniqueKeysWithValues: s.byTemplate.map { ($0.template, dict($0.summary)) })]
        if let c = s.corrupted { d["corrupted"] = dict(c) }
        if let h = s.headlineValue { d["headline"] = h }
        if let h = s.headlineValue, let c = s.corruptedHeadlineValue { d["clean_minus_corrupted"] = h - c }
        if let reference { d["kl_reference_model"] = reference }
        return d
    }

    static func line(_ label: String, _ m: MetricSummary) -> String {
        var parts: [String] = []
        if let v = m.logitDiff { parts.append(String(format: "logit diff %.3f", v)) }
        if let v = m.accuracy { parts.append(String(format: "acc %.1f %%", 100 * v)) }
        parts.append(String(format: "top-1 %.1f %%", 100 * m.top1))
        if let v = m.probDiff { parts.append(String(format: "prob diff %.4f", v)) }
        if m.logitDiff == nil { parts.append(String(format: "log p(answer) %.3f", m.logProbAnswer)) }
        if let v = m.kl, let w = m.klPerVocab { parts.append(String(format: "KL %.4f (MIB %.3e)", v, w)) }
        return label.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "n=%-5d ", m.count) + parts.joined(separator: "  ") + "\n"
    }

    static func text(_ s: TaskSummary, prompts: String, reference: String?, seconds: Double) -> String {
        var o = "prompts: \(prompts) (\(s.clean.count)); headline metric: \(s.headline.rawValue)"
        if let h = s.headlineValue { o += String(format: " = %.4f", h) + (s.clean.headlineSEM.map { String(format: " ± %.4f (SEM)", $0) } ?? "") }
        o += String(format: "; evaluated in %.2f s\n", seconds)
        o += line("clean", s.clean)
        if let c = s.corrupted { o += line("corrupted", c) }
        if let h = s.headlineValue, let c = s.corruptedHeadlineValue { o += String(format: "clean − corrupted: %.4f\n", h - c) }
        if s.byFamily.count > 1 { o += "by family:\n"; for f in s.byFamily { o += line("  " + f.family, f.summary) } }
        if s.byTemplate.count > 1 { o += "by template:\n"; for t in s.byTemplate { o += line("  " + t.template, t.summary) } }
        o += reference.map { "KL: KL(P_\($0) ‖ P_model) at the last position, summed over the vocabulary; MIB's value is that mean over the vocabulary\n" }
            ?? "KL: not computed (give --reference-model to compare against a full model)\n"
        return o
    }
}
