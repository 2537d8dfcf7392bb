import Foundation

/// JSON string literals for hand-emitted JSON (safetensors headers, tokenizer.json,
/// reports) — where key order must be exact and JSONSerialization is too slow or
/// reorders keys.
public enum JSONText {
    /// `s` as a quoted JSON string with the minimal escapes.
    public static func quote(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
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
}
