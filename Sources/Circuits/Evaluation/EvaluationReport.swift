import Foundation
import Transformer

// MARK: - evaluate's report: JSON and a self-contained HTML page
//
// One report holds the baseline (if any) and every evaluated model (one, or each count of a correction
// sweep) on the same prompts with the same settings and seeds, plus the deltas model − baseline.

public struct EvaluationReport: Codable, Equatable {
    public struct Delta: Codable, Equatable {
        public var label: String
        @ExplicitNull public var expectedMaxToxicity: Double?
        @ExplicitNull public var toxicityProbability: Double?
        @ExplicitNull public var greedyToxicity: Double?
        @ExplicitNull public var rur: Double?
        @ExplicitNull public var perplexity: Double?
        enum CodingKeys: String, CodingKey {
            case label, expectedMaxToxicity = "expected_max_toxicity", toxicityProbability = "toxicity_probability"
            case greedyToxicity = "greedy_mean_toxicity", rur, perplexity
        }
        init(_ m: ModelEvaluation, _ b: ModelEvaluation) {
            func d(_ x: Double?, _ y: Double?) -> Double? { x.flatMap { a in y.map { a - $0 } } }
            label = m.label
            expectedMaxToxicity = d(m.expectedMaxToxicity.mean, b.expectedMaxToxicity.mean)
            toxicityProbability = d(m.toxicityProbability.mean, b.toxicityProbability.mean)
            greedyToxicity = d(m.greedyToxicity.mean, b.greedyToxicity.mean)
            rur = d(m.rur.mean, b.rur.mean)
            perplexity = d(m.perplexity?.perplexity, b.perplexity?.perplexity)
        }
    }

    public var tool = Workbench.version
    public var timestamp: String
    public var prompts: String
    public var promptsSHA256: String
    public var promptCount: Int
    /// What the prompts are relative to the correction: "held-out", "reference", … (as the user stated it).
    @ExplicitNull public var split: String?
    @ExplicitNull public var sweep: String?
    @ExplicitNull public var correctionMethod: String?
    /// The evaluated prompts against each set the correction was scored on (or a --reference file).
    public var overlaps: [PromptOverlap]
    public var settings: EvaluationSettings
    public var scorer: String
    public var scorerNote: String
    public var protocols: [String: String]
    @ExplicitNull public var baseline: ModelEvaluation?
    public var models: [ModelEvaluation]
    public var deltas: [Delta]

    enum CodingKeys: String, CodingKey {
        case tool, timestamp, prompts, promptsSHA256 = "prompts_sha256", promptCount = "prompt_count", split, sweep
        case correctionMethod = "correction_method", overlaps, settings, scorer, scorerNote = "scorer_note", protocols, baseline, models, deltas
    }

    public init(prompts: String, promptCount: Int, split: String?, sweep: String?, correctionMethod: String?,
                overlaps: [PromptOverlap] = [], settings: EvaluationSettings, scorer: (any ToxicityScorer)?, baseline: ModelEvaluation?,
                models: [ModelEvaluation], date: Date = Date()) throws {
        self.init(prompts: prompts, promptsSHA256: try SHA256.hex(file: prompts), promptCount: promptCount, split: split, sweep: sweep,
                  correctionMethod: correctionMethod, overlaps: overlaps, settings: settings,
                  scorer: settings.measures(.toxicity) ? scorer?.name ?? "none" : Self.noScorer,
                  scorerNote: settings.measures(.toxicity) ? scorer?.disclaimer ?? "" : "", baseline: baseline, models: models, date: date)
    }

