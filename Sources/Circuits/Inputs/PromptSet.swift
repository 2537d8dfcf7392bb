import Foundation
import Transformer

// MARK: - Prompt files
//
// Two formats, chosen by extension:
//
// `.txt` (or any other extension): one prompt per line. Blank (whitespace-only)
// lines are skipped but still counted, so error messages name the real line.
// The line is used exactly as written (no trimming; a trailing CR is dropped).
// Use JSONL for prompts that contain newlines.
//
// `.jsonl`: one JSON object per line. Fields (unknown fields are ignored, so
// files with extra metadata such as toxicity scores can be used directly):
//
//   "text" | "prompt": string        the prompt, tokenized with the model's BOS rule
//   "ids": [int]                     pre-tokenized prompt, used exactly (no BOS added)
//   "target": string | int | object  one explained logit (token text, token id, or
//                                    {"position": p, "token": s | "id": i,
//                                     "contrast": s | "contrast_id": i})
//   "target_id": int                 shorthand for "target": <int>
//   "target_ids": [int]              several explained logits at the default position
//   "targets": [target]              several explained logits/differences
//   "position": int                  position of a top-level "target"/"target_id"
//   "contrast": string | "contrast_id": int
//                                    explain logit(target) − logit(contrast) (IOI)
//   "continuation": string | "continuation_ids": [int]
//                                    tokens appended after the prompt (behaviour sets);
//                                    explained by default
//
// Positions index the full token sequence (prompt + continuation, BOS
// included); negative positions count from its end (−1 = last token). The
// default position is the last prompt token, i.e. the logit that predicts the
// first token after the prompt. A target text must tokenize (without BOS) to
// exactly one token.

/// A token given by id or by its text (resolved with the model's tokenizer).
public enum TokenRef: Equatable, Sendable, CustomStringConvertible {
    case id(Int)
    case text(String)
    public var description: String {
        switch self { case .id(let i): return String(i); case .text(let s): return "\"\(s)\"" }
    }
}

/// One explained quantity: logit(token) at a position, or logit(token) − logit(contrast).
public struct TargetTerm: Equatable, Sendable, CustomStringConvertible {
    /// nil = the last prompt token (predicts the first token after the prompt).
    public var position: Int?
    public var token: TokenRef
    public var contrast: TokenRef?
    public init(position: Int? = nil, token: TokenRef, contrast: TokenRef? = nil) {
        self.position = position; self.token = token; self.contrast = contrast
    }
    public var description: String {
        (position.map { "\($0)" } ?? "last") + ":" + token.description + (contrast.map { "-" + $0.description } ?? "")
    }
}

/// One prompt as written in the file (before tokenization).
public struct PromptEntry: Equatable, Sendable {
    public var location: SourceLocation
    public var text: String?
    public var ids: [Int]?
    public var targets: [TargetTerm]
    public var continuationText: String?
    public var continuationIds: [Int]?
    public init(location: SourceLocation, text: String? = nil, ids: [Int]? = nil, targets: [TargetTerm] = [],
                continuationText: String? = nil, continuationIds: [Int]? = nil) {
        self.location = location; self.text = text; self.ids = ids; self.targets = targets
        self.continuationText = continuationText; self.continuationIds = continuationIds
    }
    public var hasContinuation: Bool { continuationText != nil || continuationIds != nil }
}

/// A parsed prompt file.
public struct PromptSet: Equatable, Sendable {
    public var path: String
    public var entries: [PromptEntry]

    public init(path: String, entries: [PromptEntry]) { self.path = path; self.entries = entries }

    /// Reads and parses `path` (`.jsonl` → JSON lines, otherwise one prompt per line).
    public static func load(_ path: String) throws -> PromptSet {
        try parse(String(decoding: try readInputFile(path), as: UTF8.self), path: path)
    }

