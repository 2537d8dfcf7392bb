import Foundation
import XCTest
@testable import Circuits
import TestSupport

/// The shared report shell and plot: escaped, self-contained, values where a reader hovers, renders in a browser.
final class HTMLPageTests: XCTestCase {
    func testMeanSEMClosedForm() {
        // values 1, 2, 3, 4: mean 2.5, sd = sqrt(5/3), SEM = sd / 2 = 0.6455
        XCTAssertEqual(HTMLPage.meanSEM([1, 2, 3, 4]), "2.500 ± 0.645")
        XCTAssertEqual(HTMLPage.meanSEM([7], digits: 1), "7.0 (n = 1)")
        XCTAssertEqual(HTMLPage.meanSEM([]), "–")
    }

    /// y tick labels over a narrow range get enough decimals to differ (log10 perplexities 1.4760…1.4780 were
    /// all printed "1.48"); a wide range keeps the usual 3 significant digits.
    func testNarrowRangeTickLabelsDiffer() {
        func yLabels(_ ys: [Double]) -> [String] {
            let svg = LinePlotSVG.render(title: "t", xLabel: "x", yLabel: "y", series: [PlotSeries(name: "s", points: ys.enumerated().map { (Double($0.offset + 1), $0.element, nil) })])
            let re = try! NSRegularExpression(pattern: "x=\"64\\.0\" y=\"[0-9.]+\" text-anchor=\"end\">([^<]*)<")
            return re.matches(in: svg, range: NSRange(svg.startIndex..., in: svg)).map { String(svg[Range($0.range(at: 1), in: svg)!]) }
        }
        let narrow = yLabels([1.4760, 1.4780])
        XCTAssertEqual(narrow.count, 5)
        XCTAssertEqual(Set(narrow).count, 5, "\(narrow)")
        let wide = yLabels([0.1, 0.5])
        XCTAssertEqual(Set(wide).count, 5, "\(wide)")
        XCTAssertTrue(wide.allSatisfy { $0.count <= 5 }, "\(wide)")
    }

    /// x tick labels of a linear sweep 1 000 … 20 000 differ and print the counts in full (they were "1000", "5750",
    /// "1e+04", "2e+04", "2e+04"); a sweep past a million still gets distinct labels.
    func testSweepTickLabelsDiffer() {
        func xLabels(_ xs: [Double]) -> [String] {
            let svg = LinePlotSVG.render(title: "t", xLabel: "x", yLabel: "y", series: [PlotSeries(name: "s", points: xs.map { ($0, 1, nil) })])
            let re = try! NSRegularExpression(pattern: "y=\"[0-9.]+\" text-anchor=\"middle\">([^<]*)<")
            return re.matches(in: svg, range: NSRange(svg.startIndex..., in: svg)).map { String(svg[Range($0.range(at: 1), in: svg)!]) }
        }
        XCTAssertEqual(Array(xLabels([1000, 7000, 20000]).prefix(5)), ["1000", "5750", "10500", "15250", "20000"])
        let big = Array(xLabels([1e6, 2.2e6]).prefix(5))
        XCTAssertEqual(Set(big).count, 5, "\(big)")
        XCTAssertEqual(big.first, "1e+06")
    }

    /// The faults page's plot: a log y axis over several decades puts its ticks at powers of ten labelled with the values
    /// (not log10 numbers); asymmetric whiskers (10th–90th percentile) are drawn from lo to hi, an infinite end stops at
    /// the plot edge; a fixed 0…1 range labels 0 and 1; dodged series sit apart.
    func testLogAxisWhiskersRangeAndDodge() {
        let s = [PlotSeries(name: "a", points: [(1e-6, 30, nil), (1e-5, 3e4, nil)], ranges: [(29, 40), (100, .infinity)]),
                 PlotSeries(name: "b", points: [(1e-6, 30, nil), (1e-5, 3e6, nil)], ranges: [(30, 30), (1e3, 1e7)])]
        let svg = LinePlotSVG.render(title: "t", xLabel: "x", yLabel: "y", series: s, logX: true, logY: true, dodge: 4)
        let re = try! NSRegularExpression(pattern: "x=\"64\\.0\" y=\"[0-9.]+\" text-anchor=\"end\">([^<]*)<")
        let labels = re.matches(in: svg, range: NSRange(svg.startIndex..., in: svg)).map { String(svg[Range($0.range(at: 1), in: svg)!]) }
        XCTAssertEqual(labels, ["100", "1000", "10000", "100000", "1e+06", "1e+07"])
        XCTAssertTrue(svg.contains("a: x = 1e-05, y = 30000 (range 100 … inf)"), svg)
        // Whisker of a's second point: from 100 up to the top edge (y = 36, the plot's top).
        XCTAssertTrue(svg.contains("y2=\"36.0\""), "an infinite percentile ends at the edge")
        // Dodge: a is 2 px left of b at the same BER.
        let cx = try! NSRegularExpression(pattern: "<circle cx=\"([0-9.]+)\"")
        let xs = cx.matches(in: svg, range: NSRange(svg.startIndex..., in: svg)).map { Double(svg[Range($0.range(at: 1), in: svg)!])! }
        XCTAssertEqual(xs.count, 4)
        XCTAssertEqual(xs[2] - xs[0], 4, accuracy: 0.11)
        let frac = LinePlotSVG.render(title: "t", xLabel: "x", yLabel: "y", series: [PlotSeries(name: "f", points: [(1, 0.2, nil), (2, 0.4, nil)])], yRange: 0...1)
        let fl = re.matches(in: frac, range: NSRange(frac.startIndex..., in: frac)).map { String(frac[Range($0.range(at: 1), in: frac)!]) }
        XCTAssertEqual(fl, ["0", "0.25", "0.5", "0.75", "1"])
    }

    func testPageAndPlotAreEscapedAndRender() throws {
        let plot = LinePlotSVG.render(title: "toxicity <vs> count", xLabel: "pruned neurons", yLabel: "mean toxicity",
                                      series: [PlotSeries(name: "lrp & co", points: [(0, 0.4, 0.05), (10, 0.3, 0.04), (100, 0.1, nil)]),
                                               PlotSeries(name: "random", points: [(0, 0.4, nil), (10, 0.41, nil), (100, 0.39, nil)], dashed: true)],
                                      logX: true, zeroLabel: "dense", hline: (0.5, "threshold"))
        XCTAssertTrue(plot.contains("toxicity &lt;vs&gt; count"))
        XCTAssertTrue(plot.contains("lrp &amp; co: x = 10, y = 0.3 ± 0.04"))
        XCTAssertTrue(plot.contains(">dense<"), "the x ≤ 0 point gets its own labelled tick on a log axis")
        let page = HTMLPage.document(title: "Report <1>", provenance: [("model", "m&m"), ("split", "held-out")],
                                     body: plot + HTMLPage.table(header: ["a", "b"], rows: [["<x>", "1.5"]], numeric: [1]))
        XCTAssertTrue(page.hasPrefix("<!DOCTYPE html>"))
        XCTAssertTrue(page.contains("<th>model</th><td>m&amp;m</td>"))
        XCTAssertTrue(page.contains("<td>&lt;x&gt;</td><td class=\"num\">1.5</td>"))
        for bad in ["src=", "href=", "@import", "<link"] { XCTAssertFalse(page.lowercased().contains(bad), bad) }
        let dir = try Scratch.dir(self)
        let url = dir.appendingPathComponent("report.html")
        try page.write(to: url, atomically: true, encoding: .utf8)
        try HeadlessBrowser.check(url)
    }
}
