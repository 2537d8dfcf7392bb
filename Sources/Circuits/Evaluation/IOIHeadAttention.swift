import Foundation
import Transformer

// MARK: - Where a head looks from the final position of an IOI prompt
//
// "…, Bob gave a rose to" → " Anna": name-mover heads attend from the final position to the indirect
// object (IO), S-inhibition heads to the second subject mention (S2), and induction / duplicate-token
// heads show up on S1 (Wang et al. 2022). The circuit page shows, for every kept head, its attention from
// the final position to those three tokens, averaged over the reference prompts, so a reader can tell the
// roles apart. The pattern is the forward's own (`Model.finalPositionAttention`, hook_pattern at the last
// query row) on the full, un-ablated model.

/// Token positions of the names in one IOI prompt.
public struct IOINamePositions: Equatable, Sendable {
    public var io: Int, s1: Int, s2: Int
    public init(io: Int, s1: Int, s2: Int) { self.io = io; self.s1 = s1; self.s2 = s2 }

    /// From the name token ids: IO = the answer id (exactly once), S1 and S2 = the two occurrences of the
    /// distractor id, all before the final position. nil for a prompt that is not IOI-shaped (another
    /// task, a name at the very start without its leading space, a name repeated).
    public init?(_ item: TaskItem) {
        guard item.kind == .ioi, item.answerIds.count == 1, item.distractorIds.count == 1 else { return nil }
        let body = item.tokens.dropLast()
        let io = body.indices.filter { body[$0] == item.answerIds[0] }
        let s = body.indices.filter { body[$0] == item.distractorIds[0] }
        guard io.count == 1, s.count == 2 else { return nil }
        self.init(io: io[0], s1: s[0], s2: s[1])
    }
}

/// One head's mean attention (± SEM over prompts) from the final position to IO, S1 and S2.
public struct IOIHeadAttentionRow: Sendable {
    public var head: CircuitUnit
    public var io: MeanSEM, s1: MeanSEM, s2: MeanSEM
}

public struct IOIHeadAttention: Sendable {
    public var rows: [IOIHeadAttentionRow]
    /// Prompts averaged over, and those skipped because their names could not be located.
    public var prompts: Int
    public var skipped: Int

    /// Why no table can be shown for `items`, or nil when it can.
    public static func unavailableReason(_ items: [TaskItem]) -> String? {
        if items.isEmpty { return "no reference prompts" }
        if !items.contains(where: { $0.kind == .ioi }) {
            return "the reference prompts are not an IOI task (no \"task\": \"ioi\" records), so there are no IO, S1 and S2 tokens to measure attention to"
        }
        if !items.contains(where: { IOINamePositions($0) != nil }) {
            return "no reference prompt has its IO name exactly once and its S name exactly twice as single tokens"
        }
        return nil
    }

    /// One packed forward of every locatable prompt (in chunks of `chunk`, to bound memory), then the means.
    public static func measure(model: Model, items: [TaskItem], heads: [CircuitUnit], chunk: Int = 64) -> IOIHeadAttention {
        let located = items.compactMap { item in IOINamePositions(item).map { (item.tokens, $0) } }
        var io = [[Double]](repeating: [], count: heads.count), s1 = io, s2 = io
        for start in stride(from: 0, to: located.count, by: max(chunk, 1)) {
            let part = located[start..<min(start + max(chunk, 1), located.count)]
            let a = model.finalPositionAttention(part.map(\.0))
            for (i, (_, pos)) in part.enumerated() {
                for (k, h) in heads.enumerated() {
                    io[k].append(Double(a.weight(sequence: i, layer: h.layer, head: h.index, key: pos.io)))
                    s1[k].append(Double(a.weight(sequence: i, layer: h.layer, head: h.index, key: pos.s1)))
                    s2[k].append(Double(a.weight(sequence: i, layer: h.layer, head: h.index, key: pos.s2)))
                }
            }
        }
        let rows = heads.indices.map { IOIHeadAttentionRow(head: heads[$0], io: MeanSEM(io[$0]), s1: MeanSEM(s1[$0]), s2: MeanSEM(s2[$0])) }
        return IOIHeadAttention(rows: rows, prompts: located.count, skipped: items.count - located.count)
    }
}
