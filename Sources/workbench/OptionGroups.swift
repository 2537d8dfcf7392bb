import Circuits
import Tokenize
import Foundation
import Transformer

// MARK: - Option groups shared between commands
//
// Like swift-argument-parser's `@OptionGroup`: a set of options declared once
// and listed by every command that takes them, so `attribute` and `prune`
// cannot disagree about what `--seqlen` means.

/// The checkpoint every command reads.
enum ModelOptions {
    static let model = Option<String>.path("model", "path", help: "HF directory, .gguf file or llama2.c .bin")
    static let all: [any CLIOption] = [model]
}

/// Calibration data (`attribute`, `prune --method`): a prompt file or windows of a corpus.
enum CalibrationOptions {
    static let prompts = Option<String>.path("prompts", "file", help: "Prompt set: .txt (one per line) or .jsonl (fields: see 'workbench attribute --help')")
    static let text = Option<String>.path("text", "file", help: "Corpus to draw random windows from (.jsonl or plain text)")
    static let seqlen = Option<Int>("seqlen", "n", min: 2, help: "Tokens per corpus window (with --text)")
    static let samples = Option<Int>("samples", "k", min: 1, help: "Windows to draw (with --text), or use only the first k prompts")
    static let seed = Option<Int>("seed", "s", defaultText: "0", min: 0, help: "Window sampling seed, with --text")
    static let all: [any CLIOption] = [prompts, text, seqlen, samples, seed]

    /// The calibration these flags describe (nil when the method reads no data); flag errors are usage errors.
    static func calibration(_ args: Args, needsData: Bool, method: String) throws -> Calibration? {
        do {
            return try Calibration.parse(prompts: args.ifGiven(prompts), text: args.ifGiven(text), seqlen: args.ifGiven(seqlen),
                                         samples: args.ifGiven(samples), seed: args.ifGiven(seed).map { UInt64($0) },
                                         needsData: needsData, method: method)
        } catch let e as CalibrationError {
            throw UsageError(message: e.localizedDescription)
        }
    }
}

/// How an explained output is backpropagated (`attribute`, `heatmap`).
enum LRPOptions {
    /// The LRP variant for `attribute --method lrp` (gradient is its own method there).
    static let rule = Option<LRPRules.Variant>("rule", "r", default: .attnLRP, choices: [.attnLRP, .cpLRP], help: "LRP rule, lrp only")
    static let epsilon = Option<Double>("epsilon", "e", default: 0, range: 0...1, help: "LRP-ε on linear layers")
    static let seedValue = Option<SeedValue>("seed-value", "v", default: .logit, choices: [.logit, .one],
                                             help: "Seed the explained output with its logit or one")
    static let maxNewTokens = Option<Int>("max-new-tokens", "n", default: 20, min: 0,
                                          help: "Greedy continuation length for --target continuation")

    /// What the group's flags choose, read once for every command that explains outputs.
    struct Chosen {
        let rules: LRPRules
        let seedValue: SeedValue
        let maxNewTokens: Int
    }
    /// `rule`: the command's own --rule declaration when it offers other variants (heatmap adds gradient).
    static func chosen(_ args: Args, rule: Option<LRPRules.Variant> = LRPOptions.rule) throws -> Chosen {
        Chosen(rules: LRPRules(try args[rule], epsilon: Float(try args[epsilon])), seedValue: try args[seedValue],
               maxNewTokens: try args[maxNewTokens])
    }
}

/// Which toxicity scorer (`toxicity`, `evaluate`).
enum ToxicityOptions {
    static let scorer = Option<String>("scorer", "command", help: "External scorer: /bin/sh -c COMMAND reads {\"text\": …} lines, prints {\"toxicity\": x} lines")
    static let model = Option<String>.path("toxicity-model", "json", defaultText: "$WORKBENCH_ASSETS/" + ProfanityModel.assetPath,
                                      help: "The built-in scorer's model file (alt-profanity-check export)")

