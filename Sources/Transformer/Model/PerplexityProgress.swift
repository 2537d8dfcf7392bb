import Foundation

// MARK: - `perplexity --progress FILE`: a killed evaluation resumes at its next window
//
// A full WikiText-2 evaluation at seqlen 2048 takes hours on a loaded machine. The file holds a header
// line naming the run (model and text with their sha256, seqlen, protocol, token and window counts) and
// then one line per finished window with its NLL sum (its exact bits) and count. A rerun with the same
// file takes the recorded windows and computes the rest; the sums are added in window order either way,
// so the perplexity has the same bits as one uninterrupted run. A torn last line (killed mid-write) is
// dropped; a file of another run is refused, naming the field.

public enum PerplexityProgressError: LocalizedError, Equatable {
    case otherRun(path: String, field: String, recorded: String, now: String)
    case unreadable(path: String, reason: String)
    public var errorDescription: String? {
        switch self {
        case .otherRun(let p, let f, let r, let n):
            return "\(p) records another evaluation: '\(f)' is \(r) there, \(n) now; delete it or give another --progress file"
        case .unreadable(let p, let r): return "\(p): \(r)"
        }
    }
}

public struct PerplexityProgress {
    public static let format = "workbench-perplexity-progress"
    public let path: String
    /// (NLL sum, count) of windows 0, 1, … as recorded.
    public private(set) var recorded: [(sum: Double, count: Int)] = []

    /// Opens `path` for the evaluation `run` describes (creating it with that header), keeping its valid windows.
    public init(path: String, run: [String: String]) throws {
        self.path = path
        var header = run
        header["format"] = Self.format
        guard FileManager.default.fileExists(atPath: path) else {
            try AtomicFile.write(Self.line(header), to: path)
            return
        }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw PerplexityProgressError.unreadable(path: path, reason: error.localizedDescription)
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let first = lines.first, let h = Self.object(first) as? [String: String] else {
            throw PerplexityProgressError.unreadable(path: path, reason: "line 1 is not a perplexity progress header")
        }
        for k in ["format"] + run.keys.sorted() where h[k] != header[k] {
            throw PerplexityProgressError.otherRun(path: path, field: k, recorded: h[k] ?? "(missing)", now: header[k] ?? "(missing)")
        }
        lines.removeFirst()
        var valid = first + "\n"
        for l in lines {
            guard let o = Self.object(l) as? [String: Any], o["window"] as? Int == recorded.count, let count = o["count"] as? Int,
                  let bits = (o["sum_bits"] as? String).flatMap({ UInt64($0, radix: 16) }) else { break }   // a torn line ends it
            recorded.append((Double(bitPattern: bits), count))
            valid += l + "\n"
        }
        if valid.utf8.count != text.utf8.count { try AtomicFile.write(valid, to: path) }   // appends start after the last whole line
    }

    /// Records window `w` (the next one).
    public mutating func append(window w: Int, sum: Double, count: Int) throws {
        precondition(w == recorded.count, "windows are recorded in order")
        let l = Self.line(["window": w, "sum_bits": String(sum.bitPattern, radix: 16), "sum": sum, "count": count])
        guard let h = FileHandle(forWritingAtPath: path) else { throw PerplexityProgressError.unreadable(path: path, reason: "cannot be opened for writing") }
        defer { try? h.close() }
        do { try h.seekToEnd(); try h.write(contentsOf: Data(l.utf8)) } catch {
            throw PerplexityProgressError.unreadable(path: path, reason: error.localizedDescription)
        }
        recorded.append((sum, count))
    }

    static func line(_ o: [String: Any]) -> String {
        let d = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: d, as: UTF8.self) + "\n"
    }

    static func object(_ line: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(line.utf8)) }
}
