import Foundation
import Transformer

// MARK: - Generated task records (JSONL lines)

/// One generated prompt as an ordered list of JSON fields (stable, readable field order in the file).
public struct TaskRecord: Equatable {
    public var fields: [(key: String, value: JSONValue)]
    public init(_ fields: [(key: String, value: JSONValue)]) { self.fields = fields }

    public subscript(key: String) -> JSONValue? { fields.first { $0.key == key }?.value }

    public static func == (a: TaskRecord, b: TaskRecord) -> Bool {
        a.fields.map(\.key) == b.fields.map(\.key) && a.fields.map(\.value) == b.fields.map(\.value)
    }

    /// One JSON object on one line, fields in order.
    public var jsonLine: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.withoutEscapingSlashes]
        let parts = fields.map { k, v -> String in
            let key = String(decoding: (try? enc.encode(k)) ?? Data("\"\"".utf8), as: UTF8.self)
            let val = String(decoding: (try? enc.encode(v)) ?? Data("null".utf8), as: UTF8.self)
            return key + ":" + val
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// A whole file: one record per line, LF-terminated.
    public static func jsonl(_ records: [TaskRecord]) -> String {
        records.map { $0.jsonLine + "\n" }.joined()
    }
}
