import Foundation

/// Regression fixtures: a minimised failing case saved as `case.json` plus the mutated
/// files, small enough to keep in the repository. Unchanged seed files are referenced
/// by seed id and rebuilt at replay time; large mutated files are stored as byte edits
/// against the seed file.
enum Fixtures {
    static let fullLimit = 128 * 1024

    static func save(_ k: Case, verdict: Verdict, under root: String, name: String) throws -> String {
        let dir = root + "/" + name
        let fm = FileManager.default
        try? fm.removeItem(atPath: dir)
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var files: [(String, JSON)] = []
        for rel in k.files.keys.sorted() {
            let d = k.files[rel]!
            let seedData = k.base[rel] ?? d
            if !k.mutated.contains(rel) && k.base[rel] == nil && isSeedFile(rel, k) {
                files.append((rel, .object([("seed", .raw("true"))])))
            } else if isSeedFile(rel, k), let base = k.base[rel], base.count == d.count || d.count > fullLimit,
                      case let p = patch(from: base, to: d), p.text.utf8.count < min(d.count, fullLimit) {
                // A few changed bytes of a seed file: stored as edits, checked against the seed's hash at replay.
                files.append((rel, .object([("patch", p)])))
            } else if d.count > fullLimit, let runs = rle(d) {
                files.append((rel, .object([("rle", runs)])))
            } else if d.count <= fullLimit || !isSeedFile(rel, k) {
                let stored = "f\(files.count)-" + (rel as NSString).lastPathComponent
                try d.write(to: URL(fileURLWithPath: dir + "/" + stored))
                files.append((rel, .object([("file", .string(stored))])))
            } else {
                files.append((rel, .object([("patch", patch(from: seedData, to: d))])))
            }
        }
        let json = JSON.object([
            ("format", .string(k.format)), ("seed", .string(k.seed)), ("mutation", .string(k.mutation)),
            ("argv", .array(k.argv.map(JSON.string))), ("stdout", .string(k.stdout.rawValue)),
            ("special", .object(k.special.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value.rawValue)) })),
            ("culprits", .array(k.culprits.map(JSON.string))), ("mutated", .array(k.mutated.map(JSON.string))),
            ("may_run_long", .raw(k.mayRunLong ? "true" : "false")),
            ("found", .object([("outcome", .string(verdict.outcome.rawValue)), ("reason", .string(String(verdict.reason.prefix(300))))])),
            ("files", .object(files)),
        ])
        try Data((json.text + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/case.json"))
        return dir
    }

    /// Files that come unchanged from the seed (every seed file is stored under the run folder as is).
    static func isSeedFile(_ rel: String, _ k: Case) -> Bool { rel.hasPrefix("m/") || rel.hasPrefix("sb/") || rel.hasPrefix("l2c/") || rel == "model.gguf" }

    /// Run-length form for large, repetitive files (a 10 MB line of one byte): [[hex byte, count], …].
    static func rle(_ d: Data) -> JSON? {
        var runs: [JSON] = [], i = d.startIndex
        while i < d.endIndex {
            var j = i
            while j < d.endIndex, d[j] == d[i] { j += 1 }
            runs.append(.array([.string(String(format: "%02x", d[i])), .int(j - i)]))
            if runs.count > 4096 { return nil }
            i = j
        }
        return .array(runs)
    }

    /// Runs of changed bytes: {"length": n, "edits": [[offset, "hex"], …]}.
    static func patch(from a: Data, to b: Data) -> JSON {
        let x = [UInt8](a), y = [UInt8](b)
        var edits: [JSON] = [], i = 0
        while i < y.count {
            if i < x.count && x[i] == y[i] { i += 1; continue }
            let start = i
            while i < y.count && !(i < x.count && x[i] == y[i]) { i += 1 }
            edits.append(.array([.int(start), .string(y[start..<i].map { String(format: "%02x", $0) }.joined())]))
        }
        return .object([("base_fnv64", .string(String(fnv64(a), radix: 16))), ("length", .int(y.count)), ("edits", .array(edits))])
    }

    static func fnv64(_ d: Data) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in d { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    static func load(_ dir: String, corpus: SeedCorpus) -> Case? {
        guard let d = FileManager.default.contents(atPath: dir + "/case.json"), let j = JSON.parse(d) else { return nil }
        let seedId = j["seed"]?.stringValue ?? ""
        let seed = corpus.seed(seedId)
        var files: [String: Data] = [:]
        for (rel, spec) in j["files"]?.objectValue ?? [] {
            if spec["seed"] != nil {
                guard let s = seed?.files[rel] else { return nil }
                files[rel] = s
            } else if let f = spec["file"]?.stringValue {
                guard let data = FileManager.default.contents(atPath: dir + "/" + f) else { return nil }
                files[rel] = data
            } else if let runs = spec["rle"]?.arrayValue {
                var b: [UInt8] = []
                for r in runs {
                    guard let a = r.arrayValue, a.count == 2, let hex = a[0].stringValue, let byte = UInt8(hex, radix: 16),
                          let n = a[1].intValue, n >= 0 else { return nil }
                    b += [UInt8](repeating: byte, count: n)
                }
                files[rel] = Data(b)
            } else if let p = spec["patch"], let s = seed?.files[rel], let n = p["length"]?.intValue {
                // The seed must be the bytes the patch was made against (synthetic seeds are rebuilt, assets may differ).
                guard p["base_fnv64"]?.stringValue == String(fnv64(s), radix: 16) else { return nil }
                var b = [UInt8](s)
                if b.count > n { b.removeLast(b.count - n) } else { b += [UInt8](repeating: 0, count: n - b.count) }
                for e in p["edits"]?.arrayValue ?? [] {
                    guard let a = e.arrayValue, a.count == 2, let off = a[0].intValue, let hex = a[1].stringValue else { return nil }
                    var k = off, idx = hex.startIndex
                    while idx < hex.endIndex, k < b.count {
                        let next = hex.index(idx, offsetBy: 2)
                        b[k] = UInt8(hex[idx..<next], radix: 16) ?? 0
                        idx = next; k += 1
                    }
                }
                files[rel] = Data(b)
            } else { return nil }
        }
        var k = Case(format: j["format"]?.stringValue ?? "?", seed: seedId, mutation: j["mutation"]?.stringValue ?? "",
                     files: files, argv: (j["argv"]?.arrayValue ?? []).compactMap(\.stringValue))
        k.stdout = Case.Stdout(rawValue: j["stdout"]?.stringValue ?? "") ?? .capture
        for (rel, s) in j["special"]?.objectValue ?? [] { k.special[rel] = s.stringValue.flatMap(Case.Special.init) }
        k.culprits = (j["culprits"]?.arrayValue ?? []).compactMap(\.stringValue)
        k.mutated = (j["mutated"]?.arrayValue ?? []).compactMap(\.stringValue)
        k.mayRunLong = j["may_run_long"].map { $0.text == "true" } ?? false
        return k
    }
}
