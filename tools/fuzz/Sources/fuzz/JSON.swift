import Foundation

/// A JSON tree that keeps numbers as their source text and objects in file order, so a
/// mutated file differs from its seed only where the mutation says (Foundation's
/// JSONSerialization would reorder keys and round 2^64 or 1e400 before the target
/// parser ever saw them).
indirect enum JSON {
    case raw(String)                 // number or literal, emitted verbatim
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    // MARK: parse (lenient enough for the seeds we write ourselves)

    static func parse(_ data: Data) -> JSON? {
        var p = Parser(bytes: [UInt8](data))
        guard let v = p.value() else { return nil }
        p.skipSpace()
        return p.i == p.bytes.count ? v : nil
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0
        mutating func skipSpace() { while i < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 } }
        mutating func value() -> JSON? {
            skipSpace()
            guard i < bytes.count else { return nil }
            switch bytes[i] {
            case 0x7B:
                i += 1; var members: [(String, JSON)] = []
                skipSpace()
                if i < bytes.count, bytes[i] == 0x7D { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard case .string(let k)? = stringValue() else { return nil }
                    skipSpace(); guard i < bytes.count, bytes[i] == 0x3A else { return nil }; i += 1
                    guard let v = value() else { return nil }
                    members.append((k, v)); skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == 0x2C { i += 1; continue }
                    if bytes[i] == 0x7D { i += 1; return .object(members) }
                    return nil
                }
            case 0x5B:
                i += 1; var items: [JSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == 0x5D { i += 1; return .array(items) }
                while true {
                    guard let v = value() else { return nil }
                    items.append(v); skipSpace()
                    guard i < bytes.count else { return nil }
                    if bytes[i] == 0x2C { i += 1; continue }
                    if bytes[i] == 0x5D { i += 1; return .array(items) }
                    return nil
                }
            case 0x22: return stringValue()
            default:
                let start = i
                while i < bytes.count, !([0x2C, 0x7D, 0x5D, 0x20, 0x0A, 0x0D, 0x09] as [UInt8]).contains(bytes[i]) { i += 1 }
                guard i > start else { return nil }
                return .raw(String(decoding: bytes[start..<i], as: UTF8.self))
            }
        }
        mutating func stringValue() -> JSON? {
            guard i < bytes.count, bytes[i] == 0x22 else { return nil }
            let start = i
            i += 1
            while i < bytes.count, bytes[i] != 0x22 { if bytes[i] == 0x5C { i += 1 }; i += 1 }
            guard i < bytes.count else { return nil }
            i += 1
            // Decode escapes through Foundation on the literal alone (it is a valid JSON fragment).
            let literal = Data(bytes[start..<i])
            guard let s = try? JSONSerialization.jsonObject(with: literal, options: .fragmentsAllowed) as? String else { return nil }
            return .string(s)
        }
    }

    // MARK: serialise

    var text: String {
        switch self {
        case .raw(let r): return r
        case .string(let s): return JSON.quote(s)
        case .array(let a): return "[" + a.map(\.text).joined(separator: ",") + "]"
        case .object(let o): return "{" + o.map { JSON.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
        }
    }
    var data: Data { Data(text.utf8) }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    static func int(_ v: Int) -> JSON { .raw(String(v)) }
    static func double(_ v: Double) -> JSON { .raw(String(v)) }

    // MARK: paths (a path is the list of keys/indices from the root)

    /// Every path in the tree (containers included), in document order.
    func paths(prefix: [String] = []) -> [[String]] {
        var out = [prefix]
        switch self {
        case .array(let a): for (n, v) in a.enumerated() { out += v.paths(prefix: prefix + [String(n)]) }
        case .object(let o): for (k, v) in o { out += v.paths(prefix: prefix + [k]) }
        default: break
        }
        return out
    }

    /// Replace (or, with nil, delete) the value at `path`.
    func replacing(_ path: ArraySlice<String>, with new: JSON?) -> JSON? {
        guard let head = path.first else { return new }
        switch self {
        case .object(var o):
            guard let k = o.firstIndex(where: { $0.0 == head }) else { return self }
            if let v = o[k].1.replacing(path.dropFirst(), with: new) { o[k].1 = v } else { o.remove(at: k) }
            return .object(o)
        case .array(var a):
            guard let n = Int(head), n < a.count else { return self }
            if let v = a[n].replacing(path.dropFirst(), with: new) { a[n] = v } else { a.remove(at: n) }
            return .array(a)
        default: return self
        }
    }

    subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o.first { $0.0 == key }?.1 }
        return nil
    }
    var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    var intValue: Int? { if case .raw(let r) = self { return Int(r) }; return nil }
    var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    var objectValue: [(String, JSON)]? { if case .object(let o) = self { return o }; return nil }
}
