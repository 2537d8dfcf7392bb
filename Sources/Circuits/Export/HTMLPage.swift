import Foundation

// MARK: - The one shell every HTML report uses
//
// Reports must open anywhere, offline and years later: one file, inline CSS and SVG, no fonts, no
// network, nothing logged to the console (scripts/check_html.sh enforces it in a real browser).
// Every page starts with the provenance table — model, data split, method, aggregation, ablation,
// seeds — because those choices change results more than the method does; a number without them
// is not reportable.

public enum HTMLPage {
    /// Text for HTML body and attribute values (one escaping rule for every page).
    public static func escape(_ s: String) -> String { Heatmap.escape(s) }

    /// A complete page: `<!DOCTYPE html>`, title, the shared style, the provenance table, then `body`
    /// (already HTML). `extraStyle` is appended to the shared CSS; `script` (if any) is inlined last.
    public static func document(title: String, provenance: [(String, String)], body: String,
                                extraStyle: String = "", script: String? = nil) -> String {
        var o = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>\(escape(title))</title>\n"
        o += "<style>\n\(style)\(extraStyle)</style>\n</head><body>\n<h1>\(escape(title))</h1>\n"
        if !provenance.isEmpty {
            o += "<table class=\"prov\">\n"
            for (k, v) in provenance { o += "<tr><th>\(escape(k))</th><td>\(escape(v))</td></tr>\n" }
            o += "</table>\n"
        }
        o += body
        if let script { o += "<script>\n\(script)\n</script>\n" }
        o += "</body></html>\n"
        return o
    }

    /// A data table; cells are plain text (escaped here). `numeric` right-aligns those columns.
    public static func table(header: [String], rows: [[String]], numeric: Set<Int> = [], caption: String? = nil) -> String {
        var o = "<table class=\"data\">\n"
        if let caption { o += "<caption>\(escape(caption))</caption>\n" }
        o += "<tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
        for r in rows {
            o += "<tr>" + r.enumerated().map { i, c in numeric.contains(i) ? "<td class=\"num\">\(escape(c))</td>" : "<td>\(escape(c))</td>" }.joined() + "</tr>\n"
        }
        return o + "</table>\n"
    }

    /// Mean ± SEM as printed in every report (SEM = sample sd / √n; "n = 1" has no SEM).
    public static func meanSEM(_ values: [Double], digits: Int = 3) -> String {
        MeanSEM(values).text(digits: digits)
    }

    static let style = """
    body{font-family:sans-serif;font-size:14px;margin:24px;color:#222;max-width:1300px}
    h1{font-size:20px;margin:0 0 12px} h2{font-size:16px;margin:24px 0 8px}
    table{border-collapse:collapse;margin:8px 0} th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
    table.prov th{background:#f4f4f4;font-weight:normal;color:#555} table.data th{background:#eef}
    td.num{text-align:right;font-variant-numeric:tabular-nums} caption{text-align:left;color:#555;padding:4px 0}
    .note{color:#555;font-size:13px} pre{white-space:pre-wrap}

    """
}

// MARK: - A line plot with error bars (inline SVG)
//
// For sweeps: a metric vs a count, a fraction or a bit-error rate, several series, optional ± bars.
// Linear or log10 x axis; points with x ≤ 0 cannot sit on a log axis and are drawn on their own tick
// at the left edge (labelled by `zeroLabel`).

public struct PlotSeries: Sendable {
    public var name: String
    public var points: [(x: Double, y: Double, err: Double?)]
    public var dashed: Bool
    /// Optional asymmetric whiskers, one (lo, hi) per point (e.g. the 10th and 90th percentile around a median);
    /// drawn instead of `err` where given.
    public var ranges: [(lo: Double, hi: Double)]?
    public init(name: String, points: [(x: Double, y: Double, err: Double?)], dashed: Bool = false, ranges: [(lo: Double, hi: Double)]? = nil) {
        precondition(ranges == nil || ranges!.count == points.count)
        self.name = name; self.points = points; self.dashed = dashed; self.ranges = ranges
    }
}

public enum LinePlotSVG {
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"]

