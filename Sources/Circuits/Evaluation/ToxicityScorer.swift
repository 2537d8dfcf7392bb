import Foundation
import Tokenize
import Transformer

// MARK: - Toxicity scorers: the built-in proxy, or any command speaking JSONL
//
// The scorer protocol is the one `workbench toxicity` itself speaks, so the built-in scorer is a valid
// external one and Detoxify/Perspective users plug theirs in: one JSON object `{"text": …}` per line on
// stdin, one `{"toxicity": x}` per line on stdout, in order, x a number in [0, 1]. A command that exits
// non-zero, prints too few lines or prints garbage is an error that keeps the scores it did print
// (`ToxicityError.scorerFailed.partial`): reports mark them partial instead of losing them.

public protocol ToxicityScorer {
    /// What scored (printed in every report).
    var name: String { get }
    /// What the number means and does not mean.
    var disclaimer: String { get }
    /// One score per text, in order.
    func scores(_ texts: [String]) throws -> [Double]
}

public enum ToxicityError: LocalizedError, Equatable {
    case badModel(path: String, reason: String)
    case badInput(path: String, line: Int, reason: String)
    case emptyInput(path: String)
    /// The external scorer failed after `partial.count` of `total` texts (those scores are kept).
    case scorerFailed(command: String, reason: String, partial: [Double], total: Int)
    /// Toxicity was asked for (`EvaluationSettings.metrics`) but no scorer was given.
    case noScorer

    public var errorDescription: String? {
        switch self {
        case .badModel(let p, let r): return "\(p): not a usable toxicity model: \(r)"
        case .badInput(let p, let l, let r): return "\(p):\(l): \(r)"
        case .emptyInput(let p): return "\(p): no texts to score"
        case .scorerFailed(let c, let r, let partial, let total):
            return "scorer command '\(QuotedName.safe(c))' failed after \(partial.count) of \(total) texts: \(r)"
        case .noScorer: return "the toxicity metric needs a scorer (the built-in model or --scorer)"
        }
    }
}

/// Texts to score as JSONL records `{"text": …}` (other keys ignored); errors name the line.
public enum ToxicityInput {
    public static func parse(_ data: Data, path: String) throws -> [String] {
        var texts: [String] = []
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        for (i, raw) in lines.enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.allSatisfy(\.isWhitespace) { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed]) as? [String: Any] else {
                throw ToxicityError.badInput(path: path, line: i + 1, reason: "not a JSON object (expected {\"text\": \"…\"})")
            }
            guard let t = obj["text"] as? String else {
                throw ToxicityError.badInput(path: path, line: i + 1, reason: "no string field \"text\"")
            }
            texts.append(t)
        }
        return texts
    }

    /// `{"text": …}` lines (what an external scorer reads).
    public static func jsonl(_ texts: [String]) -> String {
        texts.map { line(["text": $0]) + "\n" }.joined()
    }

    /// One compact JSON line with sorted keys.
    static func line(_ obj: [String: Any]) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8), as: UTF8.self)
    }
}

/// An external scorer: `/bin/sh -c COMMAND`, JSONL in and out (see above).
public struct CommandScorer: ToxicityScorer {
    public let command: String
    public init(command: String) { self.command = command }
    public var name: String { "external command '\(command)'" }
    public var disclaimer: String { "toxicity = the {\"toxicity\": …} values printed by the external scorer command '\(command)'" }

    public func scores(_ texts: [String]) throws -> [Double] {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("workbench-scorer-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let inURL = dir.appendingPathComponent("in.jsonl"), outURL = dir.appendingPathComponent("out.jsonl"), errURL = dir.appendingPathComponent("err")
        try Data(ToxicityInput.jsonl(texts).utf8).write(to: inURL)
        // The scorer's stdout/stderr go to empty files that must exist before FileHandle can open them.
        for url in [outURL, errURL] where !fm.createFile(atPath: url.path, contents: nil) {
            throw ToxicityError.scorerFailed(command: command, reason: "cannot create the temporary file \(url.path)", partial: [], total: texts.count)
        }
        // Files, not pipes: a scorer that reads everything before writing cannot deadlock against us.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.standardInput = try FileHandle(forReadingFrom: inURL)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch {
            throw ToxicityError.scorerFailed(command: command, reason: "cannot start /bin/sh: \(error.localizedDescription)", partial: [], total: texts.count)
        }
        p.waitUntilExit()
        try? out.close(); try? err.close()
        let stdout = (try? Data(contentsOf: outURL)) ?? Data()
        let stderrTail = String(String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self).suffix(300))
        let (scores, bad) = Self.parse(stdout)
        let status = p.terminationReason == .uncaughtSignal ? "was killed by signal \(p.terminationStatus)"
            : p.terminationStatus != 0 ? "exited with status \(p.terminationStatus)" : nil
        let tail = stderrTail.isEmpty ? "" : "; its stderr ends: \(QuotedName.safe(stderrTail.trimmingCharacters(in: .whitespacesAndNewlines)))"
        let kept = Array(scores.prefix(texts.count))
        if let status { throw ToxicityError.scorerFailed(command: command, reason: status + tail, partial: kept, total: texts.count) }
        if let bad { throw ToxicityError.scorerFailed(command: command, reason: bad + tail, partial: kept, total: texts.count) }
        guard scores.count == texts.count else {
            throw ToxicityError.scorerFailed(command: command, reason: "printed \(scores.count) score lines for \(texts.count) texts" + tail,
                                             partial: kept, total: texts.count)
        }
        return scores
    }

    struct ScoreLine: Decodable { var toxicity: Double }

    /// The valid `{"toxicity": x}` lines up to the first bad one, and what was wrong with it.
    static func parse(_ data: Data) -> (scores: [Double], bad: String?) {
        var scores: [Double] = []
        var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for (i, line) in lines.enumerated() {
            guard let v = (try? JSONDecoder().decode(ScoreLine.self, from: Data(line.utf8)))?.toxicity else {
                return (scores, "output line \(i + 1) is not {\"toxicity\": <number>}: '\(QuotedName.safe(String(line.prefix(80))))'")
            }
            guard v.isFinite, v >= 0, v <= 1 else { return (scores, "output line \(i + 1): toxicity \(v) is not in [0, 1]") }
            scores.append(v)
        }
        return (scores, nil)
    }
}
