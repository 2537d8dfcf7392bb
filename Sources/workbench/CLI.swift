import Foundation

// MARK: - A small hand-written argument parser (swift-argument-parser conventions)
//
// `workbench <command> [--option value] [--flag]`. Usage errors print
// `Error: …`, `Usage: …` and a help hint on stderr and exit 64 (EX_USAGE);
// runtime errors print `Error: …` and exit 1.

struct OptionSpec {
    let name: String          // without the leading dashes
    let value: String?        // value placeholder; nil for a flag
    let help: String
    var isFlag: Bool { value == nil }
}

struct CommandSpec {
    let name: String
    let abstract: String
    let usage: String         // e.g. "workbench generate --model <path> --prompt <text> [options]"
    let options: [OptionSpec]
    var discussion: String = ""

    var helpText: String {
        var s = "OVERVIEW: \(abstract)\n\nUSAGE: \(usage)\n\nOPTIONS:\n"
        for o in options + [OptionSpec(name: "help", value: nil, help: "Show help information.")] {
            let left = "  --\(o.name)" + (o.value.map { " <\($0)>" } ?? "")
            s += left.padding(toLength: max(30, left.count + 2), withPad: " ", startingAt: 0) + o.help + "\n"
        }
        if !discussion.isEmpty { s += "\n" + discussion + "\n" }
        return s
    }
}

struct UsageError: Error {
    let message: String
}

/// Parsed `--name value` pairs and flags for one command.
struct Args {
    let spec: CommandSpec
    private var values: [String: String] = [:]
    private var flags: Set<String> = []
    let wantsHelp: Bool

    init(_ argv: [String], spec: CommandSpec) throws {
        self.spec = spec
        var i = 0, help = false
        while i < argv.count {
            let a = argv[i]
            if a == "--help" || a == "-h" { help = true; i += 1; continue }
            guard a.hasPrefix("--") else { throw UsageError(message: "Unexpected argument '\(a)'") }
            var name = String(a.dropFirst(2))
            var inline: String? = nil
            if let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...]); name = String(name[..<eq])
            }
            guard let opt = spec.options.first(where: { $0.name == name }) else {
                throw UsageError(message: "Unknown option '--\(name)'")
            }
            if opt.isFlag {
                flags.insert(name); i += 1
            } else {
                if let inline { values[name] = inline; i += 1; continue }
                guard i + 1 < argv.count else { throw UsageError(message: "Missing value for '--\(name) <\(opt.value!)>'") }
                values[name] = argv[i + 1]; i += 2
            }
        }
        wantsHelp = help
    }

    func string(_ name: String) -> String? { values[name] }
    func flag(_ name: String) -> Bool { flags.contains(name) }

    func required(_ name: String) throws -> String {
        guard let v = values[name] else {
            let o = spec.options.first { $0.name == name }
            throw UsageError(message: "Missing expected argument '--\(name) <\(o?.value ?? "value")>'")
        }
        return v
    }

    func int(_ name: String, default d: Int? = nil, min lo: Int? = nil) throws -> Int? {
        guard let s = values[name] else { return d }
        guard let v = Int(s) else { throw UsageError(message: "The value '\(s)' is invalid for '--\(name)': expected an integer") }
        if let lo, v < lo { throw UsageError(message: "The value '\(s)' is invalid for '--\(name)': must be at least \(lo)") }
        return v
    }

    func double(_ name: String, default d: Double? = nil, range: ClosedRange<Double>? = nil) throws -> Double? {
        guard let s = values[name] else { return d }
        guard let v = Double(s), v.isFinite else { throw UsageError(message: "The value '\(s)' is invalid for '--\(name)': expected a number") }
        if let range, !range.contains(v) {
            throw UsageError(message: "The value '\(s)' is invalid for '--\(name)': must be in [\(range.lowerBound), \(range.upperBound)]")
        }
        return v
    }

    func choice<T: RawRepresentable>(_ name: String, default d: T) throws -> T where T.RawValue == String {
        guard let s = values[name] else { return d }
        guard let v = T(rawValue: s) else { throw UsageError(message: "The value '\(s)' is invalid for '--\(name)'") }
        return v
    }
}

/// Every subcommand: a spec and a run function.
protocol Command {
    static var spec: CommandSpec { get }
    static func run(_ args: Args) throws
}

// MARK: - Output helpers

enum Out {
    static func err(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    static func print(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }
    static func write(_ s: String) { FileHandle.standardOutput.write(Data(s.utf8)) }

    static func json(_ obj: [String: Any]) -> String {
        guard let d = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]),
              let s = String(data: d, encoding: .utf8) else { return "{}" }
        return s
    }
}
