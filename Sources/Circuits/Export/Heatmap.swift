import Foundation
import Tokenize
import Transformer

// MARK: - Per-token input relevance as a self-contained HTML heatmap
//
// One HTML file with inline CSS, no scripts, no external assets, no LaTeX:
// tokens coloured red (positive) / blue (negative) with opacity |R| / max|R|,
// the raw value and token id on hover (title attribute), and a table with
// every value so nothing depends on hovering. Every piece of text that comes
// from the prompt or the tokenizer is HTML-escaped.

/// One displayed token.
public struct HeatmapToken: Equatable, Sendable {
    public var position: Int
    public var id: Int
    public var text: String
    /// Input relevance at this position (token embedding, plus position embedding for OPT).
    public var relevance: Float
    /// Whether an explained logit sits at this position.
    public var isTarget: Bool
    public init(position: Int, id: Int, text: String, relevance: Float, isTarget: Bool) {
        self.position = position; self.id = id; self.text = text; self.relevance = relevance; self.isTarget = isTarget
    }
}

/// Everything a heatmap page shows.
public struct HeatmapReport: Sendable {
    public var title: String
    public var model: String
    public var rule: String
    public var seedValue: String
    public var tokens: [HeatmapToken]
    /// Human-readable explained terms ("position 6 predicts ' Paris' (id 6342): logit 12.3").
    public var targets: [String]
    public var explained: Double
    public var inputTotal: Double
    public var biasRelevance: Double
    public var notes: [String]

    /// Σ input relevance / Σ explained (nil when nothing was explained).
    public var conservation: Double? { explained != 0 ? inputTotal / explained : nil }

    /// Builds the report for one LRP pass over `tokens`.
    public static func from(tokens: [Int], result r: LRPResult, tokenizer: Tokenizer?, model: String, rule: String,
                            seedValue: SeedValue) -> HeatmapReport {
        let targetPositions = Set(r.terms.map(\.term.position))
        func text(_ id: Int) -> String { tokenizer?.tokenText(id) ?? "#\(id)" }
        let toks = tokens.enumerated().map { t, id in
            HeatmapToken(position: t, id: id, text: text(id), relevance: r.tokenRelevance[t] + (r.positionRelevance?[t] ?? 0),
                         isTarget: targetPositions.contains(t))
        }
        let targets = r.terms.map { tl -> String in
            let coef = tl.term.coefficient == 1 ? "" : tl.term.coefficient == -1 ? "− " : "\(tl.term.coefficient) × "
            return "\(coef)logit of \"\(text(tl.term.token))\" (id \(tl.term.token)) at position \(tl.term.position) = "
                + String(format: "%.4f", tl.logit)
        }
        var notes = ["Seed: \(seedValue == .logit ? "each explained quantity seeded with its value (R_out = y)" : "each explained quantity seeded with 1")."]
        if r.positionRelevance != nil { notes.append("Input relevance per position = token-embedding + position-embedding relevance (OPT).") }
        return HeatmapReport(title: "Input relevance", model: model, rule: rule, seedValue: seedValue.rawValue, tokens: toks,
                             targets: targets, explained: r.explained, inputTotal: r.inputTotal, biasRelevance: r.biasRelevance,
                             notes: notes)
    }
}

