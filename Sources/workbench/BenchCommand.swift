import Circuits
import COpenBLAS
import Foundation
import Transformer

// MARK: - bench: throughput against this machine's own measured bounds

enum BenchCommand: Command {
    static let spec = CommandSpec(
        name: "bench", abstract: "Measure prefill, decode (and LRP) throughput as fractions of this machine's measured peaks.",
        usage: "workbench bench --model <path> [--tokens <n>] [--lrp] [--json]",
        options: [Common.model,
                  OptionSpec(name: "tokens", value: "n", help: "Decode tokens to time (default 64)."),
                  OptionSpec(name: "lengths", value: "list", help: "Prefill lengths, comma-separated (default 512,2048)."),
                  OptionSpec(name: "lrp", value: nil, help: "Also time the AttnLRP pass (forward + backward + R_W accumulation)."),
                  OptionSpec(name: "memory-budget-mb", value: "m", help: "Activations the LRP pass may keep (default: as attribute)."),
                  OptionSpec(name: "json", value: nil, help: "Print one JSON object.")],
        discussion: """
        sgemm peak: best of 5 × 1536³ sgemm with all BLAS threads. Bandwidth: best of 5 sgemv over a 256 MB matrix
        (what decode does). Prefill GFLOP/s counts linear + attention matmul FLOPs (causal half); decode's bound is
        bandwidth / weight bytes; LRP FLOPs are 3× the forward's (forward + δX + δW), plus attention backward.
        """)

    /// Best wall time of `reps` runs (the first one not counted with `skipFirst`).
    static func time(_ reps: Int, skipFirst: Bool = false, _ body: () -> Void) -> Double {
        var best = Double.infinity
        for i in 0..<reps {
            let t = Date(); body()
            if !(skipFirst && i == 0) || reps == 1 { best = min(best, Date().timeIntervalSince(t)) }
        }
        return best
    }

    static func sgemmPeak() -> Double { BLAS.measurePeakGFLOPS() }

