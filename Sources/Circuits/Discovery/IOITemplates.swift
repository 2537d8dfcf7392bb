import Foundation
import Transformer

// MARK: - IOI assets (ACDC's names, templates, places, objects)
//
// `eval/ioi/ioi_templates.json` transcribes ACDC's ioi_dataset.py lists. A
// template family is any list whose entries all have exactly two [A] (IO) and
// two [B] (S) slots, no [C], and end with " [A]" (the answer): BABA, ABBA,
// BABA_LONG, BABA_LATE_IOS, … (the "_TEMPLATES" suffix is dropped from names).
// Templates are addressed as FAMILY:INDEX ("ABBA:14").

public struct IOITemplate: Equatable, Sendable {
    public var id: String          // "BABA:3"
    public var family: String      // "BABA"
    public var index: Int
    public var text: String        // full template, ending in " [A]"
    /// The template without the trailing " [A]": what the prompt is made from.
    public var prompt: Substring { text.dropLast(4) }
    public var usesPlace: Bool { text.contains("[PLACE]") }
    public var usesObject: Bool { text.contains("[OBJECT]") }
}

public struct IOIAssets: Sendable {
    public var path: String
    public var names: [String]
    public var places: [String]
    public var objects: [String]
    /// Families in file order, each with its templates.
    public var families: [(name: String, templates: [IOITemplate])]

    public static let defaultSelection = "BABA,ABBA"

    /// Reads and checks the asset file.
    public static func load(_ path: String) throws -> IOIAssets {
        let data = try readInputFile(path, limit: 64 << 20)
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TaskError.badAsset(path: path, reason: "not a JSON object")
        }
        func list(_ key: String) throws -> [String] {
            guard let l = obj[key] as? [String], !l.isEmpty else {
                throw TaskError.badAsset(path: path, reason: "'\(key)' is missing or not a non-empty list of strings")
            }
            return l
        }
        var families: [(String, [IOITemplate])] = []
        // JSONSerialization loses key order; sort so family order (and thus sampling) is stable.
        for key in obj.keys.sorted() {
            guard let l = obj[key] as? [String], !l.isEmpty, l.allSatisfy(isIOITemplate) else { continue }
            let fam = key.hasSuffix("_TEMPLATES") ? String(key.dropLast("_TEMPLATES".count)) : key
            families.append((fam, l.enumerated().map { IOITemplate(id: "\(fam):\($0)", family: fam, index: $0, text: $1) }))
        }
        guard families.contains(where: { $0.0 == "BABA" }), families.contains(where: { $0.0 == "ABBA" }) else {
            throw TaskError.badAsset(path: path, reason: "no BABA_TEMPLATES / ABBA_TEMPLATES lists")
        }
        return IOIAssets(path: path, names: try list("NAMES"), places: try list("PLACES"), objects: try list("OBJECTS"),
                         families: families)
    }

    static func isIOITemplate(_ t: String) -> Bool {
        t.hasSuffix(" [A]") && t.components(separatedBy: "[A]").count == 3 && t.components(separatedBy: "[B]").count == 3
            && !t.contains("[C]")
    }

    /// Resolves `--templates`: comma-separated items `FAMILY`, `FAMILY:I` or
    /// `FAMILY:I-J` (inclusive), each optionally prefixed by `-` to remove it
    /// from what the earlier items selected ("BABA,ABBA,-ABBA:14"). Order follows the file.
    public func select(_ spec: String) throws -> [IOITemplate] {
        var chosen = Set<String>()
        let items = spec.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        for raw in items {
            guard !raw.isEmpty else { throw TaskError.badTemplateSelection(spec, reason: "empty item") }
            let remove = raw.hasPrefix("-")
            let item = remove ? String(raw.dropFirst()) : raw
            let parts = item.split(separator: ":", maxSplits: 1).map(String.init)
            guard let fam = families.first(where: { $0.name == parts[0] }) else {
                throw TaskError.badTemplateSelection(spec, reason: "unknown family '\(parts[0])' (known: \(families.map(\.name).joined(separator: ", ")))")
            }
            var range = 0...(fam.templates.count - 1)
            if parts.count == 2 {
                let bounds = parts[1].split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
                guard (1...2).contains(bounds.count), let lo = bounds.first!, let hi = bounds.last!, lo <= hi,
                      lo >= 0, hi < fam.templates.count else {
                    throw TaskError.badTemplateSelection(spec, reason: "'\(item)': expected \(fam.name):I or \(fam.name):I-J with 0 ≤ I ≤ J < \(fam.templates.count)")
                }
                range = lo...hi
            }
            for t in fam.templates[range] { if remove { chosen.remove(t.id) } else { chosen.insert(t.id) } }
        }
        let out = families.flatMap(\.templates).filter { chosen.contains($0.id) }
        guard !out.isEmpty else { throw TaskError.badTemplateSelection(spec, reason: "selects no template") }
        return out
    }
}
