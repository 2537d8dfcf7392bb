import Foundation
import Tokenize
import Transformer

// MARK: - Task prompts
//
// A task prompt is a text whose next token is scored: the logits at its last
// position are compared between a set of answer tokens and a set of
// distractor tokens. IOI has one of each (" IO" vs " S"); greater-than has
// sets (every year token above the start vs every one below). A `corrupted`
// prompt with the same token count is the counterfactual used by patching and
// as the "task destroyed" reference.

/// Which task a prompt belongs to; selects the headline metric.
public enum TaskKind: String, Sendable, Equatable, CaseIterable {
    /// Indirect-object identification: headline metric the logit difference.
    case ioi
    /// Greater-than (years): headline metric the probability difference of the year sets.
    case greaterThan = "greater-than"
    /// Any user task: logit difference when there is a distractor, else the answer's log-probability.
    case custom
}

/// One prompt as read from a task file (before tokenization).
public struct TaskPrompt: Equatable, Sendable {
    public var location: SourceLocation
    public var kind: TaskKind
    public var text: String
    public var corrupted: String?
    /// Template label ("BABA:3"), for per-template reporting; nil when unknown.
    public var template: String?
    /// Answer tokens (by id or text) and the field each came from (for errors).
    public var answers: [(ref: TokenRef, field: String)]
    public var distractors: [(ref: TokenRef, field: String)]
    /// Greater-than given by its start year's last two digits (EAP-IG CSV `label`):
    /// the answer/distractor sets are derived from the tokenizer (see `YearTargets`).
    public var startYearSuffix: Int?

    public init(location: SourceLocation, kind: TaskKind = .custom, text: String, corrupted: String? = nil,
                template: String? = nil, answers: [(ref: TokenRef, field: String)] = [],
                distractors: [(ref: TokenRef, field: String)] = [], startYearSuffix: Int? = nil) {
        self.location = location; self.kind = kind; self.text = text; self.corrupted = corrupted; self.template = template
        self.answers = answers; self.distractors = distractors; self.startYearSuffix = startYearSuffix
    }

    public static func == (a: TaskPrompt, b: TaskPrompt) -> Bool {
        a.location == b.location && a.kind == b.kind && a.text == b.text && a.corrupted == b.corrupted
            && a.template == b.template && a.startYearSuffix == b.startYearSuffix
            && a.answers.map(\.ref) == b.answers.map(\.ref) && a.distractors.map(\.ref) == b.distractors.map(\.ref)
    }
}

/// One tokenized, validated prompt: what the evaluator runs.
public struct TaskItem: Equatable, Sendable {
    public var location: SourceLocation
    public var kind: TaskKind
    public var template: String?
    /// Clean prompt tokens (BOS per the tokenizer's rule); the scored position is the last.
    public var tokens: [Int]
    /// Corrupted prompt tokens, same count as `tokens`, or nil.
    public var corruptedTokens: [Int]?
    /// Non-empty, sorted, disjoint from `distractorIds`.
    public var answerIds: [Int]
    /// Sorted; empty when the task has no distractor.
    public var distractorIds: [Int]

    public init(location: SourceLocation, kind: TaskKind, template: String?, tokens: [Int], corruptedTokens: [Int]?,
                answerIds: [Int], distractorIds: [Int]) {
        self.location = location; self.kind = kind; self.template = template; self.tokens = tokens
        self.corruptedTokens = corruptedTokens; self.answerIds = answerIds; self.distractorIds = distractorIds
    }
}

// MARK: - Tokenizing a task set

extension TaskPrompt {
    /// Tokenizes and checks one prompt: answers present and single-token, ids in
    /// the vocabulary, text/id pairs consistent, corrupted length equal, context respected.
    public func tokenize(tokenizer: Tokenizer, vocabSize: Int, maxSeqLen: Int, contextOrigin: String? = nil) throws -> TaskItem {
        let loc = location
        let tokens = try tokenizer.encode(text)
        guard !tokens.isEmpty, tokens.count <= maxSeqLen else { throw TaskError.badLength(loc, tokens: tokens.count, limit: maxSeqLen, origin: contextOrigin) }
        var corruptedTokens: [Int]? = nil
        if let corrupted {
            let c = try tokenizer.encode(corrupted)
            guard c.count == tokens.count else { throw TaskError.lengthMismatch(loc, clean: tokens.count, corrupted: c.count) }
            corruptedTokens = c
        }
        var answerIds: [Int], distractorIds: [Int]
        if let suffix = startYearSuffix {
            let sets = try YearTargets.sets(tokenizer: tokenizer, prompt: text, startSuffix: suffix, at: loc)
            answerIds = sets.greater; distractorIds = sets.smaller
        } else {
            guard !answers.isEmpty else { throw TaskError.missingField(loc, field: "answer") }
            answerIds = try Self.resolveAll(answers, loc, tokenizer, vocabSize)
            distractorIds = try Self.resolveAll(distractors, loc, tokenizer, vocabSize)
        }
        for id in answerIds + distractorIds where id < 0 || id >= vocabSize {
            throw TaskError.tokenOutOfVocabulary(loc, field: answerIds.contains(id) ? "answer" : "distractor", id: id, vocabSize: vocabSize)
        }
        answerIds = Array(Set(answerIds)).sorted(); distractorIds = Array(Set(distractorIds)).sorted()
        if let both = answerIds.first(where: { distractorIds.contains($0) }) { throw TaskError.overlappingTargets(loc, id: both) }
        return TaskItem(location: loc, kind: kind, template: template, tokens: tokens, corruptedTokens: corruptedTokens,
                        answerIds: answerIds, distractorIds: distractorIds)
    }

