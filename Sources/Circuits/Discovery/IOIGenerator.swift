import Foundation
import Tokenize
import Transformer

// MARK: - IOI prompt sets
//
// ACDC's recipe (ioi_dataset.py): pick a template, two distinct names (IO = [A],
// S = [B]), a place and an object; the prompt is the filled template up to
// (not including) the final " [A]", so the next token should be " IO" and the
// competing one " S". The corrupted prompt is ACDC's "ABC" counterfactual: the
// three name occurrences of the prompt replaced, in order, by three further
// distinct names (none equal to IO or S), same place and object — it keeps the
// syntax but removes the information the task needs. Positions must line up for
// patching, so the corrupted prompt must have the clean one's token count;
// names are redrawn until it does.
//
// Only names that are one token with a leading space in the model's tokenizer
// are used (the answer must be a single next token). Which prompts a seed may
// emit is fixed by `PromptPartition`, so different seeds never share a prompt.

/// One generated IOI prompt.
public struct IOIPrompt: Equatable, Sendable {
    public var template: IOITemplate
    public var io: String, s: String
    public var place: String?, object: String?
    public var text: String
    public var corrupted: String
    public var corruptedNames: [String]
    public var answerId: Int, distractorId: Int

    /// The JSONL record (`workbench tasks ioi`). `target_id`/`contrast_id` repeat the ids in the
    /// fields `attribute --prompts` reads, so the file explains logit(IO) − logit(S) there unchanged.
    public var record: TaskRecord {
        var f: [(key: String, value: JSONValue)] = [
            ("task", .string(TaskKind.ioi.rawValue)), ("template", .string(template.id)), ("text", .string(text)),
            ("answer", .string(" " + io)), ("distractor", .string(" " + s)),
            ("answer_id", .int(answerId)), ("distractor_id", .int(distractorId)),
            ("corrupted", .string(corrupted)), ("target_id", .int(answerId)), ("contrast_id", .int(distractorId)),
            ("io", .string(io)), ("s", .string(s)),
        ]
        if let place { f.append(("place", .string(place))) }
        if let object { f.append(("object", .string(object))) }
        f.append(("corrupted_names", .array(corruptedNames.map { .string($0) })))
        return TaskRecord(f)
    }
}

public struct IOIGeneration: Sendable {
    public var prompts: [IOIPrompt]
    public var keptNames: [String]
    public var droppedNames: [String]
    /// Distinct prompts the selected templates and kept names allow (all seeds together).
    public var spaceSize: Int
}

public enum IOIGenerator {
    /// Names that are one token with a leading space, and the rest.
    public static func singleTokenNames(_ names: [String], tokenizer: Tokenizer) throws -> (kept: [(String, Int)], dropped: [String]) {
        var kept: [(String, Int)] = [], dropped: [String] = []
        for n in names {
            let ids = try tokenizer.encode(" " + n, addBOS: false)
            if ids.count == 1 { kept.append((n, ids[0])) } else { dropped.append(n) }
        }
        return (kept, dropped)
    }

    /// Fills the prompt part of `template`: the k-th name slot ([A] or [B], in text order) gets `name(slot, k)`.
    static func fill(_ template: IOITemplate, place: String?, object: String?, name: (String, Int) -> String) -> String {
        var out = "", rest = template.prompt[...], k = 0
        while let r = rest.range(of: "[") {
            out += rest[..<r.lowerBound]
            let tail = rest[r.lowerBound...]
            if tail.hasPrefix("[A]") || tail.hasPrefix("[B]") {
                out += name(String(tail.prefix(3)), k); k += 1; rest = tail.dropFirst(3)
            } else if tail.hasPrefix("[PLACE]") {
                out += place ?? ""; rest = tail.dropFirst(7)
            } else if tail.hasPrefix("[OBJECT]") {
                out += object ?? ""; rest = tail.dropFirst(8)
            } else {
                out += "["; rest = tail.dropFirst()
            }
        }
        return out + rest
    }

    public static func generate(assets: IOIAssets, templates: [IOITemplate], tokenizer: Tokenizer, n: Int,
                                seed: Int) throws -> IOIGeneration {
        try PromptPartition.check(seed: seed)
        let (kept, dropped) = try singleTokenNames(assets.names, tokenizer: tokenizer)
        guard kept.count >= 5 else { throw TaskError.tooFewNames(kept: kept.count, dropped: dropped) }
        let k = kept.count
        let space = templates.reduce(0) { acc, t in
            acc + k * (k - 1) * (t.usesPlace ? assets.places.count : 1) * (t.usesObject ? assets.objects.count : 1)
        }
        let (out, _) = try PromptPartition.draw(task: "ioi", seed: seed, n: n, spaceSize: space) { rng in
            let t = templates[rng.index(templates.count)]
            let a = rng.index(k)
            var b = rng.index(k - 1); if b >= a { b += 1 }
            let place = t.usesPlace ? assets.places[rng.index(assets.places.count)] : nil
            let object = t.usesObject ? assets.objects[rng.index(assets.objects.count)] : nil
            let (io, ioId) = kept[a], (s, sId) = kept[b]
            return (key: "ioi|\(t.id)|\(io)|\(s)|\(place ?? "-")|\(object ?? "-")", build: { rng -> IOIPrompt? in
                let text = fill(t, place: place, object: object) { slot, _ in slot == "[A]" ? io : s }
                let length = try tokenizer.encode(text).count
                var corrupted: String? = nil, names: [String] = []
                let tries = 100
                for _ in 0..<tries {
                    var pool = Array(0..<k).filter { $0 != a && $0 != b }
                    names = (0..<3).map { _ in kept[pool.remove(at: rng.index(pool.count))].0 }
                    let c = fill(t, place: place, object: object) { _, i in names[i] }
                    if try tokenizer.encode(c).count == length { corrupted = c; break }
                }
                guard let corrupted else { throw TaskError.noEqualLengthCorruption(text: text, tries: tries) }
                return IOIPrompt(template: t, io: io, s: s, place: place, object: object, text: text, corrupted: corrupted,
                                 corruptedNames: names, answerId: ioId, distractorId: sId)
            })
        }
        return IOIGeneration(prompts: out, keptNames: kept.map(\.0), droppedNames: dropped, spaceSize: space)
    }
}
