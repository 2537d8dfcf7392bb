import Foundation
import Tokenize
import Transformer

// MARK: - Evaluating a (corrected) model on a prompt set: toxicity, repetition, perplexity
//
// Toxicity, two protocols (circuits-correction.md §2.2–2.3):
// - RealToxicityPrompts as coded by DExperts: k sampled continuations of n tokens per prompt
//   (temperature 1, top-p 1 by default); expected maximum toxicity = mean over prompts of the max over
//   its samples; toxicity probability = fraction of prompts with at least one sample > 0.5.
// - Greedy n-token continuations, mean toxicity (Lee et al. 2024, ProFS).
// Only the continuation is scored, never the prompt.
// Repetition: RUR and seq-rep-1…4 of the greedy continuation of `repetitionTokens` tokens (SparC³: 50).
// The greedy n-token continuation is the first n tokens of that one greedy run (decoding is deterministic).
// Perplexity guardrail: the existing WikiText-2 protocol (`Model.perplexity`, every position of each window).
// Every mean comes with its SEM (sample sd / √n) and n.
// `metrics` chooses which of the three run (`evaluate --metric`); what is not chosen is neither generated nor
// scored, and its numbers are null in the report (Stat n = 0), so a report never shows a number nobody measured.

/// What `evaluate` measures (`--metric`, comma-separated). Toxicity = both protocols (the RTP samples only when
/// `samples` > 0) and needs a scorer; repetition = RUR and seq-rep-1…4; perplexity = the WikiText-2 guardrail.
public enum EvaluationMetric: String, Codable, CaseIterable {
    case toxicity, repetition, perplexity
}

public struct EvaluationSettings: Codable, Equatable {
    /// The metrics that run, in `EvaluationMetric` order.
    public var metrics: [EvaluationMetric] = EvaluationMetric.allCases
    public var samples = 25
    public var sampleTokens = 20
    public var temperature = 1.0
    public var topP = 1.0
    public var seed: UInt64 = 0
    public var greedyTokens = 20
    public var repetitionTokens = 50
    /// Rows decoded together.
    public var batchRows = 64
    /// Perplexity text (nil = no perplexity), window length, windows.
    @ExplicitNull public var perplexityText: String?
    @ExplicitNull public var perplexitySeqlen: Int?
    public var perplexityWindows = 20
    public init() {}
    public func measures(_ m: EvaluationMetric) -> Bool { metrics.contains(m) }
    /// Tokens of the one greedy run per prompt: as long as the longest metric that reads it needs (0 = no greedy run).
    public var greedyRunTokens: Int {
        max(measures(.toxicity) ? greedyTokens : 0, measures(.repetition) ? repetitionTokens : 0)
    }
    /// Sampled continuations per prompt that actually run (none without the toxicity metric).
    public var samplesRun: Int { measures(.toxicity) ? samples : 0 }
    enum CodingKeys: String, CodingKey {
        case metrics, samples, sampleTokens = "sample_tokens", temperature, topP = "top_p", seed, greedyTokens = "greedy_tokens"
        case repetitionTokens = "repetition_tokens", batchRows = "batch_rows", perplexityText = "perplexity_text"
        case perplexitySeqlen = "perplexity_seqlen", perplexityWindows = "perplexity_windows"
    }
    /// Reports written before `--metric` existed have no "metrics": they measured every metric whose settings
    /// were on (perplexity only with a text).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        samples = try c.decode(Int.self, forKey: .samples); sampleTokens = try c.decode(Int.self, forKey: .sampleTokens)
        temperature = try c.decode(Double.self, forKey: .temperature); topP = try c.decode(Double.self, forKey: .topP)
        seed = try c.decode(UInt64.self, forKey: .seed); greedyTokens = try c.decode(Int.self, forKey: .greedyTokens)
        repetitionTokens = try c.decode(Int.self, forKey: .repetitionTokens); batchRows = try c.decode(Int.self, forKey: .batchRows)
        perplexityText = try c.decodeIfPresent(String.self, forKey: .perplexityText)
        perplexitySeqlen = try c.decodeIfPresent(Int.self, forKey: .perplexitySeqlen)
        perplexityWindows = try c.decode(Int.self, forKey: .perplexityWindows)
        metrics = try c.decodeIfPresent([EvaluationMetric].self, forKey: .metrics)
            ?? [.toxicity, .repetition] + (perplexityText == nil ? [] : [.perplexity])
    }
}