    /// The scorer these flags choose: the command, else the built-in model.
    static func scorer(_ args: Args) throws -> any ToxicityScorer {
        if let c = try args.ifGiven(scorer) {
            if args.given(model) { throw UsageError(message: "--scorer and --toxicity-model are mutually exclusive") }
            guard !c.allSatisfy(\.isWhitespace) else { throw UsageError(message: "--scorer is empty") }
            return CommandScorer(command: c)
        }
        return try ProfanityModel(path: try args.ifGiven(model) ?? TaskCommandSupport.assetPath(ProfanityModel.assetPath))
    }
}

/// Output shape shared by reporting commands.
enum OutputOptions {
    static let json = Flag("json", help: "Print one JSON object")
    static let quiet = Flag("quiet", help: "No progress line")
}

/// How much activation memory the LRP pass may keep (`attribute`, `bench --lrp`).
enum MemoryOptions {
    static let budgetMB = Option<Int>("memory-budget-mb", "m", default: AttributionSettings().memoryBudget >> 20, min: 1,
                                      help: "Activations the LRP pass may keep, in MB; beyond it lower blocks are recomputed")
}

// MARK: - Value types of the options

extension AttributionMethod: ChoiceValue {}
extension LRPRules.Variant: ChoiceValue {}
extension SeedValue: ChoiceValue {}
extension PerplexityProtocol: ChoiceValue {}
extension RankMode: ChoiceValue {}
extension WeightFormat: ChoiceValue {}
extension RelevanceAccumulator.Aggregation: ChoiceValue {}
extension CircuitMethod: ChoiceValue {}
extension CircuitScheme: ChoiceValue {}
extension CorrectionMethod: ChoiceValue {}
extension CorrectionGranularity: ChoiceValue {}
extension CorrectionNormalization: ChoiceValue {}
extension GraphMethod: ChoiceValue {}
extension GraphIntervention: ChoiceValue {}
extension SelectionMetric: ChoiceValue {}
extension Granularity: ChoiceValue {}
extension AblationKind: ChoiceValue {}

extension TargetMode: OptionValue {
    static func parse(_ text: String, option: String) throws -> TargetMode {
        do { return try TargetMode.parse(text) } catch { throw UsageError(message: error.localizedDescription) }
    }
    var optionText: String { description }
}

/// `evaluate --metric toxicity,repetition`: a comma-separated set of metrics, kept in `EvaluationMetric` order.
struct MetricList: OptionValue, Equatable {
    var metrics: [EvaluationMetric]
    static let all = MetricList(metrics: EvaluationMetric.allCases)

    static func parse(_ text: String, option: String) throws -> MetricList {
        let names = EvaluationMetric.allCases.map(\.rawValue)
        func invalid(_ why: String) -> UsageError { UsageError(message: "The value '\(QuotedName.safe(text))' is invalid for '--\(option)': \(why)") }
        var seen: [EvaluationMetric] = []
        for word in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard !word.isEmpty else { throw invalid("an empty metric name (expected a comma-separated list of \(Option<String>.list(names)))") }
            guard let m = EvaluationMetric(rawValue: word) else {
                throw invalid("unknown metric '\(QuotedName.safe(word))' (expected \(Option<String>.list(names)))")
            }
            guard !seen.contains(m) else { throw invalid("'\(word)' is listed twice") }
            seen.append(m)
        }
        return MetricList(metrics: EvaluationMetric.allCases.filter(seen.contains))
    }
    var optionText: String { metrics.map(\.rawValue).joined(separator: ",") }
}

extension PruneScheme: OptionValue {
    static func parse(_ text: String, option: String) throws -> PruneScheme {
        do { return try PruneScheme(parsing: text) } catch { throw UsageError(message: error.localizedDescription) }
    }
    var optionText: String { description }
}

/// Splitting work over processes or machines (Circuits/Distributed).
enum DistributedOptions {
    static let shard = Option<Shard>("shard", "K/N", help: "Run only shard K of N (0 ≤ K < N) and write a part for 'workbench merge'")
}

extension Shard: OptionValue {
    static func parse(_ text: String, option: String) throws -> Shard {
        do { return try Shard(parsing: text) } catch {
            throw UsageError(message: "The value '\(QuotedName.safe(text))' is invalid for '--\(option)': "
                + ((error as? DistributedError).flatMap { if case .badShard(_, let r) = $0 { return r } else { return nil } } ?? "\(error)"))
        }
    }
    var optionText: String { description }
}
