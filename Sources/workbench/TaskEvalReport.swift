import Circuits
import Foundation

// MARK: - task-eval output: table and JSON

enum TaskEvalReport {
    static func dict(_ m: MetricSummary) -> [String: Any] {
        var d: [String: Any] = ["n": m.count, "top1": m.top1, "log_prob_answer": m.logProbAnswer]
        if let v = m.logitDiff { d["logit_diff"] = v }
        if let v = m.accuracy { d["accuracy"] = v }
        if let v = m.probDiff { d["prob_diff"] = v }
        if let v = m.kl { d["kl_sum_over_vocab"] = v }
        if let v = m.klPerVocab { d["kl_mean_over_vocab_mib"] = v }
        if let v = m.headlineSEM { d["headline_sem"] = v }
        return d
    }

    static func json(_ s: TaskSummary, prompts: String, model: String, reference: String?, seconds: Double) -> [String: Any] {
        var d: [String: Any] = ["prompts": prompts, "model": model, "headline_metric": s.headline.rawValue,
                                "clean": dict(s.clean), "eval_seconds": seconds,
                                "by_family": Dictionary(uniqueKeysWithValues: s.byFamily.map { ($0.family, dict($0.summary)) }),
                                "by_template": Dictionary(uniqueKeysWithValues: s.byTemplate.map { ($0.template, dict($0.summary)) })]
        if let c = s.corrupted { d["corrupted"] = dict(c) }
        if let h = s.headlineValue { d["headline"] = h }
        if let h = s.headlineValue, let c = s.corruptedHeadlineValue { d["clean_minus_corrupted"] = h - c }
        if let reference { d["kl_reference_model"] = reference }
        return d
    }

    static func line(_ label: String, _ m: MetricSummary) -> String {
        var parts: [String] = []
        if let v = m.logitDiff { parts.append(String(format: "logit diff %.3f", v)) }
        if let v = m.accuracy { parts.append(String(format: "acc %.1f %%", 100 * v)) }
        parts.append(String(format: "top-1 %.1f %%", 100 * m.top1))
        if let v = m.probDiff { parts.append(String(format: "prob diff %.4f", v)) }
        if m.logitDiff == nil { parts.append(String(format: "log p(answer) %.3f", m.logProbAnswer)) }
        if let v = m.kl, let w = m.klPerVocab { parts.append(String(format: "KL %.4f (MIB %.3e)", v, w)) }
        return label.padding(toLength: 14, withPad: " ", startingAt: 0) + String(format: "n=%-5d ", m.count) + parts.joined(separator: "  ") + "\n"
    }

    static func text(_ s: TaskSummary, prompts: String, reference: String?, seconds: Double) -> String {
        var o = "prompts: \(prompts) (\(s.clean.count)); headline metric: \(s.headline.rawValue)"
        if let h = s.headlineValue { o += String(format: " = %.4f", h) + (s.clean.headlineSEM.map { String(format: " ± %.4f (SEM)", $0) } ?? "") }
        o += String(format: "; evaluated in %.2f s\n", seconds)
        o += line("clean", s.clean)
        if let c = s.corrupted { o += line("corrupted", c) }
        if let h = s.headlineValue, let c = s.corruptedHeadlineValue { o += String(format: "clean − corrupted: %.4f\n", h - c) }
        if s.byFamily.count > 1 { o += "by family:\n"; for f in s.byFamily { o += line("  " + f.family, f.summary) } }
        if s.byTemplate.count > 1 { o += "by template:\n"; for t in s.byTemplate { o += line("  " + t.template, t.summary) } }
        o += reference.map { "KL: KL(P_\($0) ‖ P_model) at the last position, summed over the vocabulary; MIB's value is that mean over the vocabulary\n" }
            ?? "KL: not computed (give --reference-model to compare against a full model)\n"
        return o
    }
}
