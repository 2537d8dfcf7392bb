import Foundation
import Transformer

// MARK: - Batched task evaluation
//
// Every prompt of a set runs in one packed forward (`Model.hidden` with one
// `Segment` per prompt: the linear layers see all rows as one matrix, attention
// stays within each prompt), split into passes of at most `maxRows` token rows
// to bound the activation buffers. Only the last row of each prompt goes
// through the unembedding: [b, vocab] per pass instead of [ΣT, vocab], and
// `evaluate` turns each pass into metrics before the next (only a KL reference
// is held for the whole set: [B, vocab]).

public struct TaskEvaluation: Sendable {
    public var items: [TaskItem]
    /// Per prompt, on the clean prompts.
    public var clean: [PromptMetrics]
    /// Per prompt, on the corrupted prompts (same answer/distractor tokens); nil when any prompt lacks one.
    public var corrupted: [PromptMetrics]?
    public var vocabSize: Int
}

public enum TaskEvaluator {
    /// Token rows per packed pass (≈ 75 MB of MLP activations for SmolLM2).
    public static let defaultMaxRows = 4096

    /// Last-position logits [B, vocab] of each sequence.
    public static func lastLogits(_ model: Model, _ sequences: [[Int]], maxRows: Int = defaultMaxRows) -> [Float] {
        let v = model.config.vocabSize
        var out = [Float](repeating: 0, count: sequences.count * v)
        forEachChunk(model, sequences, maxRows: maxRows) { start, logits in
            out.replaceSubrange((start * v)..<(start * v + logits.count), with: logits)
        }
        return out
    }

    /// Runs `sequences` pass by pass and hands each pass's last-position logits [b, vocab] to `body`
    /// with the index of its first sequence (memory: one pass, not the whole set).
    public static func forEachChunk(_ model: Model, _ sequences: [[Int]], maxRows: Int = defaultMaxRows,
                                    _ body: (_ start: Int, _ logits: [Float]) -> Void) {
        let d = model.config.dModel
        forEachPackedPass(model.config, sequences, maxRows: maxRows) { start, tokens, segments in
            let h = model.hidden(tokens: tokens, segments: segments)           // [rows, d]
            var last = [Float](repeating: 0, count: segments.count * d)       // [b, d]
            for (i, s) in segments.enumerated() {
                let r = s.rowStart + s.count - 1
                last.replaceSubrange((i * d)..<((i + 1) * d), with: h[(r * d)..<((r + 1) * d)])
            }
            body(start, last.withUnsafeBufferPointer { model.logits($0.baseAddress!, rows: segments.count) })   // [b, vocab]
        }
    }

    /// Packs `sequences` greedily into passes of at most `maxRows` token rows (at least one whole sequence
    /// each) and calls `body` with the index of the pass's first sequence, its tokens and its segments —
    /// the one packing rule every batched evaluation shares.
    static func forEachPackedPass(_ config: ModelConfig, _ sequences: [[Int]], maxRows: Int,
                                  _ body: (_ start: Int, _ tokens: [Int], _ segments: [Segment]) -> Void) {
        var start = 0
        while start < sequences.count {
            var end = start, rows = 0
            while end < sequences.count, end == start || rows + sequences[end].count <= maxRows {
                rows += sequences[end].count; end += 1
            }
            var tokens: [Int] = [], segments: [Segment] = []
            tokens.reserveCapacity(rows)
            for s in sequences[start..<end] {
                segments.append(Segment(rowStart: tokens.count, count: s.count, pos0: 0,
                                        cache: KVCache(config: config, capacity: s.count)))
                tokens += s
            }
            body(start, tokens, segments)
            start = end
        }
    }

    /// Metrics of `model` on `items`; `reference` = the full model's last-position log-probabilities
    /// [B, vocab] (`PromptMetrics.logSoftmaxRows` of its `lastLogits`) for KL, or nil. `corrupted: false`
    /// skips the corrupted prompts (half the work when only the clean metric is wanted).
    public static func evaluate(_ model: Model, _ items: [TaskItem], reference: [Float]? = nil, corrupted withCorrupted: Bool = true,
                                maxRows: Int = defaultMaxRows) -> TaskEvaluation {
        let v = model.config.vocabSize
        precondition(reference == nil || reference!.count == items.count * v)
        func run(_ seqs: [[Int]], _ reference: [Float]?) -> [PromptMetrics] {
            var out: [PromptMetrics] = []
            out.reserveCapacity(items.count)
            forEachChunk(model, seqs, maxRows: maxRows) { start, logits in
                out += metrics(logits, items, from: start, v, reference)
            }
            return out
        }
        let clean = run(items.map(\.tokens), reference)
        var corrupted: [PromptMetrics]? = nil
        if withCorrupted, items.allSatisfy({ $0.corruptedTokens != nil }) {
            corrupted = run(items.map { $0.corruptedTokens! }, nil)
        }
        return TaskEvaluation(items: items, clean: clean, corrupted: corrupted, vocabSize: v)
    }

    /// Metrics of the prompts `start ..< start + logits.count / v` from their logits [b, v].
    static func metrics(_ logits: [Float], _ items: [TaskItem], from start: Int, _ v: Int, _ reference: [Float]?) -> [PromptMetrics] {
        logits.withUnsafeBufferPointer { l in
            (0..<(logits.count / v)).map { k in
                let i = start + k, item = items[i]
                let row = UnsafeBufferPointer(rebasing: l[(k * v)..<((k + 1) * v)])
                guard let reference else {
                    return PromptMetrics(logits: row, answers: item.answerIds, distractors: item.distractorIds)
                }
                return reference.withUnsafeBufferPointer { r in
                    PromptMetrics(logits: row, answers: item.answerIds, distractors: item.distractorIds,
                                  reference: UnsafeBufferPointer(rebasing: r[(i * v)..<((i + 1) * v)]))
                }
            }
        }
    }
}