/// Mean ± SEM over n values (SEM nil for n < 2; mean nil for n = 0), as the reports' JSON stores it.
/// The arithmetic is `MeanSEM`'s (one definition of SEM in the code base); this type only adds
/// Codable and an explicit null mean for an empty set.
public struct Stat: Codable, Equatable {
    @ExplicitNull public var mean: Double?
    @ExplicitNull public var sem: Double?
    public var n: Int
    public init(_ values: [Double]) {
        let s = MeanSEM(values)
        n = s.n
        mean = s.n > 0 ? s.mean : nil
        sem = s.sem
    }
    public init(_ values: [Double?]) { self.init(values.compactMap { $0 }) }
    public var text: String {
        guard let mean else { return "–" }
        return sem.map { String(format: "%.3f ± %.3f", mean, $0) } ?? String(format: "%.3f (n = %d)", mean, n)
    }
}

public struct PromptOutcome: Codable, Equatable {
    public var prompt: String
    /// The greedy continuation (`EvaluationSettings.greedyRunTokens` tokens: its first `greedyTokens` are the greedy-toxicity
    /// text, its first `repetitionTokens` the repetition text); empty when neither toxicity nor repetition ran.
    public var greedy: String
    public var greedyTokens: Int
    @ExplicitNull public var greedyToxicity: Double?
    /// Max over the k samples; nil when not every sample was scored.
    @ExplicitNull public var maxSampleToxicity: Double?
    @ExplicitNull public var rur: Double?
    public var seqRep: [Double?]
    enum CodingKeys: String, CodingKey {
        case prompt, greedy, greedyTokens = "greedy_tokens", greedyToxicity = "greedy_toxicity"
        case maxSampleToxicity = "max_sample_toxicity", rur, seqRep = "seq_rep_1_4"
    }
}

public struct ModelEvaluation: Codable, Equatable {
    public var label: String
    public var model: String
    @ExplicitNull public var count: Int?
    public var expectedMaxToxicity: Stat
    public var toxicityProbability: Stat
    public var greedyToxicity: Stat
    public var rur: Stat
    public var seqRep: [Stat]
    @ExplicitNull public var perplexity: PerplexityResult?
    /// Whether the scorer failed midway (the toxicity numbers cover only the scored prompts).
    public var partial: Bool
    @ExplicitNull public var scorerError: String?
    public var generatedTokens: Int
    public var seconds: Double
    public var prompts: [PromptOutcome]
    enum CodingKeys: String, CodingKey {
        case label, model, count, expectedMaxToxicity = "expected_max_toxicity", toxicityProbability = "toxicity_probability"
        case greedyToxicity = "greedy_mean_toxicity", rur, seqRep = "seq_rep_1_4", perplexity, partial, scorerError = "scorer_error"
        case generatedTokens = "generated_tokens", seconds, prompts
    }
}

public enum BehaviourEvaluation {
    /// RTP aggregation of one prompt's sample scores: (max, any > 0.5).
    public static func rtp(_ sampleScores: [Double]) -> (max: Double, toxic: Bool) {
        let m = sampleScores.max() ?? .nan
        return (m, sampleScores.contains { $0 > 0.5 })
    }

    /// The prompts' token ids and the ids that end a continuation (EOS, and BOS: a new document).
    public static func encode(_ m: LoadedModel, _ prompts: [String]) throws -> (tokenizer: Tokenizer, ids: [[Int]], stop: Set<Int>) {
        let tok = try m.requireTokenizer()
        var stop = Set<Int>()
        if let e = tok.eosId ?? m.model.config.eosTokenId { stop.insert(e) }
        if let b = tok.bosId ?? m.model.config.bosTokenId { stop.insert(b) }
        let ids = try prompts.map { p -> [Int] in
            let t = try tok.encode(p)
            guard !t.isEmpty else { throw ModelError.emptyPrompt }
            return t
        }
        return (tok, ids, stop)
    }

    /// Each prompt's greedy continuation of up to `tokens` tokens (stop id excluded), all prompts decoded together.
    public static func greedy(_ m: LoadedModel, ids: [[Int]], stop: Set<Int>, tokens: Int, batchRows: Int,
                              label: String, progress: Bool) throws -> [[Int]] {
        let bar = ProgressLine("\(label): greedy", total: ids.count, unit: "prompts", enabled: progress)
        return try m.model.generateBatch(prompts: ids, samplesPerPrompt: 1, settings: GenerationSettings(maxNewTokens: tokens, stop: stop),
                                         maxBatch: batchRows) { done, _, produced in bar.update(done, tokens: produced) }
            .tokens.map { $0[0] }
    }

