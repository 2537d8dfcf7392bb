import Foundation

// MARK: - Perplexity
//
// Two protocols, always reported with what was used:
// - wanda (default; Wanda/SparseGPT `eval_ppl`): tokenize the joined text once,
//   cut `numel / seqlen` non-overlapping windows, mean cross-entropy over every
//   shifted position of every window, exp.
// - llamacpp (`llama-perplexity`): same windows, but only the second half of
//   each window is scored (`first = n_ctx/2`), and the window's first token is
//   replaced by BOS when the tokenizer uses one.

public enum PerplexityProtocol: String, CaseIterable, Sendable {
    case wanda, llamacpp
}

public struct PerplexityResult: Codable, Equatable, Sendable {
    public var perplexity: Double
    public var meanNLL: Double
    public var tokens: Int          // tokens in the whole text
    public var windows: Int         // windows evaluated
    public var scored: Int          // predictions scored
    public var seqlen: Int
    public var `protocol`: String
    public var seconds: Double
}

/// WikiText-2 raw lines → the text Wanda/SparseGPT evaluate, `"\n\n".join(test["text"])`
/// over HF `wikitext-2-raw-v1`. Every non-blank row of that split ends with "\n"
/// (`" = Robert Boulter = \n"`), and the join keeps it, so each non-empty line
/// (after CRLF → LF) is rebuilt as line + "\n" before joining with "\n\n".
/// What cannot be rebuilt: the shared `wiki.test.raw` has no blank rows (HF has
/// 1,467 empty rows among its 4,358, each adding one more "\n\n" to the join), and
/// their positions are not recorded in the file. The text therefore differs from
/// HF's by those separators only (see PerplexityTests for the token counts).
public func joinRawTextRows(_ raw: String) -> String {
    let lf = raw.replacingOccurrences(of: "\r\n", with: "\n")
    return lf.split(separator: "\n", omittingEmptySubsequences: true).map { $0 + "\n" }.joined(separator: "\n\n")
}

extension Model {
    /// Rows of logits `nll` makes at a time: [256, vocab] is 50 MB for SmolLM2, never [T, vocab].
    public static let nllBlockRows = 256

    /// A block `nll` can make its logits in, [nllBlockRows, vocab]: `perplexity` makes one for all
    /// its windows. Above glibc's 32 MB mmap ceiling every fresh block is a new mapping, so each
    /// window would otherwise map, fault in and zero 50 MB twice (at seqlen 512).
    public func nllLogitBlock() -> Buffer { Buffer(uninitialized: Model.nllBlockRows * config.vocabSize) }

    /// Mean NLL of predicting ids[t+1] from ids[0...t] for t in `scored` (a range of positions).
    /// Logits are made `nllBlockRows` rows at a time, into `logitBlock` when given (see `nllLogitBlock`).
    public func nll(window ids: [Int], scored: Range<Int>, logitBlock: Buffer? = nil) -> (sum: Double, count: Int) {
        let cache = KVCache(config: config, capacity: ids.count)
        let h = hidden(tokens: ids, segments: [Segment(rowStart: 0, count: ids.count, pos0: 0, cache: cache)])
        let d = config.dModel, v = config.vocabSize, blockRows = Model.nllBlockRows
        let block = logitBlock ?? Buffer(uninitialized: min(blockRows, scored.count) * v)
        precondition(block.count >= min(blockRows, scored.count) * v, "nll: a logit block of \(block.count) floats is too small")
        let lp = block.p                                                    // [rows, vocab]
        var sum = 0.0, count = 0
        var r0 = scored.lowerBound
        var rowNLL = [Double](repeating: 0, count: blockRows)
        while r0 < scored.upperBound {
            let r1 = min(r0 + blockRows, scored.upperBound)
            let rows = r1 - r0
            h.cptr { logits($0 + r0 * d, rows: rows, into: lp) }           // [rows, vocab]
            // Log-softmax of each row, rows split over the worker team (after the
            // logits GEMM, so never nested with BLAS's own split); per-row results
            // are summed in row order, so the total does not depend on the split.
            rowNLL.withUnsafeMutableBufferPointer { out in
                let parts = rows >= 16 ? BLAS.ways : 1
                WorkerTeam.shared.run(parts: parts) { k in
                    for i in (rows * k / parts)..<(rows * (k + 1) / parts) {
                        let row = lp + i * v
                        out[i] = logSumExp(row, v) - Double(row[ids[r0 + i + 1]])
                    }
                }
            }
            for i in 0..<rows { sum += rowNLL[i] }
            count += rows
            r0 = r1
        }
        return (sum, count)
    }

