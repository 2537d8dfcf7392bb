import Foundation
import Transformer

// MARK: - graph.html: the edge circuit as a layered drawing (inline SVG, no graphviz)
//
// Columns: input, one per layer (its heads top to bottom, then its MLP), logits.
// Edges drawn: the `maxDrawn` best in-graph edges by |score| (all of them when fewer),
// coloured by the input they enter as EAP-IG's `to_image` colours them (q #FF00FF,
// k #00FF00, v #0000FF, MLP/logits black; negative scores red), width by |score|,
// hover (<title>) for name and value. A slider shows the top k of those edges.
// With curves (graph-eval), the faithfulness curves follow as a line plot.

public enum GraphPage {
    public static func render(_ sg: ScoredGraph, title: String, provenance: [(String, String)],
                              curves: [FaithfulnessCurve] = [], maxDrawn: Int = 400) -> String {
        let g = sg.graph, L = g.shape.nLayers, H = g.shape.nHeads, F = g.nForward
        let colW = 56.0, rowH = 30.0, left = 40.0, top = 30.0
        let width = left * 2 + colW * Double(L + 1), height = top * 2 + rowH * Double(H)
        func pos(forward u: Int) -> (Double, Double) {
            if u == 0 { return (left, top + rowH * Double(H - 1) / 2) }
            let l = g.layer(ofForward: u), r = (u - 1) % (H + 1)
            return (left + colW * (Double(l) + 0.5) + (r == H ? colW * 0.3 : 0), top + rowH * Double(min(r, H - 1)) + (r == H ? rowH * 0.5 : 0))
        }
        func pos(backward b: Int) -> (Double, Double) {
            if b == g.logitsInput { return (left + colW * Double(L + 1) - 10, top + rowH * Double(H - 1) / 2) }
            return pos(forward: g.forwardIndex(g.nodeName(ofBackward: b))!)
        }
        let ranked = sg.ranking(absolute: true).filter { sg.inGraph[$0] }.prefix(maxDrawn)
        let maxAbs = Double(ranked.map { abs(sg.scores[$0]) }.max() ?? 1)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"graph\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-size=\"9\">\n"
        for l in 0..<L {
            svg += "<text x=\"\(f(left + colW * (Double(l) + 0.5)))\" y=\"14\" text-anchor=\"middle\" fill=\"#555\">L\(l)</text>\n"
        }
        for (rank, e) in ranked.enumerated() {
            let u = e % F, b = e / F, s = Double(sg.scores[e])
            let name = g.backwardNames[b]
            let colour = s < 0 ? "#d62728" : name.hasSuffix("<q>") ? "#FF00FF" : name.hasSuffix("<k>") ? "#00FF00" : name.hasSuffix("<v>") ? "#0000FF" : "#000000"
            let (x0, y0) = pos(forward: u), (x1, y1) = pos(backward: b)
            let w = 0.4 + 3.6 * abs(s) / max(maxAbs, 1e-30)
            svg += "<path class=\"edge\" data-rank=\"\(rank)\" d=\"M\(f(x0)),\(f(y0)) C\(f((x0 + x1) / 2)),\(f(y0)) \(f((x0 + x1) / 2)),\(f(y1)) \(f(x1)),\(f(y1))\" "
                + "stroke=\"\(colour)\" stroke-width=\(quote(f(w))) fill=\"none\" opacity=\"0.7\">"
                + "<title>\(HTMLPage.escape(g.edgeName(u, b))): \(String(format: "%.4g", s))</title></path>\n"
        }
        let inNodes = sg.nodesInGraph
        for (i, name) in g.nodeNames.enumerated() {
            let (x, y) = i < F ? pos(forward: i) : pos(backward: g.logitsInput)
            let on = inNodes.contains(name)
            let isMLP = name.hasPrefix("m")
            let fill = on ? (isMLP ? "#ffe9b3" : "#d7e6ff") : "#f4f4f4"
            let score = sg.nodeScores.flatMap { i < $0.count && i > 0 ? String(format: " score %.4g", $0[i]) : nil } ?? ""
            if isMLP || i == 0 || i == F {
                svg += "<rect x=\"\(f(x - 9))\" y=\"\(f(y - 6))\" width=\"18\" height=\"12\" fill=\"\(fill)\" stroke=\"#888\">"
            } else {
                svg += "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"5\" fill=\"\(fill)\" stroke=\"#888\">"
            }
            svg += "<title>\(HTMLPage.escape(name))\(on ? " (in circuit)" : "")\(score)</title>" + (isMLP || i == 0 || i == F ? "</rect>\n" : "</circle>\n")
        }
        svg += "</svg>\n"
        var body = "<h2>Circuit</h2>\n<p class=\"note\">\(sg.inGraphCount) of \(g.edgeCount) edges in the circuit; the \(ranked.count) "
            + "largest by |score| are drawn. Colour = the input the edge enters (q magenta, k green, v blue, MLP/logits black; "
            + "negative score red), width ∝ |score|; hover for values.</p>\n"
        body += "<p><label>edges shown: <input type=\"range\" id=\"topk\" min=\"0\" max=\"\(ranked.count)\" value=\"\(ranked.count)\"> "
            + "<span id=\"topkv\">\(ranked.count)</span></label></p>\n<div style=\"overflow-x:auto\">\(svg)</div>\n"
        if !curves.isEmpty {
            body += "<h2>Faithfulness</h2>\n"
            let series = curves.map { c in
                PlotSeries(name: c.absolute ? String(format: "|score| (CMD %.3f)", c.areaFromOne) : String(format: "signed (CPR %.3f)", c.area),
                           points: zip(c.fractions, c.faithfulness).map { (x: $0, y: $1, err: nil) })
            }
            body += LinePlotSVG.render(title: "f(k) = (m(C_k) − m(∅)) / (m(M) − m(∅))", xLabel: "fraction of edges kept",
                                       yLabel: "faithfulness", series: series, logX: true, hline: (1, "full model"))
            var rows: [[String]] = []
            for (i, x) in curves[0].fractions.enumerated() {
                rows.append([String(format: "%.1f %%", x * 100), "\(curves[0].edgeCounts[i])"] + curves.map { String(format: "%.4f", $0.faithfulness[i]) })
            }
            body += HTMLPage.table(header: ["edges", "count"] + curves.map { $0.absolute ? "f (|score|)" : "f (signed)" }, rows: rows,
                                   numeric: Set(1...(1 + curves.count)))
        }
        let script = """
        const s = document.getElementById('topk'), v = document.getElementById('topkv');
        const edges = Array.from(document.querySelectorAll('path.edge'));
        s.addEventListener('input', () => {
          const k = Number(s.value); v.textContent = String(k);
          for (const e of edges) e.style.display = Number(e.dataset.rank) < k ? '' : 'none';
        });
        """
        return HTMLPage.document(title: title, provenance: provenance, body: body, script: script)
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }
    static func quote(_ s: String) -> String { "\"\(s)\"" }
}
