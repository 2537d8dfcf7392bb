import Foundation

// MARK: - Set-level summaries

/// Which number stands for "the task" (what faithfulness normalises).
public enum HeadlineMetric: String, Sendable, Equatable {
    case logitDiff = "logit-diff"
    case probDiff = "prob-diff"
    case logProbAnswer = "log-prob-answer"

    /// IOI → logit difference; greater-than → probability difference; otherwise the logit
    /// difference when every prompt has a distractor, else log p(answer). Mixed kinds fall back to the last rule.
    public static func forItems(_ items: [TaskItem]) -> HeadlineMetric {
        let kinds = Set(items.map(\.kind))
        if kinds == [.greaterThan] { return .probDiff }
        return items.allSatisfy { !$0.distractorIds.isEmpty } ? .logitDiff : .logProbAnswer
    }

    public func value(_ m: PromptMetrics) -> Double? {
        switch self {
        case .logitDiff: return m.logitDiff
        case .probDiff: return m.probDiff
        case .logProbAnswer: return m.logProbAnswer
        }
    }
}

/// Means over a group of prompts (nil where a metric does not apply to every prompt).
public struct MetricSummary: Equatable, Sendable {
    public var count: Int
    public var logitDiff: Double?
    public var accuracy: Double?
    public var top1: Double
    public var probDiff: Double?
    public var logProbAnswer: Double
    /// Mean KL summed over the vocabulary, and MIB's convention (mean over the vocabulary too: KL / |V|).
    public var kl: Double?
    public var klPerVocab: Double?
    /// Standard error of the mean logit difference (or prob diff when there is no logit diff).
    public var headlineSEM: Double?

    public init(_ ms: [PromptMetrics], vocabSize: Int, headline: HeadlineMetric) {
        count = ms.count
        func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(xs.count, 1)) }
        func all<T>(_ f: (PromptMetrics) -> T?) -> [T]? {
            let xs = ms.compactMap(f)
            return xs.count == ms.count && !ms.isEmpty ? xs : nil
        }
        logitDiff = all(\.logitDiff).map(mean)
        accuracy = all(\.correct).map { mean($0.map { $0 ? 1 : 0 }) }
        top1 = mean(ms.map { $0.top1 ? 1 : 0 })
        probDiff = all(\.probDiff).map(mean)
        logProbAnswer = mean(ms.map(\.logProbAnswer))
        kl = all(\.kl).map(mean)
        klPerVocab = kl.map { $0 / Double(vocabSize) }
        headlineSEM = all({ headline.value($0) }).flatMap { MeanSEM($0).sem }
    }
}

/// Everything `task-eval` reports.
public struct TaskSummary: Sendable {
    public var headline: HeadlineMetric
    public var clean: MetricSummary
    public var corrupted: MetricSummary?
    /// Per template (BABA:2 before BABA:10), clean prompts only.
    public var byTemplate: [(template: String, summary: MetricSummary)]
    /// Per template family (the part before ':', e.g. BABA / ABBA), clean prompts only.
    public var byFamily: [(family: String, summary: MetricSummary)]

    public init(_ e: TaskEvaluation) {
        let headline = HeadlineMetric.forItems(e.items)
        self.headline = headline
        clean = MetricSummary(e.clean, vocabSize: e.vocabSize, headline: headline)
        corrupted = e.corrupted.map { MetricSummary($0, vocabSize: e.vocabSize, headline: headline) }
        func grouped(_ key: (TaskItem) -> String?) -> [(String, MetricSummary)] {
            var order: [String] = [], groups: [String: [PromptMetrics]] = [:]
            for (item, m) in zip(e.items, e.clean) {
                guard let k = key(item) else { continue }
                if groups[k] == nil { order.append(k) }
                groups[k, default: []].append(m)
            }
            return order.sorted(by: Self.naturalOrder).map { ($0, MetricSummary(groups[$0]!, vocabSize: e.vocabSize, headline: headline)) }
        }
        let templates = grouped(\.template)
        byTemplate = templates.map { (template: $0.0, summary: $0.1) }
        byFamily = grouped { $0.template.map { String($0.split(separator: ":").first ?? "") } }.map { (family: $0.0, summary: $0.1) }
    }

    /// "FAMILY:INDEX" labels by family, then index as a number; other labels by text.
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        let pa = a.split(separator: ":"), pb = b.split(separator: ":")
        if pa.count == 2, pb.count == 2, pa[0] == pb[0], let ia = Int(pa[1]), let ib = Int(pb[1]) { return ia < ib }
        return a < b
    }

    /// The headline metric's mean on the clean prompts.
    public var headlineValue: Double? { Self.value(headline, clean) }
    public var corruptedHeadlineValue: Double? { corrupted.flatMap { Self.value(headline, $0) } }

    static func value(_ h: HeadlineMetric, _ s: MetricSummary) -> Double? {
        switch h {
        case .logitDiff: return s.logitDiff
        case .probDiff: return s.probDiff
        case .logProbAnswer: return s.logProbAnswer
        }
    }
}
