import Foundation
import Tokenize
import Transformer

// MARK: - Task files
//
// `.jsonl`, one object per line (unknown fields ignored):
//   "text": string                      the prompt; its next token is scored (required)
//   "answer": string | int              the correct next token (text must be one token), or
//   "answer_id": int | "answer_ids": [int]   by id / a set of ids (probability mass summed)
//   "distractor" | "distractor_id" | "distractor_ids"   the competing token(s) (optional)
//   "corrupted": string                 counterfactual prompt, same token count as "text" (optional)
//   "template": string, "task": "ioi" | "greater-than" | "custom"   reporting only (optional)
// When both "answer" and "answer_id" are given they must agree in this model's
// tokenizer (files written by `workbench tasks` carry both, so a file made for
// another model is caught).
//
// `.csv`, the EAP-IG / MIB format: columns `clean`, `corrupted`, and either
// `correct_idx` + `incorrect_idx` (token ids, or "[id, id]" lists) or `label`
// (greater-than: the start year's last two digits; the year sets follow from
// the tokenizer, see `YearTargets`). Other columns (pandas' index) are ignored.

extension TaskSet {
    /// Reads a task file (a regular file: FIFOs and devices are refused, not waited on); the format follows the extension.
    public static func load(_ path: String) throws -> TaskSet {
        try parse(String(decoding: try readInputFile(path), as: UTF8.self), path: path)
    }

    public static func parse(_ contents: String, path: String) throws -> TaskSet {
        let lower = path.lowercased()
        let prompts: [TaskPrompt]
        if lower.hasSuffix(".jsonl") {
            prompts = try parseJSONL(contents, path: path)
        } else if lower.hasSuffix(".csv") {
            prompts = try parseCSV(contents, path: path)
        } else {
            throw TaskError.unknownFormat(path: path)
        }
        guard !prompts.isEmpty else { throw TaskError.emptyTaskFile(path: path) }
        return TaskSet(path: path, prompts: prompts)
    }

    // MARK: JSONL

    static func parseJSONL(_ contents: String, path: String) throws -> [TaskPrompt] {
        let lf = contents.replacingOccurrences(of: "\r\n", with: "\n")
        var out: [TaskPrompt] = []
        for (i, raw) in lf.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !raw.allSatisfy(\.isWhitespace) else { continue }
            out.append(try parseJSONLine(String(raw), SourceLocation(file: path, line: i + 1)))
        }
        return out
    }

    static func parseJSONLine(_ line: String, _ loc: SourceLocation) throws -> TaskPrompt {
        guard case .object(let o)? = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)) else {
            throw TaskError.invalidJSON(loc, reason: "the line is not a JSON object")
        }
        func string(_ f: String) throws -> String? {
            guard let v = o[f] else { return nil }
            guard case .string(let s) = v else { throw TaskError.badField(loc, field: f, reason: "expected a string") }
            return s
        }
        guard let text = try string("text") else { throw TaskError.missingField(loc, field: "text") }
        guard !text.isEmpty else { throw TaskError.badField(loc, field: "text", reason: "empty prompt") }
        var kind = TaskKind.custom
        if let k = try string("task") {
            guard let parsed = TaskKind(rawValue: k) else {
                throw TaskError.badField(loc, field: "task", reason: "unknown task '\(QuotedName.safe(k))' (expected \(TaskKind.allCases.map(\.rawValue)))")
            }
            kind = parsed
        }
        let answers = try targets(o, "answer", loc)
        guard !answers.isEmpty else { throw TaskError.missingField(loc, field: "answer") }
        return TaskPrompt(location: loc, kind: kind, text: text, corrupted: try string("corrupted"), template: try string("template"),
                          answers: answers, distractors: try targets(o, "distractor", loc))
    }

    /// `NAME` (text or id), `NAME_id`, `NAME_ids`: a text with an id must agree (checked at tokenization
    /// by resolving both); `NAME_ids` excludes the others.
    static func targets(_ o: [String: JSONValue], _ name: String, _ loc: SourceLocation) throws -> [(ref: TokenRef, field: String)] {
        let idsField = name + "_ids", idField = name + "_id"
        if let v = o[idsField] {
            for other in [name, idField] where o[other] != nil { throw TaskError.conflictingFields(loc, idsField, other) }
            guard case .array(let a) = v, !a.isEmpty else {
                throw TaskError.badField(loc, field: idsField, reason: "expected a non-empty list of token ids")
            }
            return try a.enumerated().map { i, x in
                guard case .int(let n) = x else { throw TaskError.badField(loc, field: "\(idsField)[\(i)]", reason: "expected an integer") }
                return (.id(n), "\(idsField)[\(i)]")
            }
        }
        var refs: [(ref: TokenRef, field: String)] = []
        if let v = o[name] {
            switch v {
            case .string(let s) where !s.isEmpty: refs.append((.text(s), name))
            case .int(let n): refs.append((.id(n), name))
            default: throw TaskError.badField(loc, field: name, reason: "expected a non-empty token text or a token id")
            }
        }
        if let v = o[idField] {
            guard case .int(let n) = v else { throw TaskError.badField(loc, field: idField, reason: "expected an integer") }
            refs.append((.id(n), idField))
        }
        // Text + id: both kept; `TaskPrompt.resolveAll` checks they agree once the tokenizer is known.
        return refs
    }

    // MARK: CSV

    static func parseCSV(_ contents: String, path: String) throws -> [TaskPrompt] {
        let table = try CSVTable.parse(contents, path: path)
        func column(_ name: String) -> Int? { table.header.firstIndex(of: name) }
        guard let clean = column("clean") else { throw TaskError.missingColumn(path: path, column: "clean", header: table.header) }
        let corrupted = column("corrupted")
        let correct = column("correct_idx"), incorrect = column("incorrect_idx"), label = column("label")
        guard correct != nil || label != nil else {
            throw TaskError.missingColumn(path: path, column: "correct_idx' or 'label", header: table.header)
        }
        return try table.rows.map { row in
            let loc = SourceLocation(file: path, line: row.line)
            let text = row.cells[clean]
            guard !text.isEmpty else { throw TaskError.badField(loc, field: "clean", reason: "empty prompt") }
            var p = TaskPrompt(location: loc, text: text, corrupted: corrupted.map { row.cells[$0] })
            if let correct {
                p.answers = try ids(row.cells[correct], "correct_idx", loc).map { (.id($0), "correct_idx") }
                if let incorrect { p.distractors = try ids(row.cells[incorrect], "incorrect_idx", loc).map { (.id($0), "incorrect_idx") } }
            } else if let label {
                let s = row.cells[label].trimmingCharacters(in: .whitespaces)
                guard let yy = Int(s) else { throw TaskError.badField(loc, field: "label", reason: "expected an integer, got '\(QuotedName.safe(s))'") }
                p.kind = .greaterThan; p.template = "greater-than"; p.startYearSuffix = yy
            }
            return p
        }
    }

    /// "123" or "[123, 456]".
    static func ids(_ cell: String, _ field: String, _ loc: SourceLocation) throws -> [Int] {
        let s = cell.trimmingCharacters(in: .whitespaces)
        let body = s.hasPrefix("[") && s.hasSuffix("]") ? String(s.dropFirst().dropLast()) : s
        let parts = body.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty else { throw TaskError.badField(loc, field: field, reason: "empty (expected a token id)") }
        return try parts.map {
            guard let n = Int($0) else { throw TaskError.badField(loc, field: field, reason: "'\(QuotedName.safe(String($0)))' is not a token id") }
            return n
        }
    }
}
