import Foundation

// MARK: - hook_pattern at the final position
//
// Circuit reports show, for every kept head, where the last position (the one whose logits are
// scored) looks: name movers attend to the indirect object, S-inhibition heads to the subject.
// TransformerLens reads this from `blocks.L.attn.hook_pattern[:, h, -1, :]`. Here the attention
// kernel itself writes the probabilities of each sequence's final query row while the ordinary
// forward runs (`BlockBuffers.lastRowPattern`), so the numbers are the ones the model multiplies V
// by — not a second implementation of softmax(QKᵀ/√d) that could drift from the forward.

/// Attention probabilities of the final position of each sequence, every layer and head.
public struct FinalPositionAttention: Sendable {
    public let layers: Int
    public let heads: Int
    /// Token count of each sequence.
    public let lengths: [Int]
    /// Per sequence: [layers, heads, length] — row (l, h) sums to 1 over the sequence's keys.
    public let patterns: [[Float]]

    /// Weight the final position of `sequence` puts on `key` in head (layer, head).
    public func weight(sequence s: Int, layer l: Int, head h: Int, key: Int) -> Float {
        patterns[s][(l * heads + h) * lengths[s] + key]
    }
}

extension Model {
    /// One packed forward of `batch` (each sequence attends only to itself, as in `forward(batch:)`),
    /// keeping only the final query row's attention pattern of every head. No logits are computed.
    public func finalPositionAttention(_ batch: [[Int]]) -> FinalPositionAttention {
        let c = config
        var tokens: [Int] = [], segments: [Segment] = []
        for seq in batch {
            precondition(!seq.isEmpty, "finalPositionAttention: empty sequence")
            segments.append(Segment(rowStart: tokens.count, count: seq.count, pos0: 0, cache: KVCache(config: c, capacity: seq.count)))
            tokens += seq
        }
        let stride = batch.map(\.count).max() ?? 0
        var out = batch.map { zeros(c.nLayers * c.nHeads * $0.count) }     // per sequence [layers, heads, T]
        guard !batch.isEmpty else { return FinalPositionAttention(layers: c.nLayers, heads: c.nHeads, lengths: [], patterns: []) }
        var x = embedRows(tokens, segments: segments)                          // [N, d]
        let buffers = BlockBuffers(config: c, rows: tokens.count, hooks: .mlpPost, sharedPost: nil)
        var pattern = zeros(segments.count * c.nHeads * stride)                 // [segments, heads, stride]
        for l in 0..<c.nLayers {
            pattern.ptr { p in
                buffers.lastRowPattern = p
                buffers.lastRowPatternStride = stride
                runBlock(l, &x, segments: segments, buffers: buffers)
                buffers.lastRowPattern = nil
            }
            for (i, s) in segments.enumerated() {
                let t = s.count
                for h in 0..<c.nHeads {
                    let src = (i * c.nHeads + h) * stride, dst = (l * c.nHeads + h) * t
                    for j in 0..<t { out[i][dst + j] = pattern[src + j] }
                }
            }
        }
        return FinalPositionAttention(layers: c.nLayers, heads: c.nHeads, lengths: batch.map(\.count), patterns: out)
    }
}
