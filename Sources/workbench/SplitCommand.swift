import Circuits
import Foundation

// MARK: - split

enum SplitCommand: Command {
    enum Options {
        static let prompts = Option<String>.path("prompts", "file", help: "Prompt file (.txt or .jsonl; lines copied verbatim)")
        static let fraction = Option<Double>("heldout-fraction", "f", default: 0.5, help: "Share of the lines that go to the held-out part")
        static let seed = Option<Int>("seed", "s", default: 0, min: 0, help: "Shuffle seed (the same seed gives the same split everywhere)")
        static let reference = Option<String>.path("reference", "file", help: "Output: the reference part (attribute / correct on it)")
        static let heldout = Option<String>.path("heldout", "file", help: "Output: the held-out part (evaluate on it)")
    }
    static let spec = CommandSpec(
        name: "split", abstract: "Split a prompt file into seeded reference and held-out parts.",
        usage: "workbench split --prompts <file> --reference <file> --heldout <file> [--heldout-fraction 0.5] [--seed 0]",
        options: [Options.prompts, Options.fraction, Options.seed, Options.reference, Options.heldout],
        discussion: "Blank lines are dropped; each part keeps the file's order. Duplicate lines are counted (they leak across parts).")

    static func run(_ args: Args) throws {
        let s: PromptSplit
        do {
            s = try PromptSplit.write(prompts: try args[Options.prompts], heldoutFraction: try args[Options.fraction],
                                      seed: UInt64(try args[Options.seed]), reference: try args[Options.reference], heldout: try args[Options.heldout])
        } catch let e as PruneError where e.isUsageError { throw UsageError(message: e.localizedDescription) }
        Out.print("reference: \(s.reference.count) lines → \(try args[Options.reference])")
        Out.print("held-out: \(s.heldout.count) lines → \(try args[Options.heldout])")
        if s.duplicates > 0 { Out.err("warning: \(s.duplicates) distinct line(s) occur more than once and may fall in both parts") }
    }
}
