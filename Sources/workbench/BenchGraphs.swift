import Circuits
import Foundation
import Transformer

// MARK: - bench --graphs: component-graph scores and one patched point at a small fixed size (issue 15)

extension BenchCommand {
    /// EAP scores and one patched faithfulness point on 8 random 16-token prompt pairs (issue 15's bench row).
    static func graphTimings(_ model: Model, tokens: (Int) -> [Int], peaks: inout [Double],
                             note: (Timing) -> Void) throws -> [Timing] {
        let c = model.config, t = 16, count = 8
        let items = (0..<count).map { i -> TaskItem in
            let clean = tokens(t)
            var corrupted = clean
            corrupted[t / 2] = (clean[t / 2] + 1) % c.vocabSize
            return TaskItem(location: SourceLocation(file: "bench", line: i + 1), kind: .custom, template: nil, tokens: clean,
                            corruptedTokens: corrupted, answerIds: [1], distractorIds: [2])
        }
        let split = SplitForward(model), g = split.graph
        let f = forwardFlops(model, t)
        var out: [Timing] = []
        let ((eapSecs, rss1), peak1) = try bracketed(sgemmPeak, into: &peaks) { () throws -> (Double, Double) in
            resetPeakRSS()
            let t0 = Date()
            _ = try EdgeAttribution(split).scores(items, method: .eap)
            return (Date().timeIntervalSince(t0), peakRSSMB())
        }
        let scoreGEMM = 2 * Double(EdgeAttribution.scoreProducts(g) * t * c.dModel)
        out.append(Timing(kind: "graph-eap", tokens: t * count, seconds: eapSecs, flops: Double(count) * (4 * f.linear + scoreGEMM),
                          linearFlops: Double(count) * 4 * f.linear, rssMB: rss1, peak: peak1))
        note(out[0])
        var half = [Bool](repeating: false, count: g.nBackward * g.nForward)
        for (k, e) in g.edgeIndices.enumerated() where k % 2 == 0 { half[e] = true }
        let ev = try GraphEvaluator(split, items, intervention: .patch)
        let ((pointSecs, rss2), peak2) = try bracketed(sgemmPeak, into: &peaks) { () throws -> (Double, Double) in
            resetPeakRSS()
            let t0 = Date()
            _ = try ev.metrics([half])
            return (Date().timeIntervalSince(t0), peakRSSMB())
        }
        out.append(Timing(kind: "graph-point", tokens: t * count, seconds: pointSecs, flops: Double(count) * 2 * f.linear,
                          linearFlops: Double(count) * 2 * f.linear, rssMB: rss2, peak: peak2))
        note(out[1])
        return out
    }
}