    static func bandwidth() -> Double {
        let rows = 8192, cols = 8192                       // 256 MB
        let a = [Float](repeating: 0.5, count: rows * cols), x = [Float](repeating: 1, count: cols)
        var y = [Float](repeating: 0, count: rows)
        let t = time(5) { a.withUnsafeBufferPointer { ap in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            BLAS.gemv(n: rows, k: cols, ap.baseAddress!, lda: cols, xp.baseAddress!, yp.baseAddress!)
        } } } }
        return Double(rows * cols * 4) / t / 1e9
    }

    /// Peak resident set (VmHWM) in MB, from /proc/self/status.
    static func peakRSSMB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }

    /// Matmul FLOPs of a forward over T tokens: linear layers + causal attention (QKᵀ and PV).
    static func forwardFlops(_ m: Model, _ t: Int) -> (linear: Double, attention: Double) {
        let c = m.config
        let linearParams = Double(m.linears.reduce(0) { $0 + $1.weight.count })
        let attn = Double(c.nLayers * c.nHeads * c.headDim) * 2 * 2 * Double(t) * Double(t + 1) / 2
        return (2 * linearParams * Double(t), attn)
    }

    static func run(_ args: Args) throws {
        let decodeTokens = try args.int("tokens", default: 64, min: 1)!
        let budget = try args.int("memory-budget-mb", default: AttributionSettings().memoryBudget >> 20, min: 1)! << 20
        let lengths = try (args.string("lengths") ?? "512,2048").split(separator: ",").map { s -> Int in
            guard let v = Int(s), v > 1 else { throw UsageError(message: "The value '\(s)' is invalid for '--lengths'") }
            return v
        }
        var report: [String: Any] = ["blas": BLAS.configDescription, "threads": BLAS.threads]
        let peak = sgemmPeak(), bw = bandwidth()
        report["sgemm_peak_gflops"] = peak; report["bandwidth_gbs"] = bw
        Out.err(String(format: "machine: sgemm peak %.1f GFLOP/s, sgemv bandwidth %.1f GB/s (%d BLAS threads)", peak, bw, BLAS.threads))
        let m = try Common.load(args, tokenizer: false)
        let model = m.model, c = model.config
        report["load_seconds"] = m.loadSeconds
        report["rss_after_load_mb"] = peakRSSMB()
        var rng = SeededRNG(seed: 1)
        func tokens(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % UInt64(c.vocabSize)) } }
        // Prefill: hidden states + last-position logits, no [T, vocab] matrix.
        var prefill: [[String: Any]] = []
        for t in lengths where t <= c.maxSeqLen {
            let ids = tokens(t)
            let secs = time(3) {
                let cache = KVCache(config: c, capacity: t)
                _ = model.step(ids, cache: cache)
            }
            let f = forwardFlops(model, t)
            let gf = (f.linear + f.attention) / secs / 1e9
            let row: [String: Any] = ["tokens": t, "seconds": secs, "tokens_per_s": Double(t) / secs, "gflops": gf,
                                      "fraction_of_sgemm_peak": gf / peak, "linear_gflops": f.linear / secs / 1e9,
                                      "peak_rss_mb": peakRSSMB()]
            prefill.append(row)
            Out.err(String(format: "prefill T=%d: %.1f tok/s, %.1f GFLOP/s = %.0f%% of sgemm peak, peak RSS %.0f MB",
                           t, Double(t) / secs, gf, 100 * gf / peak, peakRSSMB()))
        }
        report["prefill"] = prefill
        // Decode: greedy, one token at a time with the KV cache.
        var sampler = Sampler()
        let (_, stats) = try model.generate(prompt: tokens(16), maxNewTokens: min(decodeTokens, c.maxSeqLen) + 1, sampler: &sampler)
        let bound = bw * 1e9 / Double(model.weightBytes)
        report["decode"] = ["tokens_per_s": stats.decodeTokensPerSecond, "bound_tokens_per_s": bound,
                            "fraction_of_bandwidth_bound": stats.decodeTokensPerSecond / bound, "weight_bytes": model.weightBytes]
        Out.err(String(format: "decode: %.1f tok/s; bandwidth bound %.1f tok/s (%.0f MB of weights) → %.0f%%",
                       stats.decodeTokensPerSecond, bound, Double(model.weightBytes) / 1e6, 100 * stats.decodeTokensPerSecond / bound))
        if args.flag("lrp") {
            var lrp: [[String: Any]] = []
            let acc = RelevanceAccumulator(model: model)
            for t in lengths where t <= c.maxSeqLen {
                let ids = tokens(t)
                // One untimed warm-up pass first: a long run's steady state, not its first sample's page faults.
                let secs = time(t >= 2048 ? 2 : 3, skipFirst: true) {
                    _ = try? model.lrp(tokens: ids, explain: ExplainSpec.nextToken(from: 0), sink: acc, memoryBudget: budget)
                }
                let f = forwardFlops(model, t)
                // forward + recomputed QKᵀ/softmax + 4 backward attention matmuls (= 2× forward attention)
                let attentionFlops: Double = f.attention * 3.5
                let flops: Double = 3 * f.linear + attentionFlops
                let gf: Double = flops / secs / 1e9
                lrp.append(["tokens": t, "seconds": secs, "tokens_per_s": Double(t) / secs, "gflops": gf,
                            "fraction_of_sgemm_peak": gf / peak, "linear_6PT_fraction": 3 * f.linear / secs / 1e9 / peak,
                            "peak_rss_mb": peakRSSMB()])
                Out.err(String(format: "lrp T=%d: %.1f tok/s, %.1f GFLOP/s = %.0f%% of sgemm peak (6·P·T only: %.0f%%), peak RSS %.0f MB",
                               t, Double(t) / secs, gf, 100 * gf / peak, 100 * 3 * f.linear / secs / 1e9 / peak, peakRSSMB()))
            }
            report["lrp"] = lrp
        }
        report["peak_rss_mb"] = peakRSSMB()
        if args.flag("json") { Out.print(Out.json(report)) }
    }
}
