import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - tasks ioi / tasks greater-than

enum TaskCommandSupport {
    /// --out must be new, a regular file, or a device/FIFO to write through (the shared rule:
    /// `OutputDestination`), and none of the inputs (`OutputGuard`; called again with the model's files).
    static func checkOutput(_ out: String, inputs: [String]) throws {
        do { _ = try OutputDestination.of(out) } catch let e as OutputError {
            throw UsageError(message: "'--out \(QuotedName.safe(out))' exists and is not a regular file, device or FIFO (\(e.localizedDescription))")
        }
        try OutputGuard.check(output: out, inputs: inputs)
    }

    /// The IOI asset: --templates-file, else $WORKBENCH_ASSETS, else ../shared/assets or shared/assets from here.
    static func ioiAssetPath(_ args: Args) throws -> String {
        if let p = try args.ifGiven(TasksIOICommand.Options.templatesFile) { return p }
        return assetPath("eval/ioi/ioi_templates.json")
    }

    /// A shared asset: $WORKBENCH_ASSETS/rel, else ../shared/assets/rel or shared/assets/rel from here.
    static func assetPath(_ rel: String) -> String {
        if let env = ProcessInfo.processInfo.environment["WORKBENCH_ASSETS"], !env.isEmpty { return env + "/" + rel }
        for base in ["../shared/assets", "shared/assets"] where FileManager.default.fileExists(atPath: base + "/" + rel) {
            return base + "/" + rel
        }
        return "../shared/assets/" + rel
    }

    /// Options every `tasks` kind takes.
    enum Options {
        static let n = Option<Int>("n", "n", default: 128, min: 1, help: "Number of prompts")
        static let seed = Option<Int>("seed", "s", default: 0, help: "Seed; different seeds give disjoint sets") { seed in
            (0..<PromptPartition.count).contains(seed) ? nil
                : "must be in 0..<\(PromptPartition.count) (each seed owns one of \(PromptPartition.count) hash partitions of the prompt space)"
        }
        static let out = Option<String>.path("out", "file.jsonl", help: "Output task file (written atomically)")
    }
}

enum TasksIOICommand: Command {
    enum Options {
        static let templates = Option<String>("templates", "list", default: IOIAssets.defaultSelection,
                                              help: "Template selection, e.g. BABA:0-9 or BABA,ABBA,-ABBA:14")
        static let templatesFile = Option<String>.path("templates-file", "json", defaultText: "$WORKBENCH_ASSETS/eval/ioi/ioi_templates.json",
                                                  help: "ACDC template asset")
    }
    static let spec = CommandSpec(
        name: "tasks ioi", abstract: "Generate indirect-object-identification prompts (ACDC templates) as a task file.",
        usage: "workbench tasks ioi --model <path> --out <file.jsonl> [--n <n>] [--seed <s>] [--templates <list>] [--templates-file <json>]",
        options: ModelOptions.all + [TaskCommandSupport.Options.n, TaskCommandSupport.Options.seed, Options.templates,
                                     Options.templatesFile, TaskCommandSupport.Options.out],
        discussion: """
        Each line: task, template (FAMILY:INDEX), text (ends before the IO name), answer (" IO"), distractor (" S"),
        answer_id, distractor_id, corrupted (ACDC's ABC counterfactual: the three names replaced by three others, same
        token count), target_id/contrast_id (so 'attribute --prompts' explains logit(IO) − logit(S)), io, s, place,
        object, corrupted_names. Only names that are one token with a leading space in this model's tokenizer are used.
        Seeds own disjoint hash partitions of the prompt space, so sets from different seeds never share a prompt.
        """)

    static func run(_ args: Args) throws {
        let out = try args[TaskCommandSupport.Options.out]
        let n = try args[TaskCommandSupport.Options.n]
        let seed = try args[TaskCommandSupport.Options.seed]
        let assetPath = try TaskCommandSupport.ioiAssetPath(args)
        try TaskCommandSupport.checkOutput(out, inputs: [try args[ModelOptions.model], assetPath])
        let assets = try IOIAssets.load(assetPath)
        let templates: [IOITemplate]
        do { templates = try assets.select(args[Options.templates]) } catch let e as TaskError {
            throw UsageError(message: e.localizedDescription)
        }
        let m = try Common.load(args)
        try OutputGuard.check(output: out, inputs: m.inputFiles)
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
        options: ModelOptions.all + [TaskCommandSupport.Options.n, TaskCommandSupport.Options.seed, TaskCommandSupport.Options.out],
        discussion: """
        "The <noun> lasted from the year XXYY to the year XX" (XX 11…17, YY 02…98). answer_ids / distractor_ids are the
        tokens that start a year above / below XXYY in this tokenizer (a token starting both, e.g. the start's own tens
        digit under per-digit splitting, is in neither); metric: p(answers) − p(distractors). corrupted uses XX01.
        """)

    static func run(_ args: Args) throws {
        let out = try args[TaskCommandSupport.Options.out]
        let n = try args[TaskCommandSupport.Options.n]
        let seed = try args[TaskCommandSupport.Options.seed]
        try TaskCommandSupport.checkOutput(out, inputs: [try args[ModelOptions.model]])
        let m = try Common.load(args)
        try OutputGuard.check(output: out, inputs: m.inputFiles)
        let gen = try GreaterThanGenerator.generate(tokenizer: try m.requireTokenizer(), n: n, seed: seed)
        try AtomicFile.write(TaskRecord.jsonl(gen.prompts.map(\.record)), to: out)
        if gen.skippedKeys > 0 {
            Out.err("skipped \(gen.skippedKeys) drawn prompts whose year sets are empty or whose corrupted prompt re-tokenizes in this tokenizer")
        }
        Out.print("wrote \(out): \(gen.prompts.count) prompts")
    }
}
