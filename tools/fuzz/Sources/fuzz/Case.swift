import Foundation

/// One fuzz run: the files to lay out in a fresh folder, the command line (paths
/// relative to that folder) and what the run is allowed to blame.
struct Case {
    enum Special: String, Codable { case fifo, devnull, directory }
    enum Stdout: String, Codable { case capture, devFull = "dev-full", closed, brokenPipe = "broken-pipe" }

    var format: String
    var seed: String                      // seed id ("synthetic/hf", "stories260K/hf", …)
    var mutation: String                  // human-readable description
    var files: [String: Data]             // relative path → content; every one is an input
    var special: [String: Special] = [:]  // relative path → non-regular node created for the run
    var argv: [String]
    var mutated: [String] = []            // relative paths of the mutated files (for minimising)
    var base: [String: Data] = [:]        // the seed version of each mutated file
    var culprits: [String] = []           // a clear error names one of these
    var mayRunLong = false                // the arguments ask for legitimately long work
    var stdout: Stdout = .capture

    /// What a clear `Error:` line may name: the culprits, the mutated files' names and
    /// any flag given on the command line.
    var acceptableNames: [String] {
        var names = culprits.filter { !$0.isEmpty }
        for m in mutated { names.append((m as NSString).lastPathComponent) }
        names += argv.filter { $0.hasPrefix("--") }
        return names
    }

    /// Input paths exactly as the command line gives them to a flag (`--model m`, `--prompts p.txt`,
    /// `--model=m`): a message naming one names the file in the user's own words. Only values that
    /// are inputs of the run (a laid-out file or node, or the folder holding some) count, so an
    /// option value such as `0.5` never does. Matched as a whole token (`Classifier.namesToken`).
    var inputPathValues: [String] {
        var values: [String] = []
        for (i, a) in argv.enumerated() where a.hasPrefix("--") {
            if let eq = a.firstIndex(of: "=") { values.append(String(a[a.index(after: eq)...])) }
            else if i + 1 < argv.count, !argv[i + 1].hasPrefix("--") { values.append(argv[i + 1]) }
        }
        return values.filter { v in
            !v.isEmpty && (files[v] != nil || special[v] != nil || files.keys.contains { $0.hasPrefix(v + "/") })
        }
    }
}

/// The classes of the issue: clean / crash / hang / unclear, plus `long` (a timeout on
/// work the arguments legitimately asked for), `modified` (an input changed or a node
/// was replaced) and `leftover` (a temporary file left behind by a run that ended).
enum Outcome: String, CaseIterable, Codable {
    case clean, crash, hang, long, unclear, modified, leftover
}

struct RunResult {
    var status: Int32 = 0                // exit code, or signal number when `signaled`
    var signaled = false
    var timedOut = false
    var seconds = 0.0
    var stdout = Data()
    var stderr = Data()
    var inputProblems: [String] = []     // data-safety violations
    var leftovers: [String] = []
    var stderrSize = 0
    var launchFailed = false             // the harness itself could not start the process

    var statusText: String { timedOut ? "timeout" : signaled ? "signal \(status)" : "rc \(status)" }
}

struct Verdict {
    var outcome: Outcome
    var reason: String
    /// Groups equal failures ("crash: signal 11 in sparsity" …) so each is minimised once.
    var signature: String
}