    /// From recorded values (`workbench merge` of evaluation parts: the prompts' sha256 and the scorer as the parts state them).
    public init(prompts: String, promptsSHA256: String, promptCount: Int, split: String?, sweep: String?, correctionMethod: String?,
                overlaps: [PromptOverlap] = [], settings: EvaluationSettings, scorer: String, scorerNote: String, baseline: ModelEvaluation?, models: [ModelEvaluation],
                date: Date = Date()) {
        timestamp = ISO8601DateFormatter().string(from: date)
        self.prompts = prompts; self.promptsSHA256 = promptsSHA256; self.promptCount = promptCount
        self.split = split; self.sweep = sweep; self.correctionMethod = correctionMethod; self.overlaps = overlaps
        self.settings = settings
        self.scorer = scorer; self.scorerNote = scorerNote
        let s = settings
        let off = "not measured (not in --metric)"
        protocols = [
            "rtp": !s.measures(.toxicity) ? off : s.samples == 0 ? "not measured (--samples 0)" : "RealToxicityPrompts as coded by DExperts: \(s.samples) sampled continuations of \(s.sampleTokens) tokens per prompt (temperature \(s.temperature), top-p \(s.topP)); expected maximum toxicity = mean over prompts of the max over samples; toxicity probability = fraction of prompts with at least one sample > 0.5",
            "greedy": !s.measures(.toxicity) ? off : "greedy \(s.greedyTokens)-token continuation, mean toxicity over prompts (continuation only)",
            "repetition": !s.measures(.repetition) ? off : "greedy \(s.repetitionTokens)-token continuation: RUR = unique/total tokens (SparC³ Eq. 11), seq-rep-n = 1 − unique/total n-grams (Welleck et al. 2020), n = 1…4",
            "perplexity": !s.measures(.perplexity) ? off : s.perplexityText.map { "\($0): every position of \(s.perplexityWindows) non-overlapping windows (wanda protocol, see README)" } ?? "not measured",
            "seeds": "stream (prompt p, sample s) samples with SplitMix64 seed f(\(s.seed), p, s): independent of batching",
            "aggregation": "mean ± SEM (sample sd / √n) over prompts",
        ]
        self.baseline = baseline; self.models = models
        deltas = baseline.map { b in models.map { Delta($0, b) } } ?? []
    }

    /// The scorer field of a report without the toxicity metric.
    public static let noScorer = "none (toxicity not measured)"

    /// Which metrics ran, as the page and stderr state it ("toxicity (RTP 25 × 20 + greedy 20), repetition; not run: perplexity").
    public static func metricsText(_ s: EvaluationSettings) -> String {
        let ran = s.metrics.map { m -> String in
            switch m {
            case .toxicity: return "toxicity (" + (s.samples > 0 ? "RTP \(s.samples) × \(s.sampleTokens) + " : "no RTP samples, ") + "greedy \(s.greedyTokens))"
            case .repetition: return "repetition (greedy \(s.repetitionTokens))"
            case .perplexity: return "perplexity (\(s.perplexityWindows) window\(s.perplexityWindows == 1 ? "" : "s"))"
            }
        }
        let off = EvaluationMetric.allCases.filter { !s.measures($0) }.map(\.rawValue)
        return ran.joined(separator: ", ") + (off.isEmpty ? "" : "; not run: " + off.joined(separator: ", "))
    }

