import Foundation
import Tokenize
import Transformer

// MARK: - A small hand-written argument parser (swift-argument-parser conventions)
//
// `workbench <command> [--option value] [--flag]`. Usage errors print
// `Error: …`, `Usage: …` and a help hint on stderr and exit 64 (EX_USAGE);
// runtime errors print `Error: …` and exit 1.

struct CommandSpec {
    let name: String
    let abstract: String
    let usage: String         // e.g. "workbench generate --model <path> --prompt <text> [options]"
    /// In help order; shared groups are spliced in (`ModelOptions.all + …`).
    let options: [any CLIOption]
    var discussion: String = ""
    /// Plain (non-option) arguments the command takes, e.g. merge's parts: placeholder and help; nil = none.
    var positional: (name: String, help: String)? = nil

    static let help = Flag("help", help: "Show help information")

    var helpText: String {
        var s = "OVERVIEW: \(abstract)\n\nUSAGE: \(usage)\n\n"
        if let p = positional { s += "ARGUMENTS:\n" + "  <\(p.name)> ...".padding(toLength: 30, withPad: " ", startingAt: 0) + p.help + ".\n\n" }
        s += "OPTIONS:\n"
        for o in options + [Self.help] {
            let left = "  --\(o.name)" + (o.valueName.map { " <\($0)>" } ?? "")
            s += left.padding(toLength: max(30, left.count + 2), withPad: " ", startingAt: 0) + o.renderedHelp + "\n"
        }
        if !discussion.isEmpty { s += "\n" + discussion + "\n" }
        return s
    }

    func declares(_ o: any CLIOption) -> Bool { options.contains { $0.name == o.name } }
}

struct UsageError: Error {
    let message: String
}

/// The arguments of one command, read through the command's option declarations.
struct Args {
    let spec: CommandSpec
    private var values: [String: String] = [:]
    private var flags: Set<String> = []
    /// Plain arguments, in order (only for a spec with `positional`).
    private(set) var positionals: [String] = []
    let wantsHelp: Bool

    init(_ argv: [String], spec: CommandSpec) throws {
        precondition(Set(spec.options.map(\.name)).count == spec.options.count, "\(spec.name): an option is declared twice")
        self.spec = spec
        var i = 0, help = false
        while i < argv.count {
            let a = argv[i]
            if a == "--help" || a == "-h" { help = true; i += 1; continue }
            guard a.hasPrefix("--") else {
                guard spec.positional != nil else { throw UsageError(message: "Unexpected argument '\(QuotedName.safe(a))'") }
                positionals.append(a); i += 1; continue
            }
            var name = String(a.dropFirst(2))
            var inline: String? = nil
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...]); name = String(name[..<eq])
            }
            guard let opt = spec.options.first(where: { $0.name == name }) else {
                throw UsageError(message: "Unknown option '--\(QuotedName.safe(name))'")
            }
            if let valueName = opt.valueName {
                if let inline { values[name] = inline; i += 1; continue }
                guard i + 1 < argv.count else { throw UsageError(message: "Missing value for '--\(QuotedName.safe(name)) <\(valueName)>'") }
                values[name] = argv[i + 1]; i += 2
            } else {
                flags.insert(name); i += 1
            }
        }
        wantsHelp = help
    }

    /// The option's value: as given, else its default, else a usage error (a required option).
    subscript<V>(_ o: Option<V>) -> V {
        get throws {
            if let v = try ifGiven(o) ?? o.defaultValue { return v }
            throw UsageError(message: "Missing expected argument '--\(o.name) <\(o.placeholder)>'")
        }
    }

    /// The option's value only when given on the command line (its default is not used).
    func ifGiven<V>(_ o: Option<V>) throws -> V? {
        assert(spec.declares(o), "\(spec.name) reads --\(o.name) but does not declare it")
        return try values[o.name].map(o.value(from:))
    }

    /// Whether a flag is set.
    subscript(_ f: Flag) -> Bool {
        assert(spec.declares(f), "\(spec.name) reads --\(f.name) but does not declare it")
        return flags.contains(f.name)
    }

    /// Whether an option or flag was given at all.
    func given(_ o: any CLIOption) -> Bool {
        assert(spec.declares(o), "\(spec.name) reads --\(o.name) but does not declare it")
        return values[o.name] != nil || flags.contains(o.name)
    }
}

/// Every subcommand: a spec and a run function.
protocol Command {
    static var spec: CommandSpec { get }
    static func run(_ args: Args) throws
}

// MARK: - Output helpers

/// Console text goes through `StandardStreams` (write(2) with handled errors), never
/// FileHandle.write, which traps on a full disk or a closed stdout.
enum Out {
    static func err(_ s: String) { StandardStreams.err(s + "\n") }
    static func print(_ s: String) { StandardStreams.out(s + "\n") }
    static func write(_ s: String) { StandardStreams.out(s) }

    static func json(_ obj: [String: Any]) -> String {
        guard let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]),
              let s = String(data: d, encoding: .utf8) else { return "{}" }
        return s
    }
}
