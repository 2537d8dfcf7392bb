import Foundation
import Tokenize

// MARK: - Typed options, declared once
//
// In the spirit of swift-argument-parser's `@Option(help:) var count = 3`
// (no outside package can be fetched here): an option's name, value type,
// default, allowed values and help text are one declaration,
//
//     static let maxNew = Option<Int>("max-new-tokens", "n", default: 20, min: 0, help: "Tokens to generate")
//
// the help line is rendered from it ("Tokens to generate (default 20)."; the
// allowed values of an enum as "(a | b; default a)"), and
// a command reads it by the declaration, `let n = try args[Options.maxNew]`,
// so a misspelt option name does not compile.

/// Anything a command can list among its options (help rendering and parsing).
protocol CLIOption {
    /// Without the leading dashes.
    var name: String { get }
    /// The value placeholder shown in help (`<n>`); nil for a flag.
    var valueName: String? { get }
    /// The help text with the allowed values and the default, as shown by `--help`.
    var renderedHelp: String { get }
}

/// A type an option's value can have: parsed from the text after the flag.
protocol OptionValue {
    /// The value of `text`, or a usage error naming `option` (without dashes).
    static func parse(_ text: String, option: String) throws -> Self
    /// How the value is written in help ("(default 20)").
    var optionText: String { get }
}

/// An option that takes a value.
struct Option<Value: OptionValue>: CLIOption {
    let name: String
    let placeholder: String
    let help: String
    /// The value when the option is not given; nil = required (or optional, read with `ifGiven`).
    let defaultValue: Value?
    /// Help's description of a default that is not one fixed value (e.g. "min(2048, context)").
    let defaultText: String?
    /// The allowed values, listed in help; nil = any value that parses.
    let choices: [Value]?
    /// Checks a parsed value: nil when valid, else the reason.
    let check: (Value) -> String?

    init(_ name: String, _ placeholder: String, default defaultValue: Value? = nil, defaultText: String? = nil,
         choices: [Value]? = nil, help: String, check: @escaping (Value) -> String? = { _ in nil }) {
        self.name = name; self.placeholder = placeholder; self.help = help
        self.defaultValue = defaultValue; self.defaultText = defaultText; self.choices = choices; self.check = check
    }

    var valueName: String? { placeholder }

    var renderedHelp: String {
        var notes: [String] = []
        if let choices { notes.append(choices.map(\.optionText).joined(separator: " | ")) }
        if let d = defaultValue?.optionText ?? defaultText { notes.append("default \(d)") }
        return help + (notes.isEmpty ? "" : " (" + notes.joined(separator: "; ") + ")") + "."
    }

    /// "a, b or c".
    static func list(_ items: [String]) -> String {
        items.count <= 1 ? items.joined() : items.dropLast().joined(separator: ", ") + " or " + items.last!
    }

    /// Parses and checks one given value.
    func value(from text: String) throws -> Value {
        if let choices, !choices.contains(where: { $0.optionText == text }) {
            throw UsageError(message: "The value '\(QuotedName.safe(text))' is invalid for '--\(name)': expected \(Self.list(choices.map(\.optionText)))")
        }
        let v = try Value.parse(text, option: name)
        if let reason = check(v) { throw UsageError(message: "The value '\(QuotedName.safe(text))' is invalid for '--\(name)': \(reason)") }
        return v
    }
}

extension Option where Value == Int {
    /// An integer option with a lower bound.
    init(_ name: String, _ placeholder: String, default d: Int? = nil, defaultText: String? = nil, min lo: Int, help: String) {
        self.init(name, placeholder, default: d, defaultText: defaultText, help: help) { $0 < lo ? "must be at least \(lo)" : nil }
    }
}

extension Option where Value == Double {
    /// A number option within a closed range.
    init(_ name: String, _ placeholder: String, default d: Double? = nil, range: ClosedRange<Double>, help: String) {
        self.init(name, placeholder, default: d, help: help) {
            range.contains($0) ? nil : "must be in [\(range.lowerBound), \(range.upperBound)]"
        }
    }
}

/// A flag: present or not.
struct Flag: CLIOption {
    let name: String
    let help: String
    init(_ name: String, help: String) { self.name = name; self.help = help }
    var valueName: String? { nil }
    var renderedHelp: String { help + "." }
}

// MARK: - Value types

extension Int: OptionValue {
    static func parse(_ text: String, option: String) throws -> Int {
        guard let v = Int(text) else { throw UsageError(message: "The value '\(QuotedName.safe(text))' is invalid for '--\(option)': expected an integer") }
        return v
    }
    var optionText: String { String(self) }
}

extension Double: OptionValue {
    static func parse(_ text: String, option: String) throws -> Double {
        guard let v = Double(text), v.isFinite else {
            throw UsageError(message: "The value '\(QuotedName.safe(text))' is invalid for '--\(option)': expected a number")
        }
        return v
    }
    var optionText: String { self == rounded() && abs(self) < 1e15 ? String(Int(self)) : String(self) }
}

extension String: OptionValue {
    static func parse(_ text: String, option: String) throws -> String { text }
    var optionText: String { self }
}

/// A comma-separated list of integers ("512,2048").
extension Array: OptionValue where Element == Int {
    static func parse(_ text: String, option: String) throws -> [Int] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { s in
            guard let v = Int(s) else { throw UsageError(message: "The value '\(QuotedName.safe(String(s)))' is invalid for '--\(option)': expected an integer") }
            return v
        }
    }
    var optionText: String { map(String.init).joined(separator: ",") }
}

/// Enums whose raw values are the option's words.
protocol ChoiceValue: OptionValue, RawRepresentable where RawValue == String {}

extension ChoiceValue {
    static func parse(_ text: String, option: String) throws -> Self {
        guard let v = Self(rawValue: text) else { throw UsageError(message: "The value '\(QuotedName.safe(text))' is invalid for '--\(option)'") }
        return v
    }
    var optionText: String { rawValue }
}

// MARK: - Paths

extension Option where Value == String {
    /// An option whose value is a file or directory path: refused (usage error naming the flag)
    /// when empty, longer than PATH_MAX, or holding control characters — so no later error
    /// can echo 100 KB or raw control bytes of it, and `--model ''` does not become
    /// "no such file or directory: " naming nothing.
    static func path(_ name: String, _ placeholder: String, default d: String? = nil, defaultText: String? = nil,
                     help: String) -> Option<String> {
        Option(name, placeholder, default: d, defaultText: defaultText, help: help, check: PathValue.problem)
    }
}

enum PathValue {
    /// Linux PATH_MAX: `open` refuses longer paths anyway (ENAMETOOLONG).
    static let maxBytes = 4096

    /// Why `p` cannot be a path, or nil.
    static func problem(_ p: String) -> String? {
        if p.isEmpty { return "the path is empty" }
        if p.utf8.count > maxBytes { return "a path has at most \(maxBytes) bytes; this one has \(p.utf8.count)" }
        if let c = p.unicodeScalars.first(where: { $0.value < 0x20 || (0x7F..<0xA0).contains($0.value) }) {
            return "the path holds the control character \\u{\(String(c.value, radix: 16))}"
        }
        return nil
    }
}
