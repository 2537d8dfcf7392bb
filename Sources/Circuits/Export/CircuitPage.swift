import Foundation

// MARK: - circuit.html: one self-contained page for one or several circuits
//
// Built on the shared shell (`HTMLPage`, provenance table first) and plot (`LinePlotSVG`):
// - f vs kept fraction for every entry (a method, an ablation…), reference solid and held-out dashed,
//   mean over seeds with ± SEM bars, on a log axis (none kept on its own tick);
// - the table of circuit sizes, f and AUCs, each mean ± SEM over seeds;
// - which heads (a layer × head grid, shaded by the share of seeds that kept each) or neurons (the most
//   often kept, per layer counts) each circuit holds.
// Every entry's label names its method, aggregation, granularity and ablation: those choices move the
// numbers more than the method does.

public struct CircuitPageEntry {
    public var label: String
    public var summary: CircuitSeedSummary
    public init(label: String, summary: CircuitSeedSummary) { self.label = label; self.summary = summary }

    /// "lrp (abs-per-token) · heads · zero ablation" from a run's settings.
    public static func label(_ s: CircuitSettings) -> String {
        var m = s.method.rawValue
        if s.method == .lrp || s.method == .gradient { m += " (\(s.aggregation.rawValue))" }
        return "\(m) · \(s.granularity.rawValue) · \(s.ablation.rawValue) ablation · score sign \(s.rank.rawValue)"
    }
}

public enum CircuitPage {
    /// `layers` × `unitsPerLayer`: the model's shape at the entries' granularity (heads: nHeads; neurons: dFF).
    public static func render(title: String, provenance: [(String, String)], entries: [CircuitPageEntry], threshold: Double,
                              layers: Int, unitsPerLayer: Int) -> String {
        var body = "<h2>Faithfulness vs kept fraction</h2>\n"
        var series: [PlotSeries] = []
        for e in entries {
            let c = e.summary.meanCurve
            series.append(PlotSeries(name: "\(e.label) · reference", points: c.map { ($0.fraction, $0.fReference.mean, $0.fReference.sem) }))
            if c.allSatisfy({ $0.fHeldout != nil }), !c.isEmpty {
                series.append(PlotSeries(name: "\(e.label) · held-out", points: c.map { ($0.fraction, $0.fHeldout!.mean, $0.fHeldout!.sem) },
                                         dashed: true))
            }
        }
        body += LinePlotSVG.render(title: "f = (m(C) − m(∅)) / (m(M) − m(∅)); mean ± SEM over seeds", xLabel: "kept fraction of candidates (log)",
                                   yLabel: "faithfulness f", series: series, logX: true, zeroLabel: "none",
                                   hline: (threshold, String(format: "threshold %.3g", threshold)), width: 1100, height: 380)
        body += "<p class=\"note\">Solid: reference prompts (the circuit was found on them); dashed: held-out prompts. "
            + "Bars: ± SEM over seeds (none with one seed). Hover a point for its value.</p>\n"
        body += "<h2>Smallest circuit with f ≥ \(HTMLPage.escape(String(format: "%.3g", threshold))) on the reference set</h2>\n"
        let rows = entries.map { e -> [String] in
            let s = e.summary
            return [e.label, "\(s.runs.count)", s.kept.text(digits: 1) + " of \(s.runs.first?.total ?? 0)", s.fraction.text(digits: 4),
                    s.fReference.text(), s.fHeldout?.text() ?? "–", s.aucReference.text(digits: 4), s.aucHeldout?.text(digits: 4) ?? "–"]
        }
        body += HTMLPage.table(header: ["circuit", "seeds", "size", "kept fraction", "f reference", "f held-out (at that size)",
                                        "AUC reference", "AUC held-out"], rows: rows, numeric: [1, 2, 3, 4, 5, 6, 7],
                               caption: "mean ± SEM over seeds (SEM = sample sd / √n); AUC = ∫ f d(kept fraction), linear axis (MIB's CPR)")
        for e in entries where e.summary.granularity != .weights {
            body += "<h2>\(e.summary.granularity == .heads ? "Heads" : "Neurons") in the circuit: \(HTMLPage.escape(e.label))</h2>\n"
            body += e.summary.granularity == .heads ? headGrid(e.summary, layers: layers, heads: unitsPerLayer) : neuronTable(e.summary, layers: layers)
        }
        return HTMLPage.document(title: title, provenance: provenance, body: body)
    }

