import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// The HTML heatmap: every token escaped, values present, self-contained, targets/conservation/rule shown.
final class HeatmapTests: XCTestCase {
    typealias F = AttributionFixtures

    func report(_ texts: [String], _ rel: [Float]) -> HeatmapReport {
        HeatmapReport(title: "t <b>", model: "m&m", rule: "attnlrp", seedValue: "logit",
                      tokens: texts.enumerated().map { HeatmapToken(position: $0, id: 100 + $0, text: $1, relevance: rel[$0], isTarget: $0 == texts.count - 1) },
                      targets: ["logit of \" <Paris>\" (id 7) at position 3 = 1.5"], explained: 2, inputTotal: 1.5, biasRelevance: 0.25,
                      notes: ["note & more"])
    }

    func testEveryTokenEscapedValuesAndSelfContained() {
        let texts = ["<s>", " <script>alert('x')</script>", " & \"quoted\"", "\nnew", " ok"]
        let html = Heatmap.html(report(texts, [0.5, -2, 1, 0, 0.25]))
        XCTAssertFalse(html.contains("<script"), "raw script tag must be escaped")
        XCTAssertTrue(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
        XCTAssertTrue(html.contains("&lt;s&gt;"))
        XCTAssertTrue(html.contains(" &amp; &quot;quoted&quot;"))
        XCTAssertTrue(html.contains("↵new"))
        for t in texts { XCTAssertTrue(html.contains(Heatmap.escape(t.replacingOccurrences(of: "\n", with: "↵"))), t) }
        // Values and ids, on hover and in the table.
        XCTAssertTrue(html.contains("title=\"position 1 · id 101 · R = -2 · normalised -1.0000\""))
        XCTAssertTrue(html.contains("<td>101</td>"))
        XCTAssertTrue(html.contains("<td>0.25</td>"))
        // Normalised by max |R| = 2: −2 → full blue, 1 → half red.
        XCTAssertTrue(html.contains("background:rgba(30,80,220,1.000)"))
        XCTAssertTrue(html.contains("background:rgba(220,30,30,0.500)"))
        // Targets, conservation ratio, rule; escaped header fields.
        XCTAssertTrue(html.contains("&quot; &lt;Paris&gt;&quot; (id 7)"))
        XCTAssertTrue(html.contains("Σ input / Σ explained = 0.7500"))
        XCTAssertTrue(html.contains("attnlrp"))
        XCTAssertTrue(html.contains("m&amp;m"))
        XCTAssertTrue(html.contains("<title>t &lt;b&gt;</title>"))
        // Self-contained: no external resources of any kind.
        let lower = html.lowercased()
        for bad in ["src=", "href=", "http:", "https:", "@import", "url(", "<link", "<script", "\\(", "$$"] {
            XCTAssertFalse(lower.contains(bad), "contains \(bad)")
        }
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertTrue(html.hasSuffix("</html>\n"))
    }

    /// The page renders in a real browser with nothing on the console (scripts/check_html.sh).
    func testRendersInHeadlessChromium() throws {
        let dir = try Scratch.dir(self)
        let page = dir.appendingPathComponent("heatmap.html")
        try Heatmap.html(report(["<s>", " The", " <b>cat</b>", " sat"], [0.5, -2, 1, 0.25])).write(to: page, atomically: true, encoding: .utf8)
        let shot = try HeadlessBrowser.check(page)
        let size = (try FileManager.default.attributesOfItem(atPath: shot.path)[.size] as? Int) ?? 0
        XCTAssertGreaterThan(size, 1000, "the screenshot shows a rendered page")
    }

    func testEscapeAndColour() {
        XCTAssertEqual(Heatmap.escape(#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;")
        XCTAssertEqual(Heatmap.escape("a\u{1}b"), "a\\x01b")
        XCTAssertEqual(Heatmap.color(0), "rgba(220,30,30,0.000)")
        XCTAssertEqual(Heatmap.color(-0.25), "rgba(30,80,220,0.250)")
        XCTAssertEqual(Heatmap.color(3), "rgba(220,30,30,1.000)")
        let zero = Heatmap.html(report(["a", "b"], [0, 0]))
        XCTAssertTrue(zero.contains("normalised 0.0000"), "all-zero relevance does not divide by zero")
    }

    func testOPTInputRelevanceIncludesPositionEmbeddings() throws {
        let model = try F.tiny("tiny-opt")
        let ids = [2, 17, 99, 5, 140]
        let r = try model.lrp(tokens: ids, explain: .groups([[ExplainTerm(position: 4, token: 7), ExplainTerm(position: 4, token: 8, coefficient: -1)]]),
                              rules: .attnLRP, sink: nil)
        let pos = try XCTUnwrap(r.positionRelevance)
        let rep = HeatmapReport.from(tokens: ids, result: r, tokenizer: nil, model: "tiny-opt", rule: "attnlrp", seedValue: .logit)
        XCTAssertEqual(rep.tokens.map(\.relevance), zip(r.tokenRelevance, pos).map { $0 + $1 })
        XCTAssertEqual(rep.tokens.map(\.text), ids.map { "#\($0)" }, "no tokenizer: ids shown")
        XCTAssertEqual(rep.tokens.map(\.relevance).reduce(0.0) { $0 + Double($1) }, r.inputTotal, accuracy: 1e-4 * max(1, abs(r.inputTotal)))
        XCTAssertTrue(rep.notes.contains { $0.contains("position-embedding") })
        XCTAssertEqual(rep.targets.count, 2)
        XCTAssertTrue(rep.targets[1].hasPrefix("− logit of"), rep.targets[1])
    }

    func testReportFromAnLRPPass() throws {
        let m = try F.stories()
        let tok = try m.requireTokenizer()
        let ids = try tok.encode("Once upon a time, Lily & Tom <went>")
        let r = try m.model.lrp(tokens: ids, explain: .lastMax, rules: .attnLRP, sink: nil)
        let rep = HeatmapReport.from(tokens: ids, result: r, tokenizer: tok, model: "stories", rule: "attnlrp", seedValue: .logit)
        XCTAssertEqual(rep.tokens.map(\.id), ids)
        XCTAssertEqual(rep.tokens.map(\.relevance), r.tokenRelevance)
        XCTAssertEqual(rep.tokens.filter(\.isTarget).map(\.position), [ids.count - 1])
        XCTAssertEqual(rep.targets.count, 1)
        XCTAssertEqual(rep.conservation!, r.inputTotal / r.explained, accuracy: 1e-12)
        let html = Heatmap.html(rep)
        for id in ids { XCTAssertTrue(html.contains(Heatmap.escape(tok.tokenText(id))), "token \(id)") }
        XCTAssertTrue(html.contains("class=\"t tgt\""))
        XCTAssertTrue(html.contains("background:rgba(") && html.contains(",1.000)"), "the max-|R| token is fully coloured")
    }
}