    /// Parses file contents; the format follows `path`'s extension.
    public static func parse(_ contents: String, path: String) throws -> PromptSet {
        let jsonl = path.lowercased().hasSuffix(".jsonl")
        var entries: [PromptEntry] = []
        // "\r\n" is one Character in Swift, so split on "\n" only after normalising line ends.
        let lf = contents.replacingOccurrences(of: "\r\n", with: "\n")
        for (i, raw) in lf.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            let loc = SourceLocation(file: path, line: i + 1)
            entries.append(jsonl ? try parseJSONLine(line, loc) : PromptEntry(location: loc, text: line))
        }
        guard !entries.isEmpty else { throw AttributionError.emptyPromptFile(path: path) }
        return PromptSet(path: path, entries: entries)
    }

    // MARK: - JSONL

    static func parseJSONLine(_ line: String, _ loc: SourceLocation) throws -> PromptEntry {
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) } catch {
            throw AttributionError.invalidJSON(loc, reason: "cannot parse the line as JSON")
        }
        guard case .object(let o) = value else { throw AttributionError.invalidJSON(loc, reason: "the line is not a JSON object") }
        var e = PromptEntry(location: loc)
        func exclusive(_ names: [String]) throws -> String? {
            let present = names.filter { o[$0] != nil }
            if present.count > 1 { throw AttributionError.conflictingFields(loc, present[0], present[1]) }
            return present.first
        }
        // The prompt.
        switch try exclusive(["text", "prompt", "ids"]) {
        case "ids"?: e.ids = try intArray(o["ids"]!, "ids", loc)
        case let f?: e.text = try string(o[f]!, f, loc)
        case nil: throw AttributionError.missingField(loc, field: "text")
        }
        // Targets.
        let contrastField = try exclusive(["contrast", "contrast_id"])
        let contrast = try contrastField.map { try tokenRef(o[$0]!, $0, loc) }
        let position = try o["position"].map { try int($0, "position", loc) }
        switch try exclusive(["target", "target_id", "target_ids", "targets"]) {
        case "target"?:
            var t = try targetTerm(o["target"]!, "target", loc)
            if let position { t.position = position }
            if let contrast { t.contrast = contrast }
            e.targets = [t]
        case "target_id"?:
            e.targets = [TargetTerm(position: position, token: .id(try int(o["target_id"]!, "target_id", loc)), contrast: contrast)]
        case "target_ids"?:
            guard contrast == nil else { throw AttributionError.conflictingFields(loc, "target_ids", contrastField!) }
            e.targets = try intArray(o["target_ids"]!, "target_ids", loc).map { TargetTerm(position: position, token: .id($0)) }
            guard !e.targets.isEmpty else { throw AttributionError.badField(loc, field: "target_ids", reason: "empty list") }
        case "targets"?:
            if let contrastField { throw AttributionError.conflictingFields(loc, "targets", contrastField) }
            if o["position"] != nil { throw AttributionError.conflictingFields(loc, "targets", "position") }
            guard case .array(let a) = o["targets"]! else {
                throw AttributionError.badField(loc, field: "targets", reason: "expected a list of targets")
            }
            e.targets = try a.enumerated().map { try targetTerm($1, "targets[\($0)]", loc) }
            guard !e.targets.isEmpty else { throw AttributionError.badField(loc, field: "targets", reason: "empty list") }
        default:
            if let contrastField { throw AttributionError.badField(loc, field: contrastField, reason: "a contrast needs a 'target'") }
            if o["position"] != nil { throw AttributionError.badField(loc, field: "position", reason: "a position needs a 'target'") }
        }
        // Continuation.
        switch try exclusive(["continuation", "continuation_ids"]) {
        case "continuation"?: e.continuationText = try string(o["continuation"]!, "continuation", loc)
        case "continuation_ids"?: e.continuationIds = try intArray(o["continuation_ids"]!, "continuation_ids", loc)
        default: break
        }
        return e
    }

    static func targetTerm(_ v: JSONValue, _ field: String, _ loc: SourceLocation) throws -> TargetTerm {
        switch v {
        case .string, .int: return TargetTerm(token: try tokenRef(v, field, loc))
        case .object(let o):
            let known: Set = ["position", "token", "id", "contrast", "contrast_id"]
            if let extra = o.keys.sorted().first(where: { !known.contains($0) }) {
                throw AttributionError.badField(loc, field: "\(field).\(extra)", reason: "unknown key (expected \(known.sorted()))")
            }
            if o["token"] != nil, o["id"] != nil { throw AttributionError.conflictingFields(loc, "\(field).token", "\(field).id") }
            if o["contrast"] != nil, o["contrast_id"] != nil {
                throw AttributionError.conflictingFields(loc, "\(field).contrast", "\(field).contrast_id")
            }
            guard let tv = o["token"] ?? o["id"] else { throw AttributionError.missingField(loc, field: "\(field).token") }
            let tf = o["token"] != nil ? "\(field).token" : "\(field).id"
            let cf = o["contrast"] != nil ? "\(field).contrast" : "\(field).contrast_id"
            return TargetTerm(position: try o["position"].map { try int($0, "\(field).position", loc) },
                              token: try tokenRef(tv, tf, loc),
                              contrast: try (o["contrast"] ?? o["contrast_id"]).map { try tokenRef($0, cf, loc) })
        default:
            throw AttributionError.badField(loc, field: field, reason: "expected a token text, a token id or an object")
        }
    }

    static func tokenRef(_ v: JSONValue, _ field: String, _ loc: SourceLocation) throws -> TokenRef {
        switch v {
        case .int(let i): return .id(i)
        case .string(let s):
            guard !s.isEmpty else { throw AttributionError.badField(loc, field: field, reason: "empty token text") }
            return .text(s)
        default: throw AttributionError.badField(loc, field: field, reason: "expected a token text or a token id")
        }
    }

    static func string(_ v: JSONValue, _ field: String, _ loc: SourceLocation) throws -> String {
        guard case .string(let s) = v else { throw AttributionError.badField(loc, field: field, reason: "expected a string") }
        return s
    }

    static func int(_ v: JSONValue, _ field: String, _ loc: SourceLocation) throws -> Int {
        guard case .int(let i) = v else { throw AttributionError.badField(loc, field: field, reason: "expected an integer") }
        return i
    }

    static func intArray(_ v: JSONValue, _ field: String, _ loc: SourceLocation) throws -> [Int] {
        guard case .array(let a) = v else { throw AttributionError.badField(loc, field: field, reason: "expected a list of integers") }
        return try a.enumerated().map { i, x in
            guard case .int(let n) = x else {
                throw AttributionError.badField(loc, field: "\(field)[\(i)]", reason: "expected an integer")
            }
            return n
        }
    }
}
