import Foundation

/// The issue's classification of a finished run.
enum Classifier {
    /// An error line longer than this, or stderr beyond `maxStderr`, echoes raw input.
    static let maxErrorLine = 1000, maxStderr = 16 * 1024

    static func classify(_ k: Case, _ r: RunResult) -> Verdict {
        let command = k.argv.first ?? "(none)"
        let err = String(decoding: r.stderr, as: UTF8.self)
        let errorLine = err.split(separator: "\n").first { $0.contains("Error:") }.map(String.init)
        if !r.inputProblems.isEmpty {
            return Verdict(outcome: .modified, reason: r.inputProblems.joined(separator: "; "),
                           signature: "modified \(command) \(shape(r.inputProblems[0]))")
        }
        if r.launchFailed {
            return Verdict(outcome: .unclear, reason: "harness could not start the process (argument list too long?)", signature: "harness launch failure")
        }
        if r.timedOut {
            if k.mayRunLong { return Verdict(outcome: .long, reason: "timeout on requested long work", signature: "long \(command)") }
            return Verdict(outcome: .hang, reason: "no exit within the timeout", signature: "hang \(k.format) \(command) \(hangKind(k))")
        }
        if r.signaled {
            // A closed pipe may end the process quietly, as Unix tools do.
            if r.status == SIGPIPE && k.stdout == .brokenPipe { return Verdict(outcome: .clean, reason: "SIGPIPE on a closed pipe", signature: "clean") }
            return Verdict(outcome: .crash, reason: "killed by signal \(r.status)", signature: "crash \(k.format) \(command) signal \(r.status) \(fatalLine(err))")
        }
        if ![0, 1, 64].contains(r.status) || err.contains("Fatal error") || err.contains("Program crashed")
            || err.contains("ERROR: AddressSanitizer") || err.contains("ERROR: LeakSanitizer") || err.contains("runtime error:") {
            return Verdict(outcome: .crash, reason: "exit \(r.status)", signature: "crash \(k.format) \(command) rc \(r.status) \(fatalLine(err))")
        }
        if r.status == 0 {
            if !r.leftovers.isEmpty { return Verdict(outcome: .leftover, reason: "left \(r.leftovers)", signature: "leftover \(command)") }
            return Verdict(outcome: .clean, reason: "exit 0", signature: "clean")
        }
        if !r.leftovers.isEmpty { return Verdict(outcome: .leftover, reason: "left \(r.leftovers)", signature: "leftover \(command)") }
        guard let line = errorLine ?? (r.status == 64 ? err.split(separator: "\n").first { $0.hasPrefix("Usage:") }.map(String.init) : nil) else {
            return Verdict(outcome: .unclear, reason: "exit \(r.status) without an Error: line", signature: "unclear \(k.format) \(command) no Error: line")
        }
        let controls = line.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }
        if r.stderrSize > maxStderr || line.utf8.count > maxErrorLine || controls {
            return Verdict(outcome: .unclear, reason: "error echoes raw bytes (\(r.stderrSize) bytes of stderr, line \(line.utf8.count))",
                           signature: "unclear \(k.format) \(command) raw bytes echoed")
        }
        let names = k.acceptableNames
        if !names.isEmpty && !names.contains(where: { line.contains($0) }) && !k.inputPathValues.contains(where: { namesToken(line, $0) }) {
            return Verdict(outcome: .unclear, reason: "error names none of \(names.prefix(6)): \(line.prefix(200))",
                           signature: "unclear \(k.format) \(command) \(shape(line))")
        }
        return Verdict(outcome: .clean, reason: "exit \(r.status): \(line.prefix(160))", signature: "clean")
    }

    /// Whether `line` holds `value` as a whole token: after the start, a space, `(` or a quote, and
    /// before the end, `:`, a space, `)`, `,` or a quote. So `--model m` is named by "m: tensor … is
    /// missing" but not by "model" or "m/config.json" (another file).
    static func namesToken(_ line: String, _ value: String) -> Bool {
        let before: Set<Character> = [" ", "(", "'", "\""], after: Set<Character> = [":", " ", ")", ",", "'", "\""]
        var from = line.startIndex
        while let r = line.range(of: value, range: from..<line.endIndex) {
            let okBefore = r.lowerBound == line.startIndex || before.contains(line[line.index(before: r.lowerBound)])
            let okAfter = r.upperBound == line.endIndex || after.contains(line[r.upperBound])
            if okBefore && okAfter { return true }
            from = line.index(after: r.lowerBound)
        }
        return false
    }

    /// What kind of input hung: a FIFO or other node, else the mutation with numbers blanked.
    static func hangKind(_ k: Case) -> String {
        if let s = k.special.values.first { return "with a \(s.rawValue)" }
        return shape(String(k.mutation.prefix(40)))
    }

    /// The first "Fatal error" line, with numbers blanked, to group equal crashes.
    static func fatalLine(_ err: String) -> String {
        guard let l = err.split(separator: "\n").first(where: { $0.contains("Fatal error") || $0.contains("Error:") }) else { return "" }
        return shape(String(l.prefix(120)))
    }

    /// Digits and quoted parts blanked: "tensor 'x' has shape [1, 2]" → "tensor '…' has shape [N, N]".
    static func shape(_ s: String) -> String {
        var out = "", inQuote = false
        var lastDigit = false
        for ch in s.prefix(200) {
            if ch == "'" { inQuote.toggle(); out.append(ch); if inQuote { out += "…" }; continue }
            if inQuote { continue }
            if ch.isNumber { if !lastDigit { out += "N" }; lastDigit = true; continue }
            lastDigit = false
            out.append(ch)
        }
        // Drop the run-specific folder prefix of paths.
        return out.replacingOccurrences(of: #"/[^ :]*/work/"#, with: "", options: .regularExpression)
    }
}
