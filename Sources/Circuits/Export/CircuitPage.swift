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
    /// Head circuits: every kept head's attention from the final position to IO, S1 and S2 (IOI tasks), or
    /// why it is not shown. Ignored for neuron and weight circuits.
    public var headAttention: Result<IOIHeadAttention, HeadAttentionUnavailable>?
    public init(label: String, summary: CircuitSeedSummary, headAttention: Result<IOIHeadAttention, HeadAttentionUnavailable>? = nil) {
        self.label = label; self.summary = summary; self.headAttention = headAttention
    }

    /// "lrp (abs-per-token) · heads · zero ablation" from a run's settings.
    public static func label(_ s: CircuitSettings) -> String {
        var m = s.method.rawValue
        if s.method == .lrp || s.method == .gradient { m += " (\(s.aggregation.rawValue))" }
        return "\(m) · \(s.granularity.rawValue) · \(s.ablation.rawValue) ablation · score sign \(s.rank.rawValue)"
    }
}

/// Why a page has no head-attention table (shown on the page).
public struct HeadAttentionUnavailable: Error, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
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
        for e in entries {
            body += "<h2>Kept fraction per layer and matrix: \(HTMLPage.escape(e.label))</h2>\n" + keptHeatmap(e.summary)
        }
        for e in entries where e.summary.granularity != .weights {
            body += "<h2>\(e.summary.granularity == .heads ? "Heads" : "Neurons") in the circuit: \(HTMLPage.escape(e.label))</h2>\n"
            body += e.summary.granularity == .heads ? headGrid(e.summary, layers: layers, heads: unitsPerLayer) : neuronTable(e.summary, layers: layers)
            if e.summary.granularity == .heads {
                body += "<h3>Attention of the kept heads from the final position to IO, S1 and S2</h3>\n"
                switch e.headAttention {
                case .success(let a)?: body += attentionTable(a, e.summary)
                case .failure(let why)?: body += "<p class=\"note\">Not shown: \(HTMLPage.escape(why.reason)).</p>\n"
                case nil: body += "<p class=\"note\">Not measured for this page.</p>\n"
                }
            }
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

    /// Rows = layers, columns = the candidate tensors' roles in a layer (q/k/v/o/gate/up/down for weight circuits;
    /// the layer's heads or neurons otherwise); a cell is the kept fraction of that tensor, mean over seeds.
    static func keptHeatmap(_ s: CircuitSeedSummary) -> String {
        var columns: [String] = [], layers: [Int] = []
        var sum: [String: (fraction: Double, kept: Double, total: Int, n: Int)] = [:]
        for r in s.runs {
            for t in r.tensors {
                let col = t.matrix
                if !columns.contains(col) { columns.append(col) }
                if !layers.contains(t.layer) { layers.append(t.layer) }
                let key = "\(t.layer)|\(col)", old = sum[key] ?? (0, 0, t.total, 0)
                sum[key] = (old.fraction + (t.total > 0 ? Double(t.kept) / Double(t.total) : 0), old.kept + Double(t.kept), t.total, old.n + 1)
            }
        }
        guard !columns.isEmpty else { return "<p class=\"note\">No per-tensor counts recorded.</p>\n" }
        layers.sort()
        let unit = s.granularity == .weights ? "weights" : s.granularity.rawValue
        let cellW = 78.0, cellH = 16.0, left = 64.0, top = 40.0
        let w = left + Double(columns.count) * cellW + 150, h = top + max(Double(layers.count) * cellH, 3 * 20) + 12   // room for the legend
        func shade(_ f: Double) -> String {
            // white (nothing kept) → #1f5fbf (everything kept)
            let t = min(max(f, 0), 1)
            return String(format: "rgb(%d,%d,%d)", Int(255 - (255 - 31) * t), Int(255 - (255 - 95) * t), Int(255 - (255 - 191) * t))
        }
        var o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" "
            + "font-family=\"sans-serif\" font-size=\"10\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for (j, col) in columns.enumerated() {
            let short = col.split(separator: ".").last.map(String.init) ?? col
            o += "<text x=\"\(left + (Double(j) + 0.5) * cellW)\" y=\"\(top - 8)\" text-anchor=\"middle\"><title>\(HTMLPage.escape(col))</title>\(HTMLPage.escape(short))</text>"
        }
        o += "\n"
        for (i, l) in layers.enumerated() {
            let y = top + Double(i) * cellH
            o += "<text x=\"\(left - 6)\" y=\"\(y + cellH - 4)\" text-anchor=\"end\">layer \(l)</text>"
            for (j, col) in columns.enumerated() {
                let x = left + Double(j) * cellW
                guard let v = sum["\(l)|\(col)"], v.n > 0 else {
                    o += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cellW - 1)\" height=\"\(cellH - 1)\" fill=\"#f4f4f4\"><title>layer \(l) \(HTMLPage.escape(col)): not a candidate</title></rect>"
                    continue
                }
                let f = v.fraction / Double(v.n)
                let tip = String(format: "layer %d %@: kept fraction %.4f (mean %.1f of %d %@ over %d seed(s))", l, col, f, v.kept / Double(v.n), v.total, unit, v.n)
                o += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cellW - 1)\" height=\"\(cellH - 1)\" fill=\"\(shade(f))\"><title>\(HTMLPage.escape(tip))</title></rect>"
                o += "<text x=\"\(x + cellW / 2)\" y=\"\(y + cellH - 4)\" text-anchor=\"middle\" fill=\"\(f > 0.55 ? "white" : "#222")\">\(String(format: "%.2f", f))</text>"
            }
            o += "\n"
        }
        let lx = left + Double(columns.count) * cellW + 16
        for (i, f) in [0.0, 0.5, 1.0].enumerated() {
            o += "<rect x=\"\(lx)\" y=\"\(top + Double(i) * 20)\" width=\"14\" height=\"14\" fill=\"\(shade(f))\" stroke=\"#ccc\"/>"
            o += "<text x=\"\(lx + 20)\" y=\"\(top + Double(i) * 20 + 11)\">\(String(format: "%.1f", f)) kept</text>\n"
        }
        o += "</svg>\n"
        let what = s.granularity == .weights ? "the fraction of each weight matrix's entries kept"
            : s.granularity == .heads ? "the fraction of the layer's attention heads kept" : "the fraction of the layer's MLP neurons kept"
        return o + "<p class=\"note\">Each cell: \(what), mean over \(s.runs.count) seed(s); hover for counts. Grey: not a candidate (outside --layers).</p>\n"
    }

    /// Every head kept by at least one seed: mean ± SEM over the reference prompts of the final position's attention
    /// to the IO, S1 and S2 tokens (full model, no ablation).
    static func attentionTable(_ a: IOIHeadAttention, _ s: CircuitSeedSummary) -> String {
        let n = max(s.runs.count, 1)
        var seeds: [CircuitUnit: Int] = [:]
        for r in s.recurrence { seeds[r.unit] = r.seeds }
        let rows = a.rows.map { r -> [String] in
            let io = r.io.mean, s2 = r.s2.mean
            let role = io >= 0.3 && io > 2 * max(r.s1.mean, s2) ? "looks at IO (name-mover-like)"
                : s2 >= 0.3 && s2 > 2 * max(io, r.s1.mean) ? "looks at S2" : r.s1.mean >= 0.3 && r.s1.mean > 2 * max(io, s2) ? "looks at S1" : ""
            return [r.head.name(.heads), "\(seeds[r.head] ?? 0) of \(n)", r.io.text(), r.s1.text(), r.s2.text(),
                    String(format: "%.3f", r.io.mean + r.s1.mean + r.s2.mean), role]
        }
        var o = HTMLPage.table(header: ["head", "kept by seeds", "attention → IO", "attention → S1", "attention → S2", "sum of the three", "pattern"],
                               rows: rows, numeric: [2, 3, 4, 5],
                               caption: "final position's attention probability (hook_pattern of the full model's own forward), mean ± SEM over \(a.prompts) reference prompts")
        o += "<p class=\"note\">IO = the indirect object's name token, S1 / S2 = the first / second mention of the subject, found from the answer and "
            + "distractor token ids. \"pattern\" names a token that gets ≥ 0.3 and more than twice either other one; it is a hint, not a causal test."
            + (a.skipped > 0 ? " \(a.skipped) prompt(s) skipped: their names could not be located." : "") + "</p>\n"
        return o
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
