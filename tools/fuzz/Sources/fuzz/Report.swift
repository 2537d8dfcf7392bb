import Foundation

/// One finished run, as kept for the summary and the JSON report.
struct Record {
    let index: Int
    let k: Case
    let result: RunResult
    let verdict: Verdict
}

enum Report {
    /// Format × outcome counts as an aligned text table.
    static func table(_ records: [Record], formats: [String]) -> String {
        let outcomes = Outcome.allCases
        var rows: [[String]] = [["format", "runs"] + outcomes.map(\.rawValue)]
        var total = [Int](repeating: 0, count: outcomes.count)
        for f in formats {
            let rs = records.filter { $0.k.format == f }
            guard !rs.isEmpty else { continue }
            let counts = outcomes.map { o in rs.filter { $0.verdict.outcome == o }.count }
            for (n, c) in counts.enumerated() { total[n] += c }
            rows.append([f, String(rs.count)] + counts.map(String.init))
        }
        rows.append(["total", String(records.count)] + total.map(String.init))
        let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max()! }
        return rows.map { r in r.enumerated().map { c, s in c == 0 ? s.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                                                               : String(repeating: " ", count: widths[c] - s.count) + s }.joined(separator: "  ") }
            .joined(separator: "\n")
    }

    /// The JSON report: settings, counts per format and outcome, and up to three examples
    /// of every distinct non-clean signature with a one-line reproduction.
    static func json(_ records: [Record], formats: [String], settings: [(String, JSON)], seconds: Double, saved: [String: String]) -> Data {
        var counts: [(String, JSON)] = []
        for f in formats {
            let rs = records.filter { $0.k.format == f }
            guard !rs.isEmpty else { continue }
            counts.append((f, .object(Outcome.allCases.map { o in (o.rawValue, .int(rs.filter { $0.verdict.outcome == o }.count)) })))
        }
        let totals = JSON.object(Outcome.allCases.map { o in (o.rawValue, .int(records.filter { $0.verdict.outcome == o }.count)) })
        var groups: [String: [Record]] = [:], order: [String] = []
        for r in records where r.verdict.outcome != .clean {
            if groups[r.verdict.signature] == nil { order.append(r.verdict.signature) }
            groups[r.verdict.signature, default: []].append(r)
        }
        let findings: [JSON] = order.map { sig in
            let rs = groups[sig]!
            return .object([
                ("signature", .string(sig)), ("outcome", .string(rs[0].verdict.outcome.rawValue)), ("count", .int(rs.count)),
                ("fixture", saved[sig].map(JSON.string) ?? .raw("null")),
                ("examples", .array(rs.prefix(3).map { r in
                    .object([("run", .int(r.index)), ("format", .string(r.k.format)), ("seed", .string(r.k.seed)),
                             ("mutation", .string(String(r.k.mutation.prefix(300)))), ("argv", .array(r.k.argv.map { .string(String($0.prefix(200))) })),
                             ("status", .string(r.result.statusText)), ("seconds", .double((r.result.seconds * 100).rounded() / 100)),
                             ("reason", .string(String(r.verdict.reason.prefix(300)))),
                             ("stderr", .string(String(String(decoding: r.result.stderr.prefix(600), as: UTF8.self).prefix(600))))])
                })),
            ])
        }
        return JSON.object([
            ("settings", .object(settings)), ("seconds", .double((seconds * 10).rounded() / 10)), ("runs", .int(records.count)),
            ("totals", totals), ("by_format", .object(counts)), ("findings", .array(findings)),
        ]).data
    }
}