public enum Heatmap {
    /// Escapes text for HTML element content and quoted attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters would be invisible or invalid: show their code.
                if ch.value < 0x20 && ch != "\n" && ch != "\t" || ch.value == 0x7F { out += String(format: "\\x%02X", ch.value) }
                else { out.unicodeScalars.append(ch) }
            }
        }
        return out
    }

    /// Background for a normalised value v ∈ [-1, 1]: red for v > 0, blue for v < 0, opacity |v|.
    public static func color(_ v: Double) -> String {
        let a = min(1, abs(v))
        return v >= 0 ? String(format: "rgba(220,30,30,%.3f)", a) : String(format: "rgba(30,80,220,%.3f)", a)
    }

    /// The token as shown: spaces kept (pre-wrap), newlines as ↵ plus a line break, empty as ∅.
    static func display(_ text: String) -> (shown: String, breakAfter: Bool) {
        if text.isEmpty { return ("∅", false) }
        let nl = text.hasSuffix("\n")
        return (escape(text.replacingOccurrences(of: "\n", with: "↵").replacingOccurrences(of: "\t", with: "⇥")), nl)
    }

    /// The whole page.
    public static func html(_ r: HeatmapReport) -> String {
        let maxAbs = r.tokens.reduce(Float(0)) { max($0, abs($1.relevance)) }
        func norm(_ x: Float) -> Double { maxAbs > 0 ? Double(x / maxAbs) : 0 }
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(escape(r.title))</title>
        <style>
        body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#111}
        .heat{font-family:ui-monospace,monospace;font-size:15px;line-height:2.1;white-space:pre-wrap;border:1px solid #ccc;padding:1em}
        .t{padding:2px 1px;border-radius:3px}
        .tgt{outline:2px solid #111;outline-offset:1px}
        table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}
        td.s{text-align:left;font-family:ui-monospace,monospace;white-space:pre}
        .legend span{padding:2px 8px;margin-right:4px}
        </style></head><body>
        <h1>\(escape(r.title))</h1>

        """
        h += "<p><b>Model:</b> \(escape(r.model))<br><b>Rule:</b> \(escape(r.rule))<br><b>Seed value:</b> \(escape(r.seedValue))</p>\n"
        h += "<p><b>Explained:</b></p><ul>\n" + r.targets.map { "<li>\(escape($0))</li>\n" }.joined() + "</ul>\n"
        h += String(format: "<p><b>Σ explained:</b> %.6g &nbsp; <b>Σ input relevance:</b> %.6g &nbsp; <b>Σ bias/β relevance:</b> %.6g<br>",
                     r.explained, r.inputTotal, r.biasRelevance)
        if let c = r.conservation {
            h += String(format: "<b>Conservation ratio</b> Σ input / Σ explained = %.4f (with biases: %.4f)</p>\n",
                        c, (r.inputTotal + r.biasRelevance) / r.explained)
        } else {
            h += "<b>Conservation ratio:</b> undefined (nothing explained)</p>\n"
        }
        h += String(format: "<p class=\"legend\">Colour = relevance / max|relevance| (max |R| = %.6g): ", Double(maxAbs))
            + "<span style=\"background:\(color(1))\">+1</span><span style=\"background:\(color(0.5))\">+0.5</span>"
            + "<span style=\"background:\(color(-0.5))\">−0.5</span><span style=\"background:\(color(-1))\">−1</span>"
            + " &nbsp; outlined = position of an explained logit. Hover a token for its value.</p>\n"
        h += "<div class=\"heat\">"
        for t in r.tokens {
            let (shown, br) = display(t.text)
            let tip = escape("position \(t.position) · id \(t.id) · R = \(String(format: "%.6g", Double(t.relevance)))"
                             + " · normalised \(String(format: "%.4f", norm(t.relevance)))")
            h += "<span class=\"t\(t.isTarget ? " tgt" : "")\" style=\"background:\(color(norm(t.relevance)))\" title=\"\(tip)\">\(shown)</span>"
            if br { h += "\n" }
        }
        h += "</div>\n"
        for n in r.notes { h += "<p><small>\(escape(n))</small></p>\n" }
        h += "<h2>Values</h2>\n<table><tr><th>position</th><th>id</th><th>token</th><th>relevance</th><th>normalised</th></tr>\n"
        for t in r.tokens {
            h += "<tr><td>\(t.position)</td><td>\(t.id)</td><td class=\"s\">\(display(t.text).shown)</td>"
                + String(format: "<td>%.6g</td><td>%.4f</td></tr>\n", Double(t.relevance), norm(t.relevance))
        }
        h += "</table>\n</body></html>\n"
        return h
    }
}
