import Foundation

// `workbench faults` report: per BER and protection criterion, the metric's distribution over
// trials (median, 10th and 90th percentile, linear interpolation between order statistics as
// numpy's default), the fraction of failed trials, reliability = 1 − that fraction, and the
// improvement over no protection (reliability difference, and the relative failure reduction
// (f_none − f)/f_none when unprotected trials fail at all). A non-finite metric (NaN/∞ weights
// after a flipped exponent) counts as the worst value and as a failure; JSON writes it as null.

public struct FaultReport: Codable {
    public struct Row: Codable {
        public var ber: Double
        public var criterion: String
        /// The metric per trial (trial order); null = not finite.
        public var values: [Double?]
        public var median: Double?, p10: Double?, p90: Double?
        public var failedFraction: Double
        public var reliability: Double
        /// reliability − reliability(none); nil without a "none" row.
        public var reliabilityGain: Double?
        /// (failed(none) − failed) / failed(none); nil when unprotected trials never fail.
        public var failureReduction: Double?
        /// Bits stored three times (one copy), the weights and block scales they hold, and the overhead
        /// = 2 × protected / stored bits.
        public var protectedBits: Int, protectedWeights: Int, protectedScaleBlocks: Int
        public var overhead: Double
        /// Mean flipped bits per trial in the primary storage, and mean bits read wrong after the vote.
        public var meanPrimaryFlips: Double, meanReadFlips: Double

        init(ber: Double, criterion: String, values v: [Double], dense: Double, metric: FaultMetric, noneFailed: Double?,
             protectedBits: Int, protectedWeights: Int, protectedScaleBlocks: Int, totalBits: Int, primaryFlips: [Int], readFlips: [Int]) {
            self.ber = ber; self.criterion = criterion
            values = v.map { $0.isFinite ? $0 : nil }
            // Worst-first ordering for the percentiles: non-finite is the worst value.
            let worst = metric.lowerIsBetter ? Double.infinity : -Double.infinity
            let s = v.map { $0.isFinite ? $0 : worst }.sorted()
            func fin(_ x: Double) -> Double? { x.isFinite ? x : nil }
            median = fin(FaultReport.percentile(s, 0.5)); p10 = fin(FaultReport.percentile(s, 0.1)); p90 = fin(FaultReport.percentile(s, 0.9))
            let failed = FaultReport.failedFraction(v, dense: dense, metric)
            failedFraction = failed
            reliability = 1 - failed
            reliabilityGain = noneFailed.map { (1 - failed) - (1 - $0) }
            failureReduction = noneFailed.flatMap { $0 > 0 ? ($0 - failed) / $0 : nil }
            self.protectedBits = protectedBits; self.protectedWeights = protectedWeights; self.protectedScaleBlocks = protectedScaleBlocks
            overhead = 2 * Double(protectedBits) / Double(max(totalBits, 1))
            meanPrimaryFlips = Double(primaryFlips.reduce(0, +)) / Double(max(primaryFlips.count, 1))
            meanReadFlips = Double(readFlips.reduce(0, +)) / Double(max(readFlips.count, 1))
        }
    }

    public var model: String
    public var storage: String
    public var metric: String
    public var metricDetail: String
    public var lowerIsBetter: Bool
    /// The metric of the stored (clean) model, and the failure threshold derived from it.
    public var dense: Double
    public var failThreshold: Double
    public var trials: Int
    public var seed: UInt64
    public var protectFraction: Double
    public var storedBits: Int, storedWeights: Int
    public var seconds: Double
    public var rows: [Row]

    /// Sorted values → the q-quantile by linear interpolation (numpy's default, "type 7").
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let h = q * Double(sorted.count - 1), lo = Int(h.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        let a = sorted[lo], b = sorted[hi], f = h - Double(lo)
        return f == 0 || a == b ? a : a + (b - a) * f
    }

    static func failedFraction(_ v: [Double], dense: Double, _ metric: FaultMetric) -> Double {
        Double(v.filter { metric.failed($0, dense: dense) }.count) / Double(max(v.count, 1))
    }

    public func json() throws -> Data {
        let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }

    // MARK: - HTML

