import Foundation
import Tokenize
import Transformer

// MARK: - Greater-than prompt sets
//
// Hanna et al. (2023): "The {noun} lasted from the year {XX}{YY} to the year {XX}",
// XX a century in 11…17, YY in 02…98; a model doing the task puts its
// probability on years after XXYY. Metric: probability mass on the year tokens
// greater than YY minus the mass on those smaller (the sets come from the
// tokenizer, `YearTargets`). The corrupted prompt uses the start year XX01, as
// theirs does (every later year is "greater", so the task signal is gone).
// The nouns are this project's own list of things that last a span of years.
// Seeds own disjoint parts of the prompt space exactly as for IOI (`PromptPartition`).

public struct GreaterThanPrompt: Equatable, Sendable {
    public var noun: String
    public var century: Int        // XX
    public var startSuffix: Int    // YY
    public var text: String
    public var corrupted: String
    public var greaterIds: [Int]
    public var smallerIds: [Int]

    public var record: TaskRecord {
        TaskRecord([
            ("task", .string(TaskKind.greaterThan.rawValue)), ("template", .string("greater-than")), ("text", .string(text)),
            ("answer_ids", .array(greaterIds.map { .int($0) })), ("distractor_ids", .array(smallerIds.map { .int($0) })),
            ("corrupted", .string(corrupted)), ("start_year", .int(century * 100 + startSuffix)), ("noun", .string(noun)),
        ])
    }
}

public struct GreaterThanGeneration: Sendable {
    public var prompts: [GreaterThanPrompt]
    /// Keys whose year sets were empty in this tokenizer (e.g. YY 02…09 under per-digit splitting) or whose
    /// corrupted prompt had another length; they are never emitted.
    public var skippedKeys: Int
    public var spaceSize: Int
}

public enum GreaterThanGenerator {
    public static let nouns = [
        "war", "siege", "strike", "expedition", "reign", "drought", "famine", "campaign", "journey", "occupation",
        "rebellion", "crusade", "dispute", "treaty", "alliance", "conflict", "trial", "project", "marriage", "voyage",
        "plague", "revolt", "partnership", "embargo", "festival", "construction", "exile", "truce",
    ]
    public static let centuries = Array(11...17)
    public static let suffixes = Array(2...98)

    public static func text(noun: String, century: Int, suffix: Int) -> String {
        "The \(noun) lasted from the year \(century)\(String(format: "%02d", suffix)) to the year \(century)"
    }

    public static func generate(tokenizer: Tokenizer, n: Int, seed: Int) throws -> GreaterThanGeneration {
        let space = nouns.count * centuries.count * suffixes.count
        let (out, skipped) = try PromptPartition.draw(task: "greater-than", seed: seed, n: n, spaceSize: space) { rng in
            let noun = nouns[rng.index(nouns.count)]
            let xx = centuries[rng.index(centuries.count)]
            let yy = suffixes[rng.index(suffixes.count)]
            return (key: "greater-than|\(noun)|\(xx)|\(yy)", build: { _ -> GreaterThanPrompt? in
                let t = text(noun: noun, century: xx, suffix: yy)
                let c = text(noun: noun, century: xx, suffix: 1)
                let loc = SourceLocation(file: "greater-than", line: 0)
                guard let sets = try? YearTargets.sets(tokenizer: tokenizer, prompt: t, startSuffix: yy, at: loc),
                      try tokenizer.encode(c).count == tokenizer.encode(t).count else { return nil }
                return GreaterThanPrompt(noun: noun, century: xx, startSuffix: yy, text: t, corrupted: c,
                                         greaterIds: sets.greater, smallerIds: sets.smaller)
            })
        }
        return GreaterThanGeneration(prompts: out, skippedKeys: skipped, spaceSize: space)
    }
}