    /// `logY`: the y axis is log10, its ticks labelled with the values themselves (every y must be > 0; others are
    /// not drawn). `yRange`: fixed y limits instead of the data's (e.g. 0…1 for a fraction). `dodge`: series i is
    /// shifted horizontally by (i − (n − 1)/2)·dodge pixels, so that series with equal values stay visible.
    public static func render(title: String, xLabel: String, yLabel: String, series: [PlotSeries], logX: Bool = false,
                              logY: Bool = false, yRange: ClosedRange<Double>? = nil, dodge: Double = 0,
                              zeroLabel: String = "0", hline: (value: Double, label: String)? = nil,
                              width: Double = 720, height: Double = 320) -> String {
        let left = 70.0, right = 190.0, top = 36.0, bottom = 46.0
        let plotW = width - left - right, plotH = height - top - bottom
        // On a log y axis everything is drawn in log10 units; labels print 10^v.
        func ty(_ v: Double) -> Double { logY ? (v > 0 ? log10(v) : .nan) : v }
        let series = series.map { s -> PlotSeries in
            var t = s
            t.points = s.points.map { p in
                guard logY else { return p }
                // A symmetric ± bar becomes (y − e, y + e) on the log axis.
                return (p.x, ty(p.y), p.err)
            }
            if logY {
                t.ranges = s.ranges.map { $0.map { (ty($0.lo), ty($0.hi)) } }
                    ?? (s.points.contains { $0.err != nil } ? s.points.map { p in (ty(p.y - (p.err ?? 0)), ty(p.y + (p.err ?? 0))) } : nil)
                t.points = t.points.map { ($0.x, $0.y, nil) }
            }
            return t
        }
        let hline = hline.map { (value: ty($0.value), label: $0.label) }
        let all = series.flatMap(\.points)
        let xs = all.map(\.x).filter { !logX || $0 > 0 }
        let hasZero = logX && all.contains { $0.x <= 0 }
        var x0 = xs.min() ?? 0, x1 = xs.max() ?? 1
        if logX { x0 = log10(max(x0, 1e-300)); x1 = log10(max(x1, 1e-300)) }
        if x1 - x0 < 1e-12 { x0 -= 0.5; x1 += 0.5 }
        let rangeValues = series.flatMap { $0.ranges ?? [] }.flatMap { [$0.lo, $0.hi] }
        let lows = all.map { $0.y - ($0.err ?? 0) } + rangeValues + (hline.map { [$0.value] } ?? [])
        let highs = all.map { $0.y + ($0.err ?? 0) } + rangeValues + (hline.map { [$0.value] } ?? [])
        var y0 = lows.filter(\.isFinite).min() ?? 0, y1 = highs.filter(\.isFinite).max() ?? 1
        if let r = yRange { (y0, y1) = (ty(r.lowerBound), ty(r.upperBound)) }
        if y1 - y0 < 1e-12 { y0 -= 0.5; y1 += 0.5 }
        if yRange == nil { let pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad }
        let n = Double(series.count)
        let inner = hasZero ? 28.0 : 0
        func px(_ x: Double) -> Double {
            if logX && x <= 0 { return left }
            let v = logX ? log10(x) : x
            return left + inner + (v - x0) / (x1 - x0) * (plotW - inner)
        }
        func py(_ y: Double) -> Double { top + plotH - (y - y0) / (y1 - y0) * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        // Counts up to a million print in full: "%.0e" printed the sweep ticks 10 500 / 15 250 / 20 000 as
        // "1e+04", "2e+04", "2e+04".
        func tick(_ v: Double) -> String {
            let a = abs(v)
            return a != 0 && (a >= 1e6 || a < 1e-2) ? String(format: "%.0e", v) : String(format: a >= 100 ? "%.0f" : "%.3g", v)
        }
        let esc = HTMLPage.escape
        var o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        o += "<text x=\"\(f(left))\" y=\"18\" font-size=\"13\" font-weight=\"bold\">\(esc(title))</text>\n"
        o += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#888\"/>\n"
        // A log axis spanning a decade or more gets its ticks at powers of ten (every k-th, at most 6 labels).
        var yValues = (0...4).map { y0 + (y1 - y0) * Double($0) / 4 }
        if logY, y1 - y0 >= 1 {
            let decades = Array(Int(ceil(y0))...Int(floor(y1))), step = max(1, (decades.count + 5) / 6)
            yValues = decades.filter { ($0 - decades[0]) % step == 0 }.map(Double.init)
        }
        var yLabels = yValues.map { tick(logY ? pow(10, $0) : $0) }
        // A narrow range (e.g. perplexities 29.91…29.93) rounds every label to the same text: then print
        // as many decimals (linear) or significant digits (log) as the tick step needs.
        if Set(yLabels).count < yLabels.count, y1 > y0 {
            if logY {
                let digits = min(12, max(3, Int(ceil(-log10(pow(10, (y1 - y0) / 4) - 1))) + 2))
                yLabels = yValues.map { String(format: "%.\(digits)g", pow(10, $0)) }
            } else {
                let decimals = min(12, max(0, Int(ceil(-log10((y1 - y0) / 4))) + 1))
                yLabels = yValues.map { String(format: "%.\(decimals)f", $0) }
            }
        }
        for (v, label) in zip(yValues, yLabels) {
            o += "<line x1=\"\(f(left - 4))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(v)))\" y2=\"\(f(py(v)))\" stroke=\"#eee\"/>"
            o += "<text x=\"\(f(left - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(esc(label))</text>\n"
        }
        let xticks: [Double] = logX ? Array(Int(floor(x0))...Int(ceil(x1))).map { pow(10, Double($0)) }.filter { log10($0) >= x0 - 1e-9 && log10($0) <= x1 + 1e-9 }
                                    : (0...4).map { x0 + (x1 - x0) * Double($0) / 4 }
        var xLabels = xticks.map(tick)
        if Set(xLabels).count < xLabels.count { xLabels = xticks.map { String(format: "%.4g", $0) } }   // e.g. 1e+06 and 1.4e+06
        for (v, label) in zip(xticks, xLabels) + (hasZero ? [(0, zeroLabel)] : []) {
            o += "<text x=\"\(f(px(v)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(esc(label))</text>\n"
        }
        o += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 8))\" text-anchor=\"middle\">\(esc(xLabel))</text>\n"
        o += "<text x=\"14\" y=\"\(f(top + plotH / 2))\" transform=\"rotate(-90 14 \(f(top + plotH / 2)))\" text-anchor=\"middle\">\(esc(yLabel))</text>\n"
        if let h = hline {
            o += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(py(h.value)))\" y2=\"\(f(py(h.value)))\" stroke=\"#999\" stroke-dasharray=\"2,3\"/>"
            o += "<text x=\"\(f(left + plotW - 4))\" y=\"\(f(py(h.value) - 4))\" text-anchor=\"end\" fill=\"#666\">\(esc(h.label))</text>\n"
        }
        for (i, s) in series.enumerated() {
            let c = palette[i % palette.count]
            let shift = (Double(i) - (n - 1) / 2) * dodge
            func sx(_ x: Double) -> Double { px(x) + shift }
            func cy(_ y: Double) -> Double { py(min(max(y, y0), y1)) }   // whiskers beyond a fixed range end at its edge
            let pts = s.points.indices.filter { s.points[$0].y.isFinite }.sorted { s.points[$0].x < s.points[$1].x }
            let d = pts.map { "\(f(sx(s.points[$0].x))),\(f(py(s.points[$0].y)))" }.joined(separator: " ")
            o += "<polyline fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.8\"\(s.dashed ? " stroke-dasharray=\"5,3\"" : "") points=\"\(d)\"/>\n"
            for k in pts {
                let p = s.points[k]
                if let r = s.ranges?[k], !r.lo.isNaN, !r.hi.isNaN, r.hi > r.lo {   // ±∞ (a non-finite percentile) ends at the edge
                    let x = f(sx(p.x))
                    o += "<line x1=\"\(x)\" x2=\"\(x)\" y1=\"\(f(cy(r.lo)))\" y2=\"\(f(cy(r.hi)))\" stroke=\"\(c)\"/>"
                    for v in [r.lo, r.hi] { o += "<line x1=\"\(f(sx(p.x) - 3))\" x2=\"\(f(sx(p.x) + 3))\" y1=\"\(f(cy(v)))\" y2=\"\(f(cy(v)))\" stroke=\"\(c)\"/>" }
                } else if s.ranges == nil, let e = p.err, e > 0, e.isFinite {
                    o += "<line x1=\"\(f(sx(p.x)))\" x2=\"\(f(sx(p.x)))\" y1=\"\(f(py(p.y - e)))\" y2=\"\(f(py(p.y + e)))\" stroke=\"\(c)\"/>"
                }
                func shown(_ v: Double) -> String { tick(logY ? pow(10, v) : v) }
                let tip = "\(s.name): x = \(tick(p.x)), y = \(shown(p.y))" + (p.err.map { " ± \(tick($0))" } ?? "")
                    + (s.ranges.map { " (range \(shown($0[k].lo)) … \(shown($0[k].hi)))" } ?? "")
                o += "<circle cx=\"\(f(sx(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"2.6\" fill=\"\(c)\"><title>\(esc(tip))</title></circle>\n"
            }
            let ly = top + 8 + Double(i) * 16
            o += "<line x1=\"\(f(left + plotW + 12))\" x2=\"\(f(left + plotW + 34))\" y1=\"\(f(ly))\" y2=\"\(f(ly))\" stroke=\"\(c)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"5,3\"" : "")/>"
            o += "<text x=\"\(f(left + plotW + 40))\" y=\"\(f(ly + 4))\">\(esc(s.name))</text>\n"
        }
        return o + "</svg>\n"
    }
}
