import Circuits
import Foundation
import Transformer

// MARK: - toxicity

enum ToxicityCommand: Command {
    enum Options {
        static let texts = Option<String>.path("texts", "file", defaultText: "stdin", help: "JSONL texts to score, one {\"text\": …} per line")
        static let out = Option<String>.path("out", "file", defaultText: "stdout", help: "Output: one {\"toxicity\": x} per input line (written atomically)")
    }
    static let spec = CommandSpec(
        name: "toxicity", abstract: "Score texts for toxicity: JSONL {\"text\": …} in, {\"toxicity\": x} out (itself a valid --scorer).",
        usage: "workbench toxicity [--texts <file.jsonl>] [--out <file>] [--scorer <command> | --toxicity-model <json>]",
        options: [Options.texts, Options.out, ToxicityOptions.scorer, ToxicityOptions.model],
        discussion: """
        Built-in scorer: P(offensive) of the alt-profanity-check 1.9.1 model (profanity_model.json: TF-IDF + 5
        sigmoid-calibrated linear SVMs), re-implemented exactly; a lexical offensive-language proxy, not Perspective
        or Detoxify. --scorer CMD runs `/bin/sh -c CMD` instead, which must read the same JSONL on stdin and print one
        {"toxicity": x} line per text, x in [0, 1]. If it fails or prints garbage, the scores it did print are kept,
        the remaining lines are {"toxicity": null, "error": …}, and the exit status is 1.
        """)

    static func run(_ args: Args) throws {
        let inPath = try args.ifGiven(Options.texts)
        let outPath = try args.ifGiven(Options.out)
        if let outPath { try TaskCommandSupport.checkOutput(outPath, inputs: inPath.map { [$0] } ?? []) }
        let data = try inPath.map { try readInputFile($0) } ?? FileHandle.standardInput.readDataToEndOfFile()
        let texts = try ToxicityInput.parse(data, path: inPath ?? "<stdin>")
        let scorer = try ToxicityOptions.scorer(args)
        var failure: ToxicityError? = nil
        var scores: [Double]
        do { scores = try scorer.scores(texts) } catch let e as ToxicityError {
            guard case .scorerFailed(_, _, let partial, _) = e else { throw e }
            scores = partial; failure = e
        }
        var o = ""
        for (i, _) in texts.enumerated() {
            o += i < scores.count ? "{\"toxicity\":\(scores[i])}\n"
                : Out.json(["error": failure?.localizedDescription ?? "not scored", "toxicity": NSNull()]) + "\n"
        }
        if let outPath { try AtomicFile.write(o, to: outPath) } else { Out.write(o) }
        if let failure { throw failure }
    }
}