    public func html() -> String {
        func num(_ x: Double?, _ d: Int = 4) -> String { x.map { String(format: "%.\(d)g", $0) } ?? "n/a (not finite)" }
        func pct(_ x: Double?) -> String { x.map { String(format: "%.0f %%", 100 * $0) } ?? "–" }
        let criteria = rows.reduce(into: [String]()) { if !$0.contains($1.criterion) { $0.append($1.criterion) } }
        let bers = rows.reduce(into: [Double]()) { if !$0.contains($1.ber) { $0.append($1.ber) } }
        let prov: [(String, String)] = [
            ("model", model), ("storage", "\(storage) (decoder linear weights: values and block scales; \(storedWeights) weights, \(storedBits) bits)"),
            ("metric", metricDetail), ("dense (no faults, \(storage) storage)", num(dense, 6)),
            ("failure", lowerIsBetter ? "perplexity > \(num(failThreshold, 6)) or not finite" : "accuracy < \(num(failThreshold, 4)) or not finite"),
            ("bit error rates", bers.map { String(format: "%g", $0) }.joined(separator: ", ")),
            ("trials", "\(trials) per BER and criterion; seed \(seed); flips of one trial shared by every criterion (paired)"),
            ("protection", "triple modular redundancy with bitwise majority vote; \(protectFraction * 100) % of stored bits protected per criterion (overhead \(2 * protectFraction * 100) %)"),
            ("time", String(format: "%.1f s", seconds)),
        ]
        var body = "<h2>Metric over trials</h2>\n"
        // The distribution over trials: the median with whiskers from the 10th to the 90th percentile. Perplexity
        // under faults spans many orders of magnitude: a log y axis (labelled in perplexity) once the whiskers
        // cross a decade. A non-finite percentile (the worst value) draws the whisker to the top edge.
        let finite = rows.flatMap { [$0.median, $0.p10, $0.p90] }.compactMap { $0 }.filter { $0 > 0 }
        let logY = lowerIsBetter && (finite.max() ?? 1) / max(finite.min() ?? 1, 1e-300) > 10
        let worst = lowerIsBetter ? Double.infinity : -Double.infinity
        // Series with equal values (common: most criteria leave a trial unchanged) are shifted a few pixels apart.
        let dodge = criteria.count > 1 ? min(5, 40 / Double(criteria.count)) : 0
        let series = criteria.map { c in
            let rs = rows.filter { $0.criterion == c }
            return PlotSeries(name: c, points: rs.map { (x: $0.ber, y: $0.median ?? .nan, err: nil) }, dashed: c == "none",
                              ranges: rs.map { (lo: $0.p10 ?? worst, hi: $0.p90 ?? worst) })
        }
        let yRange: ClosedRange<Double>? = lowerIsBetter ? nil : 0...1
        body += LinePlotSVG.render(title: "median \(metric) over trials, whiskers 10th–90th percentile", xLabel: "bit error rate",
                                   yLabel: metric + (logY ? " (log scale)" : ""), series: series, logX: true, logY: logY,
                                   yRange: yRange, dodge: dodge,
                                   hline: (dense, "dense \(num(dense, 4))"))
        let fails = criteria.map { c in
            PlotSeries(name: c, points: rows.filter { $0.criterion == c }.map { (x: $0.ber, y: $0.failedFraction, err: nil) }, dashed: c == "none")
        }
        body += LinePlotSVG.render(title: "fraction of failed trials", xLabel: "bit error rate", yLabel: "failed fraction", series: fails, logX: true,
                                   yRange: 0...1, dodge: dodge)
        body += "<p class=\"note\">Points of different criteria are drawn up to \(Int(dodge * Double(max(criteria.count - 1, 0)) / 2)) px left or right of their BER "
            + "so that equal values stay visible; the table has the numbers.</p>\n"
        let header = ["BER", "criterion", "median", "p10", "p90", "failed", "reliability", "gain vs none", "failure reduction",
                      "protected weights", "overhead", "flips / trial", "wrong bits read / trial"]
        let table = rows.map { r -> [String] in
            // U+2011 (non-breaking hyphen): "3e-08" must not wrap inside its cell.
            [String(format: "%g", r.ber).replacingOccurrences(of: "-", with: "\u{2011}"), r.criterion, num(r.median), num(r.p10), num(r.p90), pct(r.failedFraction), pct(r.reliability),
             r.reliabilityGain.map { String(format: "%+.0f pp", 100 * $0) } ?? "–", pct(r.failureReduction),
             "\(r.protectedWeights)", String(format: "%.2f %%", 100 * r.overhead), String(format: "%.1f", r.meanPrimaryFlips),
             String(format: "%.1f", r.meanReadFlips)]
        }
        body += HTMLPage.table(header: header, rows: table, numeric: [0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                               caption: "Percentiles over \(trials) trials (linear interpolation); a non-finite metric counts as the worst value.")
        body += "<p class=\"note\">Every stored bit of the decoder linear weights flips independently with probability BER (geometric skips from a seeded generator; "
            + "deterministic per seed and trial). Protected bits are stored three times with independent flips and read by bitwise majority vote; "
            + "the weights are restored bit for bit after each trial. Criteria protect the same number of bits (within one weight and its block scale).</p>\n"
        return HTMLPage.document(title: "Bit-flip faults: \(metric) under \(storage) storage", provenance: prov, body: body)
    }
}