    /// Perplexity of a token stream under a protocol. `maxWindows` caps the work. `recorded` are the (NLL sum, count)
    /// of the first windows from an interrupted evaluation (taken, not recomputed; added in window order as computed
    /// ones are, so the result has the same bits); `window` receives each newly computed window's values.
    /// `logitBlock` (from `nllLogitBlock`) lets a caller that evaluates many times (a fault campaign) keep one block
    /// for all its evaluations instead of mapping and zeroing a fresh 50 MB per call; the values are the same.
    public func perplexity(tokens: [Int], seqlen: Int, protocol proto: PerplexityProtocol, maxWindows: Int? = nil,
                           bos: Int? = nil, progress: Bool = false, recorded: [(sum: Double, count: Int)] = [],
                           logitBlock: Buffer? = nil,
                           window: (Int, Double, Int) throws -> Void = { _, _, _ in }) throws -> PerplexityResult {
        guard seqlen >= 2 else { throw ModelError.badConfig(file: "--seqlen", key: "seqlen", reason: "must be at least 2") }
        guard seqlen <= config.maxSeqLen else { throw ModelError.promptTooLong(tokens: seqlen, limit: config.maxSeqLen, origin: contextOrigin) }
        // A tokenizer that does not belong to the model yields ids past the embedding.
        for t in tokens where t < 0 || t >= config.vocabSize { throw ModelError.invalidToken(id: t, vocabSize: config.vocabSize) }
        if let bos, bos < 0 || bos >= config.vocabSize { throw ModelError.invalidToken(id: bos, vocabSize: config.vocabSize) }
        var windows = tokens.count / seqlen
        if let maxWindows { windows = min(windows, maxWindows) }
        guard windows > 0 else {
            throw ModelError.badConfig(file: "--text", key: "tokens", reason: "\(tokens.count) tokens are fewer than one window of \(seqlen)")
        }
        let t0 = Date()
        let bar = ProgressLine(recorded.isEmpty ? "perplexity" : "perplexity (resumed at window \(min(recorded.count, windows)))",
                               total: windows - min(recorded.count, windows), unit: "windows", enabled: progress && windows > recorded.count)
        var sum = 0.0, count = 0
        let block = logitBlock ?? nllLogitBlock()                           // one for every window
        for w in 0..<windows {
            if w < recorded.count {
                sum += recorded[w].sum; count += recorded[w].count
                continue
            }
            var ids = Array(tokens[(w * seqlen)..<((w + 1) * seqlen)])
            let scored: Range<Int>
            switch proto {
            case .wanda: scored = 0..<(seqlen - 1)
            case .llamacpp:
                if let bos { ids[0] = bos }
                scored = (seqlen / 2)..<(seqlen - 1)
            }
            let r = nll(window: ids, scored: scored, logitBlock: block)
            sum += r.sum; count += r.count
            try window(w, r.sum, r.count)
            bar.update(w + 1 - min(recorded.count, windows), tokens: (w + 1 - min(recorded.count, windows)) * seqlen)
        }
        let mean = sum / Double(count)
        return PerplexityResult(perplexity: exp(mean), meanNLL: mean, tokens: tokens.count, windows: windows, scored: count,
                                seqlen: seqlen, protocol: proto.rawValue, seconds: Date().timeIntervalSince(t0))
    }
}
