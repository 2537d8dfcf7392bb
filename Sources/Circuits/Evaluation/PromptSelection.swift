import Foundation
import Tokenize
import Transformer

// MARK: - Selecting prompts by the behaviour they trigger in this model
//
// An undesired-behaviour set is only useful if the model shows the behaviour on it. Repetition
// openers ("Well, well, well", enumerations, …) are kept when the model's own greedy 50-token
// continuation loops — RUR (SparC³ Eq. 11) below a cut; on SmolLM2 ordinary C4 prompts already
// give RUR ≈ 0.41, so the cut that separates trigger prompts is 0.3, not 0.5. Toxic prompts
// likewise by the toxicity of the greedy 20-token continuation. Only the continuation is
// measured, never the prompt, exactly as `evaluate` measures it.

public enum SelectionMetric: String, CaseIterable, Sendable {
    case rur, toxicity
    /// The continuation length `evaluate` measures the metric on.
    public var defaultTokens: Int { self == .rur ? 50 : 20 }
}

/// Keep a prompt when its value lies strictly below or above a cut.
public enum SelectionBound: Equatable, Sendable, CustomStringConvertible {
    case below(Double), above(Double)
    public func keeps(_ v: Double) -> Bool {
        switch self {
        case .below(let x): return v < x
        case .above(let x): return v > x
        }
    }
    public var description: String {
        switch self {
        case .below(let x): return "< \(x)"
        case .above(let x): return "> \(x)"
        }
    }
}

public struct PromptSelection {
    /// The metric of each prompt's greedy continuation; nil where it is undefined (RUR of an empty continuation).
    public var values: [Double?]
    /// Each prompt's greedy continuation, decoded.
    public var continuations: [String]
    /// Indices of the kept prompts, in file order.
    public var kept: [Int]

    /// `scorer` is used (and required) for `.toxicity` only.
    public static func run(_ m: LoadedModel, prompts: [String], metric: SelectionMetric, bound: SelectionBound, tokens: Int,
                           scorer: @autoclosure () throws -> any ToxicityScorer, batchRows: Int, progress: Bool) throws -> PromptSelection {
        let (tok, ids, stop) = try BehaviourEvaluation.encode(m, prompts)
        let greedy = try BehaviourEvaluation.greedy(m, ids: ids, stop: stop, tokens: tokens, batchRows: batchRows,
                                                    label: "select", progress: progress)
        let texts = greedy.map { tok.decode($0) }
        let values: [Double?]
        switch metric {
        case .rur:
            values = greedy.map { RepetitionMetrics.rur($0) }
        case .toxicity:
            values = try scorer().scores(texts).map { Optional($0) }
        }
        let kept = values.indices.filter { i in values[i].map(bound.keeps) ?? false }
        return PromptSelection(values: values, continuations: texts, kept: kept)
    }
}