    /// Layer rows × head columns; a cell's shade is the share of seeds whose circuit kept that head.
    static func headGrid(_ s: CircuitSeedSummary, layers: Int, heads: Int) -> String {
        let n = max(s.runs.count, 1)
        var count: [CircuitUnit: Int] = [:]
        for r in s.recurrence { count[r.unit] = r.seeds }
        let cell = 16.0, left = 56.0, top = 28.0
        let w = left + Double(heads) * cell + 180, h = top + Double(layers) * cell + 16
        var o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" "
            + "font-family=\"sans-serif\" font-size=\"10\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for hd in 0..<heads {
            o += "<text x=\"\(left + (Double(hd) + 0.5) * cell)\" y=\"\(top - 6)\" text-anchor=\"middle\">h\(hd)</text>"
        }
        o += "\n"
        for l in 0..<layers {
            let y = top + Double(l) * cell
            o += "<text x=\"\(left - 6)\" y=\"\(y + cell - 4)\" text-anchor=\"end\">layer \(l)</text>"
            for hd in 0..<heads {
                let k = count[CircuitUnit(layer: l, index: hd)] ?? 0
                let share = Double(k) / Double(n)
                o += "<rect x=\"\(left + Double(hd) * cell)\" y=\"\(y)\" width=\"\(cell - 1)\" height=\"\(cell - 1)\" fill=\"#1f5fbf\" "
                    + "fill-opacity=\"\(String(format: "%.3f", 0.06 + 0.94 * share))\"><title>a\(l).h\(hd): kept by \(k) of \(n) seeds</title></rect>"
            }
            o += "\n"
        }
        let lx = left + Double(heads) * cell + 16
        for (i, k) in [0, n].enumerated() {
            let share = Double(k) / Double(n)
            o += "<rect x=\"\(lx)\" y=\"\(top + Double(i) * 20)\" width=\"14\" height=\"14\" fill=\"#1f5fbf\" fill-opacity=\"\(String(format: "%.3f", 0.06 + 0.94 * share))\"/>"
            o += "<text x=\"\(lx + 20)\" y=\"\(top + Double(i) * 20 + 11)\">kept by \(k) of \(n) seeds</text>\n"
        }
        o += "</svg>\n"
        let every = s.recurrence.filter { $0.seeds == n }.map { $0.unit.name(.heads) }
        return o + "<p class=\"note\">Kept by every seed (\(every.count)): \(HTMLPage.escape(every.isEmpty ? "none" : every.joined(separator: " ")))</p>\n"
    }

    /// The 40 most often kept neurons and the kept count per layer (mean over seeds).
    static func neuronTable(_ s: CircuitSeedSummary, layers: Int) -> String {
        let n = max(s.runs.count, 1)
        var perLayer = [Double](repeating: 0, count: layers)
        for r in s.runs { for u in r.units where u.layer < layers { perLayer[u.layer] += 1 / Double(n) } }
        var o = HTMLPage.table(header: ["layer"] + (0..<layers).map { "\($0)" }, rows: [["kept (mean)"] + perLayer.map { String(format: "%.1f", $0) }],
                               numeric: Set(1...max(layers, 1)), caption: "kept neurons per layer, mean over seeds")
        o += HTMLPage.table(header: ["neuron (m{layer}.n{index})", "kept by seeds"],
                            rows: s.recurrence.prefix(40).map { [$0.unit.name(.neurons), "\($0.seeds) of \(n)"] }, numeric: [1],
                            caption: "most often kept neurons (first 40)")
        return o
    }
}