    /// Resolves refs; a text given together with its id (`answer` + `answer_id`) must encode to that id.
    static func resolveAll(_ refs: [(ref: TokenRef, field: String)], _ loc: SourceLocation, _ tokenizer: Tokenizer,
                           _ vocab: Int) throws -> [Int] {
        let ids = try refs.map { try resolve($0.ref, $0.field, loc, tokenizer, vocab) }
        if refs.count == 2, case .text(let s) = refs[0].ref, case .id = refs[1].ref, ids[0] != ids[1] {
            throw TaskError.idMismatch(loc, field: refs[1].field, text: s, fileId: ids[1], tokenizerId: ids[0])
        }
        return refs.count == 2 && ids[0] == ids[1] ? [ids[0]] : ids
    }

    static func resolve(_ ref: TokenRef, _ field: String, _ loc: SourceLocation, _ tokenizer: Tokenizer, _ vocab: Int) throws -> Int {
        switch ref {
        case .id(let i):
            guard i >= 0, i < vocab else { throw TaskError.tokenOutOfVocabulary(loc, field: field, id: i, vocabSize: vocab) }
            return i
        case .text(let s):
            let ids = try tokenizer.encode(s, addBOS: false)
            guard ids.count == 1 else { throw TaskError.notSingleToken(loc, field: field, text: s, ids: ids) }
            return ids[0]
        }
    }
}

/// A parsed task file (or a generated set), with its provenance.
public struct TaskSet: Equatable, Sendable {
    public var path: String
    public var prompts: [TaskPrompt]
    public init(path: String, prompts: [TaskPrompt]) { self.path = path; self.prompts = prompts }

    /// Every prompt tokenized and validated; the first bad prompt throws (nothing is evaluated half-way).
    public func tokenize(tokenizer: Tokenizer?, model: ModelConfig, contextOrigin: String? = nil) throws -> [TaskItem] {
        guard let tokenizer else { throw TaskError.needsTokenizer(path: path) }
        return try prompts.map {
            try $0.tokenize(tokenizer: tokenizer, vocabSize: model.vocabSize, maxSeqLen: model.maxSeqLen, contextOrigin: contextOrigin)
        }
    }

    /// As above, naming where the model's context length came from when a prompt is too long.
    public func tokenize(tokenizer: Tokenizer?, model: Model) throws -> [TaskItem] {
        try tokenize(tokenizer: tokenizer, model: model.config, contextOrigin: model.contextOrigin)
    }
}

// MARK: - Greater-than targets

/// The year tokens that continue "… from the year 1732 to the year 17".
///
/// Tokenizers split years differently (GPT-2: " 17" + "32"; SmolLM2: one
/// token per digit), so the sets are derived, not listed: for every two-digit
/// suffix YY the prompt + "YY" is encoded, and its first token after the
/// prompt's tokens is the token that starts YY. A token is "greater" when every
/// YY it starts is above the start suffix, "smaller" when every one is below;
/// a token that starts both (the start's own tens digit under per-digit
/// splitting) counts for neither, nor does a year whose tokenization does not
/// extend the prompt's tokens. With two-digit tokens this is exactly
/// Hanna et al.'s metric; with per-digit tokens it is its decade-level version.
public enum YearTargets {
    public static func sets(tokenizer: Tokenizer, prompt: String, startSuffix: Int,
                            at loc: SourceLocation) throws -> (greater: [Int], smaller: [Int]) {
        guard (0...99).contains(startSuffix) else {
            throw TaskError.badField(loc, field: "label", reason: "start year suffix \(startSuffix) is not in 0...99")
        }
        let base = try tokenizer.encode(prompt)
        var span: [Int: ClosedRange<Int>] = [:]   // token → YY values it starts
        for yy in 0...99 {
            let ids = try tokenizer.encode(prompt + String(format: "%02d", yy))
            // A year the tokenizer writes another way (GPT-2: " 1700" is one token) cannot follow
            // the prompt's tokens; it belongs to neither set.
            guard ids.count > base.count, Array(ids.prefix(base.count)) == base else { continue }
            let t = ids[base.count]
            span[t] = span[t].map { min($0.lowerBound, yy)...max($0.upperBound, yy) } ?? yy...yy
        }
        let greater = span.filter { $0.value.lowerBound > startSuffix }.keys.sorted()
        let smaller = span.filter { $0.value.upperBound < startSuffix }.keys.sorted()
        guard !greater.isEmpty, !smaller.isEmpty else {
            throw TaskError.badField(loc, field: "label", reason: "start suffix \(startSuffix) leaves no year token \(greater.isEmpty ? "above" : "below") it in this tokenizer (the prompt must end where the year's last two digits begin)")
        }
        return (greater, smaller)
    }
}