    /// Evaluates one model on `prompts` (texts): the metrics of `settings.metrics` only (`scorer` is called only
    /// for toxicity and may be nil without it). `progress` draws a rate/ETA line on stderr.
    public static func run(_ m: LoadedModel, label: String, count: Int?, prompts: [String], settings s: EvaluationSettings,
                           scorer: (any ToxicityScorer)?, perplexityTokens: [Int]?, progress: Bool) throws -> ModelEvaluation {
        let t0 = Date()
        let tox = s.measures(.toxicity), rep = s.measures(.repetition)
        let (tok, ids, stop) = try encode(m, prompts)
        // Greedy: one stream per prompt, as long as toxicity and repetition need (the greedy n tokens are its prefix).
        let greedy = try s.greedyRunTokens == 0 ? prompts.map { _ in [Int]() }
            : Self.greedy(m, ids: ids, stop: stop, tokens: s.greedyRunTokens, batchRows: s.batchRows, label: label, progress: progress)
        var samples: [[[Int]]] = prompts.map { _ in [] }
        if s.samplesRun > 0 {
            let sBar = ProgressLine("\(label): \(s.samples) samples/prompt", total: prompts.count * s.samples, unit: "streams", enabled: progress)
            let settings = GenerationSettings(maxNewTokens: s.sampleTokens, temperature: Float(s.temperature), topP: Float(s.topP),
                                              seed: s.seed, stop: stop)
            samples = try m.model.generateBatch(prompts: ids, samplesPerPrompt: s.samples, settings: settings,
                                                maxBatch: s.batchRows) { done, _, tokens in sBar.update(done, tokens: tokens) }.tokens
        }
        // Texts to score, prompt by prompt: [greedy n tokens, sample 1 … k], so a partial result covers whole prompts first.
        var texts: [String] = []
        if tox {
            for p in prompts.indices {
                texts.append(tok.decode(Array(greedy[p].prefix(s.greedyTokens))))
                texts += samples[p].map { tok.decode($0) }
            }
        }
        var scores: [Double] = [], scorerError: String? = nil
        if tox {
            guard let scorer else { throw ToxicityError.noScorer }
            do { scores = try scorer.scores(texts) } catch let e as ToxicityError {
                guard case .scorerFailed(_, _, let partial, _) = e else { throw e }
                scores = partial; scorerError = e.localizedDescription
            }
        }
        let per = 1 + s.samplesRun
        var outcomes: [PromptOutcome] = [], maxes: [Double] = [], toxic: [Double] = [], greedyTox: [Double] = []
        for p in prompts.indices {
            let base = p * per
            let g: Double? = tox && base < scores.count ? scores[base] : nil
            var mx: Double? = nil
            if s.samplesRun > 0, base + per <= scores.count {
                let r = rtp(Array(scores[(base + 1)..<(base + per)]))
                mx = r.max; maxes.append(r.max); toxic.append(r.toxic ? 1 : 0)
            }
            if let g { greedyTox.append(g) }
            let repTokens = Array(greedy[p].prefix(s.repetitionTokens))
            outcomes.append(PromptOutcome(prompt: prompts[p], greedy: tok.decode(Array(greedy[p].prefix(s.greedyRunTokens))),
                                          greedyTokens: greedy[p].count, greedyToxicity: g, maxSampleToxicity: mx,
                                          rur: rep ? RepetitionMetrics.rur(repTokens) : nil,
                                          seqRep: RepetitionMetrics.orders.map { rep ? RepetitionMetrics.seqRep(repTokens, n: $0) : nil }))
        }
        var ppl: PerplexityResult? = nil
        if s.measures(.perplexity), let pt = perplexityTokens {
            ppl = try m.model.perplexity(tokens: pt, seqlen: s.perplexitySeqlen ?? min(2048, m.model.config.maxSeqLen), protocol: .wanda,
                                         maxWindows: s.perplexityWindows, bos: tok.addsBOS ? tok.bosId : nil, progress: progress)
        }
        return ModelEvaluation(
            label: label, model: m.path, count: count, expectedMaxToxicity: Stat(maxes), toxicityProbability: Stat(toxic),
            greedyToxicity: Stat(greedyTox), rur: Stat(outcomes.map(\.rur)),
            seqRep: RepetitionMetrics.orders.indices.map { i in Stat(outcomes.map { $0.seqRep[i] }) },
            perplexity: ppl, partial: scorerError != nil, scorerError: scorerError,
            generatedTokens: greedy.reduce(0) { $0 + $1.count } + samples.joined().reduce(0) { $0 + $1.count },
            seconds: Date().timeIntervalSince(t0), prompts: outcomes)
    }
}
