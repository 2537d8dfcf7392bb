import Foundation

// MARK: - curve.svg: f and the raw metric vs kept fraction, self-contained
//
// Two panels sharing a log x axis (kept fraction; the none-kept point, which a
// log axis cannot place, sits on its own tick at the left edge). Reference is
// solid, held-out dashed; the threshold and the circuit found are marked. No
// scripts, fonts or external references: it renders the same anywhere.

public enum CurveSVG {
    public static func render(_ r: CircuitResult, settings s: CircuitSettings, title: String) -> String {
        let w = 760.0, panelH = 200.0, left = 80.0, right = 200.0, top = 50.0, gap = 60.0
        let plotW = w - left - right
        let positive = r.curve.map(\.fraction).filter { $0 > 0 }
        let minX = log10(positive.min() ?? 1e-4), span = max(1e-9, 0 - minX)
        let zeroX = left, firstX = left + 30
        func x(_ f: Double) -> Double { f <= 0 ? zeroX : firstX + (log10(f) - minX) / span * (plotW - 30) }
        func esc(_ t: String) -> String {
            t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        func num(_ v: Double) -> String { String(format: "%.2f", v) }
        var o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(top + 2 * panelH + gap + 60))\" "
            + "viewBox=\"0 0 \(Int(w)) \(Int(top + 2 * panelH + gap + 60))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        o += "<text x=\"\(num(left))\" y=\"20\" font-size=\"13\" font-weight=\"bold\">\(esc(title))</text>\n"
        o += "<text x=\"\(num(left))\" y=\"36\">\(esc("method \(s.method.rawValue) · granularity \(s.granularity.rawValue) · ablation \(s.ablation.rawValue) · score sign \(s.rank.rawValue) · scheme \(s.scheme.rawValue)"))</text>\n"
        let refF = r.curve.map { ($0.fraction, $0.reference.f) }
        let heldF = r.curve.compactMap { p in p.heldout.map { (p.fraction, $0.f) } }
        let refM = r.curve.map { ($0.fraction, $0.reference.metric) }
        let heldM = r.curve.compactMap { p in p.heldout.map { (p.fraction, $0.metric) } }
        func panel(_ y0: Double, _ label: String, _ series: [([(Double, Double)], String, Bool)], hline: Double?) {
            let ys = series.flatMap { $0.0.map(\.1) } + (hline.map { [$0] } ?? [])
            var lo = min(0, ys.min() ?? 0), hi = max(1, ys.max() ?? 1)
            if hi - lo < 1e-9 { hi = lo + 1 }
            let pad = (hi - lo) * 0.05; lo -= pad; hi += pad
            func y(_ v: Double) -> Double { y0 + panelH - (v - lo) / (hi - lo) * panelH }
            o += "<rect x=\"\(num(left))\" y=\"\(num(y0))\" width=\"\(num(plotW))\" height=\"\(num(panelH))\" fill=\"none\" stroke=\"#888\"/>\n"
            o += "<text x=\"16\" y=\"\(num(y0 + panelH / 2))\" transform=\"rotate(-90 16 \(num(y0 + panelH / 2)))\" text-anchor=\"middle\">\(esc(label))</text>\n"
            for t in 0...4 {
                let v = lo + (hi - lo) * Double(t) / 4
                o += "<line x1=\"\(num(left - 4))\" x2=\"\(num(left))\" y1=\"\(num(y(v)))\" y2=\"\(num(y(v)))\" stroke=\"#888\"/>"
                o += "<text x=\"\(num(left - 6))\" y=\"\(num(y(v) + 4))\" text-anchor=\"end\">\(String(format: "%.3g", v))</text>\n"
            }
            if let hline {
                o += "<line x1=\"\(num(left))\" x2=\"\(num(left + plotW))\" y1=\"\(num(y(hline)))\" y2=\"\(num(y(hline)))\" stroke=\"#c33\" stroke-dasharray=\"2 3\"/>\n"
            }
            let cx = x(r.crossing.fraction)
            o += "<line x1=\"\(num(cx))\" x2=\"\(num(cx))\" y1=\"\(num(y0))\" y2=\"\(num(y0 + panelH))\" stroke=\"#c33\" stroke-width=\"0.8\"/>\n"
            for (pts, color, dashed) in series where !pts.isEmpty {
                let path = pts.map { "\(num(x($0.0))),\(num(y($0.1)))" }.joined(separator: " ")
                o += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\"\(dashed ? " stroke-dasharray=\"5 3\"" : "")/>\n"
                for p in pts { o += "<circle cx=\"\(num(x(p.0)))\" cy=\"\(num(y(p.1)))\" r=\"2.2\" fill=\"\(color)\"/>" }
                o += "\n"
            }
        }
        panel(top, "faithfulness f", [(refF, "#1f5fbf", false), (heldF, "#e08a00", true)], hline: s.threshold)
        panel(top + panelH + gap, "metric m (\(r.reference.baseline.metric.rawValue))", [(refM, "#1f5fbf", false), (heldM, "#e08a00", true)], hline: nil)
        // x axis ticks (bottom panel and between panels).
        let axisY = top + 2 * panelH + gap
        var ticks: [Double] = [0]
        var e = ceil(minX)
        while e <= 0 { ticks.append(pow(10, e)); e += 1 }
        for t in ticks {
            let tx = x(t)
            o += "<line x1=\"\(num(tx))\" x2=\"\(num(tx))\" y1=\"\(num(axisY))\" y2=\"\(num(axisY + 4))\" stroke=\"#888\"/>"
            o += "<text x=\"\(num(tx))\" y=\"\(num(axisY + 16))\" text-anchor=\"middle\">\(t == 0 ? "0" : String(format: "%g", t))</text>\n"
        }
        o += "<text x=\"\(num(left + plotW / 2))\" y=\"\(num(axisY + 34))\" text-anchor=\"middle\">kept fraction of \(r.candidates.total) \(s.granularity.rawValue) (log scale; 0 = none kept)</text>\n"
        // Legend.
        let lx = left + plotW + 16
        var ly = top + 10
        func legend(_ text: String, _ color: String, dashed: Bool) {
            o += "<line x1=\"\(num(lx))\" x2=\"\(num(lx + 22))\" y1=\"\(num(ly - 4))\" y2=\"\(num(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"5 3\"" : "")/>"
            o += "<text x=\"\(num(lx + 28))\" y=\"\(num(ly))\">\(esc(text))</text>\n"
            ly += 18
        }
        legend("reference", "#1f5fbf", dashed: false)
        if r.heldout != nil { legend("held-out", "#e08a00", dashed: true) }
        legend(String(format: "threshold %.3g", s.threshold), "#c33", dashed: true)
        ly += 6
        for line in [String(format: "AUC ref %.4f", r.aucReference)] + (r.aucHeldout.map { [String(format: "AUC held-out %.4f", $0)] } ?? [])
            + ["(∫f d(fraction), linear)", "circuit: \(r.crossing.kept) kept", String(format: "= %.4g of candidates", r.crossing.fraction),
               String(format: "f ref %.4f", r.crossing.reference.f)] + (r.crossing.heldout.map { [String(format: "f held-out %.4f", $0.f)] } ?? []) {
            o += "<text x=\"\(num(lx))\" y=\"\(num(ly))\">\(esc(line))</text>\n"
            ly += 16
        }
        o += "</svg>\n"
        return o
    }
}