    public func json() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(self)
    }

    // MARK: HTML

    public func html() -> String {
        let all = (baseline.map { [$0] } ?? []) + models
        var prov: [(String, String)] = [
            ("prompts", "\(prompts) (\(promptCount) prompts, sha256 \(promptsSHA256.prefix(16))…)"),
            ("split", split ?? "not stated"),
            ("metrics", Self.metricsText(settings)),
            ("models", all.map { "\($0.label): \($0.model)" }.joined(separator: "; ")),
        ]
        if let sweep { prov.append(("correction sweep", sweep + (correctionMethod.map { " (\($0))" } ?? ""))) }
        for o in overlaps {
            prov.append(("overlap with \(o.role)", "\(o.shared) of \(o.compared) prompts also in \(o.set)" + (o.shared > 0 ? " (not held out)" : "")))
        }
        if settings.measures(.toxicity) { prov += [("scorer", scorer), ("scorer note", scorerNote)] }
        // (the sampling seeds only matter when something was sampled)
        for k in ["rtp", "greedy", "repetition", "perplexity", "seeds", "aggregation"] where k != "seeds" || settings.samplesRun > 0 {
            if let v = protocols[k] { prov.append((k, v)) }
        }
        prov.append(("tool", "\(tool), \(timestamp)"))
        var body = ""
        if all.contains(where: \.partial) {
            body += "<p class=\"note\"><b>Partial:</b> the scorer failed midway for " + all.filter(\.partial).map { HTMLPage.escape($0.label) }.joined(separator: ", ")
                + "; toxicity numbers there cover only the prompts it scored (n in each cell).</p>\n"
        }
        // Columns of the metrics that ran only: a metric not in --metric has no number, not a dash that looks like a failure.
        let tox = settings.measures(.toxicity), rtp = settings.samplesRun > 0, rep = settings.measures(.repetition)
        let pplRan = settings.measures(.perplexity) && settings.perplexityText != nil
        var columns: [(name: String, cell: (ModelEvaluation) -> String)] = []
        if rtp { columns += [("exp. max toxicity", { $0.expectedMaxToxicity.text }), ("toxicity prob.", { $0.toxicityProbability.text })] }
        if tox { columns.append(("greedy toxicity", { $0.greedyToxicity.text })) }
        if rep { columns += [("RUR", { $0.rur.text }), ("seq-rep-2", { $0.seqRep[1].text }), ("seq-rep-4", { $0.seqRep[3].text })] }
        if pplRan { columns.append(("WikiText ppl", { m in m.perplexity.map { String(format: "%.3f", $0.perplexity) } ?? "–" })) }
        body += "<h2>Summary</h2>\n" + HTMLPage.table(
            header: ["model", "count"] + columns.map(\.name) + ["tokens", "s"],
            rows: all.map { m in [m.label, m.count.map(String.init) ?? "–"] + columns.map { $0.cell(m) } + [String(m.generatedTokens), String(format: "%.1f", m.seconds)] },
            numeric: Set(1...(columns.count + 3)), caption: "means ± SEM over prompts (n = \(promptCount) unless a scorer failed)")
        if !deltas.isEmpty {
            func f(_ v: Double?) -> String { v.map { String(format: "%+.4f", $0) } ?? "–" }
            var dcols: [(name: String, cell: (Delta) -> Double?)] = []
            if rtp { dcols += [("exp. max toxicity", { $0.expectedMaxToxicity }), ("toxicity prob.", { $0.toxicityProbability })] }
            if tox { dcols.append(("greedy toxicity", { $0.greedyToxicity })) }
            if rep { dcols.append(("RUR", { $0.rur })) }
            if pplRan { dcols.append(("ppl", { $0.perplexity })) }
            if !dcols.isEmpty {
                body += HTMLPage.table(header: ["model − baseline"] + dcols.map(\.name),
                                       rows: deltas.map { d in [d.label] + dcols.map { f($0.cell(d)) } },
                                       numeric: Set(1...dcols.count))
            }
        }
        let swept = models.filter { $0.count != nil }
        if swept.count > 1 {
            body += "<h2>Sweep</h2>\n"
            func series(_ name: String, _ v: (ModelEvaluation) -> Stat) -> PlotSeries {
                PlotSeries(name: name, points: swept.compactMap { m in v(m).mean.map { (x: Double(m.count!), y: $0, err: v(m).sem) } })
            }
            func hline(_ v: (ModelEvaluation) -> Stat) -> (value: Double, label: String)? { baseline.flatMap { b in v(b).mean.map { ($0, "baseline") } } }
            if tox {
                body += LinePlotSVG.render(title: "Toxicity vs removed components", xLabel: "removed components", yLabel: "toxicity",
                                           series: (rtp ? [series("exp. max (RTP)", { $0.expectedMaxToxicity })] : []) + [series("greedy mean", { $0.greedyToxicity })]
                                               + (rtp ? [series("tox. probability", { $0.toxicityProbability })] : []), hline: hline(\.greedyToxicity))
            }
            if rep {
                body += LinePlotSVG.render(title: "Repetition vs removed components", xLabel: "removed components", yLabel: "RUR (higher = less repetition)",
                                           series: [series("RUR", { $0.rur })], hline: hline(\.rur))
            }
            let pp = swept.compactMap { m in m.perplexity.map { (x: Double(m.count!), y: $0.perplexity, err: Double?.none) } }
            if !pp.isEmpty {
                body += LinePlotSVG.render(title: "Perplexity guardrail", xLabel: "removed components", yLabel: "WikiText-2 ppl",
                                           series: [PlotSeries(name: "ppl", points: pp)], hline: baseline?.perplexity.map { ($0.perplexity, "baseline") })
            }
        }
        // Continuations side by side: baseline and every model, first 40 prompts (none without a greedy run).
        if settings.greedyRunTokens > 0 {
            let shown = min(promptCount, 40)
            func f(_ v: Double?) -> String { v.map { String(format: "%.2f", $0) } ?? "–" }
            var marks: [(name: String, value: (PromptOutcome) -> Double?)] = []
            if tox { marks.append(("greedy tox", { $0.greedyToxicity })) }
            if rtp { marks.append(("max sample tox", { $0.maxSampleToxicity })) }
            if rep { marks.append(("RUR", { $0.rur })) }
            body += "<h2>Greedy continuations (first \(shown) of \(promptCount) prompts)</h2>\n"
            body += HTMLPage.table(
                header: ["prompt"] + all.map { "\($0.label) (" + marks.map(\.name).joined(separator: " · ") + ")" },
                rows: (0..<shown).map { i in
                    [all.first?.prompts[i].prompt ?? ""] + all.map { m in
                        let o = m.prompts[i]
                        return "\(o.greedy)  [" + marks.map { f($0.value(o)) }.joined(separator: " · ") + "]"
                    }
                })
        }
        return HTMLPage.document(title: "Evaluation: " + settings.metrics.map(\.rawValue).joined(separator: ", "), provenance: prov, body: body)
    }
}
