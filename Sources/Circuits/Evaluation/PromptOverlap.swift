import Foundation
import Transformer

// MARK: - Overlap between prompt sets
//
// A held-out number is only held out if its prompts were not among the ones the scores came from. Sets are
// compared by prompt text exactly as the files hold it (what the model sees); a prompt listed twice counts once.
// `correct` compares --general with --undesired; `evaluate` compares its prompts with every set a correction
// was scored on (or a --reference file). Both warn on stderr and record the count in their JSON.

public struct PromptOverlap: Codable, Equatable, Sendable {
    /// The other set's file.
    public var set: String
    /// What the other set is ("undesired (scored)", "general (scored)", "reference").
    public var role: String
    /// Distinct prompts of the evaluated set.
    public var compared: Int
    /// How many of them also appear in the other set.
    public var shared: Int

    public init(set: String, role: String, compared: Int, shared: Int) {
        self.set = set; self.role = role; self.compared = compared; self.shared = shared
    }

    /// Distinct texts of `a` that also appear in `b`.
    public static func count(_ a: [String], _ b: [String]) -> Int {
        Set(a).intersection(b).count
    }

    /// `prompts` against the first `limit` text prompts of `file` (nil = all).
    public static func compare(_ prompts: [String], with file: String, role: String, limit: Int? = nil) throws -> PromptOverlap {
        var other = try PromptSet.load(file).entries.compactMap(\.text)
        if let limit { other = Array(other.prefix(limit)) }
        return PromptOverlap(set: file, role: role, compared: Set(prompts).count, shared: count(prompts, other))
    }

    /// The stderr line (nil when nothing is shared).
    public var warning: String? {
        guard shared > 0 else { return nil }
        return "warning: \(shared) of the \(compared) evaluated prompts also appear in the \(role) set \(set): "
            + "numbers on them are not held out"
    }
}
