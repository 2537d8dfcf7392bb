import Circuits
import Foundation
import Transformer

// MARK: - task-eval

enum TaskEvalCommand: Command {
    enum Options {
        static let prompts = Option<String>.path("prompts", "file", help: "Task file: .jsonl (text, answer, distractor?, corrupted?) or EAP-IG/MIB .csv")
        static let referenceModel = Option<String>.path("reference-model", "path",
                                                   help: "Full model for KL(P_reference ‖ P_model) at the last position (e.g. the unpruned original)")
        static let ablate = Option<Granularity>("ablate", "granularity", choices: Granularity.allCases,
                                                help: "Also evaluate with everything at this granularity ablated: the m(∅) end of faithfulness")
        static let ablation = Option<AblationKind>("ablation", "kind", default: .zero, choices: AblationKind.allCases,
                                                   help: "zero; mean over these prompts' tokens; patch from their corrupted prompts")
    }
    static let spec = CommandSpec(
        name: "task-eval", abstract: "Evaluate a model on a task file: logit difference, accuracy, top-1, probability difference, KL.",
        usage: "workbench task-eval --model <path> --prompts <file.jsonl|file.csv> [--reference-model <path>] [--ablate weights|neurons|heads --ablation zero|mean|patch] [--json]",
        options: ModelOptions.all + [Options.prompts, Options.referenceModel, Options.ablate, Options.ablation, OutputOptions.json],
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
        let promptsPath = try args[Options.prompts]
        let ablate = try args.ifGiven(Options.ablate)
        let ablation = try args[Options.ablation]
        if ablate == nil, args.given(Options.ablation) { throw UsageError(message: "--ablation needs --ablate") }
        if let ablate, ablate == .weights, ablation != .zero {
            throw UsageError(message: AblationError.unsupported(.weights, ablation).localizedDescription)
        }
        let set = try TaskSet.load(promptsPath)
        let m = try Common.load(args)
        let items = try set.tokenize(tokenizer: m.tokenizer, model: m.model)
        var reference: [Float]? = nil
        var refPath: String? = nil
        if let rp = try args.ifGiven(Options.referenceModel) {
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
        if args[OutputOptions.json] {
            var j = TaskEvalReport.json(s, prompts: promptsPath, model: try args[ModelOptions.model], reference: refPath, seconds: seconds)
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
