import Foundation
import Transformer

// MARK: - Reference / held-out splits of a prompt file
//
// Correction and circuits are judged on prompts they were not fitted on. A split is a seeded
// Fisher–Yates shuffle of the file's non-blank lines (SplitMix64 stream: the same seed gives the
// same split on every machine); lines are copied verbatim, in their original order within each part,
// so a JSONL record keeps every field. Duplicate lines are reported: they would leak across parts.

public struct PromptSplit: Equatable {
    public var reference: [String]
    public var heldout: [String]
    /// Distinct lines that occur more than once in the file.
    public var duplicates: Int

    /// Splits `lines` (blank ones dropped) so that `heldout` gets round(n · fraction) of them.
    public static func make(lines: [String], heldoutFraction f: Double, seed: UInt64) throws -> PromptSplit {
        guard f.isFinite, f > 0, f < 1 else { throw PruneError.invalidArgument(option: "heldout-fraction", reason: "\(f) is outside (0, 1)") }
        let kept = lines.filter { !$0.allSatisfy(\.isWhitespace) }
        guard kept.count >= 2 else { throw PruneError.invalidArgument(option: "prompts", reason: "needs at least 2 non-blank lines, found \(kept.count)") }
        let nHeld = min(kept.count - 1, max(1, Int((Double(kept.count) * f).rounded())))
        var order = Array(kept.indices)
        var rng = SeededRNG(seed: seed)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        let held = Set(order.prefix(nHeld))
        var counts: [String: Int] = [:]
        for l in kept { counts[l, default: 0] += 1 }
        return PromptSplit(reference: kept.indices.filter { !held.contains($0) }.map { kept[$0] },
                           heldout: kept.indices.filter { held.contains($0) }.map { kept[$0] },
                           duplicates: counts.values.filter { $0 > 1 }.count)
    }

    /// Reads `path`, splits it and writes both parts atomically (neither over the input).
    public static func write(prompts path: String, heldoutFraction f: Double, seed: UInt64, reference: String, heldout: String) throws -> PromptSplit {
        try OutputGuard.check(output: reference, inputs: [path])
        try OutputGuard.check(output: heldout, inputs: [path, reference])
        let text = String(decoding: try readInputFile(path), as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
        let s = try make(lines: text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init), heldoutFraction: f, seed: seed)
        try AtomicFile.write(s.reference.joined(separator: "\n") + "\n", to: reference)
        try AtomicFile.write(s.heldout.joined(separator: "\n") + "\n", to: heldout)
        return s
    }
}
