import Circuits
import COpenBLAS
import Foundation
import Transformer

// MARK: - bench: throughput against this machine's own measured bounds

enum BenchCommand: Command {
    enum Options {
        static let tokens = Option<Int>("tokens", "n", default: 64, min: 1, help: "Decode tokens to time")
        static let lengths = Option<[Int]>("lengths", "list", default: [512, 2048], help: "Prefill lengths, comma-separated") { l in
            l.allSatisfy { $0 > 1 } ? nil : "every length must be at least 2"
        }
        static let lrp = Flag("lrp", help: "Also time the AttnLRP pass (forward + backward + R_W accumulation)")
        static let graphs = Flag("graphs", help: "Also time EAP edge scores and one faithfulness point on the head/MLP graph")
        static let generation = Flag("generation", help: "Also time batched sampling (RealToxicityPrompts-shaped: prompts × 25 samples × 20 tokens)")
        static let generationPrompts = Option<Int>("generation-prompts", "n", default: 20, min: 1, help: "Prompts for --generation")
        static let maxBatch = Option<Int>("max-batch", "b", default: 256, min: 1, help: "Streams decoded together for --generation")
        static let runs = Option<Int>("runs", "n", default: 1, min: 1,
                                      help: "Times to run the whole measurement, bounds included; with more than one, prints min–max and median")
        static let faults = Flag("faults", help: "Also time quantising the model (6 bpw, magnitude importance) and one bit-flip trial (Q8_0 storage, BER 1e-5, 4 × 512-token perplexity windows, restore); runs last, once")
        static let circuits = Flag("circuits", help: "Also time a circuit curve (lrp, heads, neurons and weights) and graph-attribute eap/lrp/eap-ig + one patched faithfulness point on IOI prompts; runs once, after the runs")
        static let circuitPrompts = Option<Int>("circuit-prompts", "n", default: 128, min: 2, help: "Prompts for --circuits (the issues' size: 128)")
        static let circuitPoints = Option<Int>("circuit-points", "n", default: 12, min: 2, help: "Grid points of the --circuits curve (the issue asks for ≥ 12)")
        static let distributed = Flag("distributed", help: "Instead: time merging 8 full-size shard parts, 1 process × 2 threads vs 2 ranks × 1 thread, and estimate N machines")
    }
    static let spec = CommandSpec(
        name: "bench", abstract: "Measure prefill, decode (and LRP) throughput as fractions of this machine's measured peaks.",
        usage: "workbench bench --model <path> [--tokens <n>] [--lengths <list>] [--lrp] [--graphs] [--generation [--generation-prompts <n>] [--max-batch <b>]] [--circuits [--circuit-prompts <n>] [--circuit-points <n>]] [--faults] [--runs <n>] [--distributed] [--json]",
        options: ModelOptions.all + [Options.tokens, Options.lengths, Options.lrp, Options.graphs, Options.generation, Options.generationPrompts,
                                     Options.maxBatch, Options.circuits, Options.circuitPrompts, Options.circuitPoints,
                                     Options.faults, MemoryOptions.budgetMB, Options.runs, Options.distributed, OutputOptions.json],
        discussion: """
        sgemm peak: best of 5 × 1536³ sgemm with all BLAS threads. Bandwidth: best of 5 sgemv over a 256 MB matrix
        (what decode does), with each of OpenBLAS's two sgemv kernels (y = Ax and y = Aᵀx), the faster counted.
        Each phase is bracketed by two measurements of its bound, and its fraction is taken against the larger
        of that pair: this VM's speed moves by 5–15% for seconds at a time, and a phase is compared with the
        machine as it was during that phase. The fraction of the run's best bound is reported as well.
        Prefill: best of 10 (T < 2048) or 5. LRP: one untimed warm-up pass, then best of 6 (T < 2048) or 2. On this
        VM the two cores together at times run 15–20% slower for a second or two while each alone does not
        (measured with single- and two-core sgemm side by side); more runs make it likelier that one falls
        outside such a stretch.
        Prefill GFLOP/s counts linear + attention matmul FLOPs (causal half); decode's bound is bandwidth / weight
        bytes; LRP FLOPs are 3× the linear FLOPs (forward + δX + δW) plus 3.5× the forward's attention FLOPs.
        --graphs: 8 random 16-token prompt pairs (one token differs) on the head/MLP graph: EAP scores (per prompt two
        node-output forwards, one gradient pass with node-input taps, the [inputs, nodes] score GEMM; FLOPs = 4× the
        linear FLOPs + the score GEMM) and one faithfulness point with patching (source run + circuit run = 2× the
        linear FLOPs + the edge-mixing GEMMs, not counted); "tok/s" there are prompt tokens per second.
        --circuits: `tasks ioi --seed 0` prompts (random 16-token pairs when the model has no tokenizer or the IOI
        assets are absent): a `circuit` curve (lrp, |R| per token, zero ablation, threshold 0.9, attribution
        included) at head, neuron and weight granularity (targets < 3 min, < 3 min, < 6 min), graph-attribute eap
        and lrp (< 1 min) and eap-ig with 5 steps (< 5 min), and one patched faithfulness point (top 5 % of edges by
        EAP; < 15 s). Fractions count linear matmuls only: attribution 2× the forward's for heads and neurons (units
        only: no δW) and 3× for weights (+ the δW products), one forward per curve evaluation; edge scores 4× (clean
        and corrupted forwards, the LRP pass's forward and its δx products) + the score GEMM, eap-ig 2 + 2 · 5 steps;
        a point 2×.
        Peak RSS of a phase: the resident set's peak while that phase ran, weights included (the count restarts
        before each phase; the bounds' 256 MB test matrix is not in it). With --runs, later runs start with the
        heap the LRP pass keeps for its next sample (see Allocator.retainFreedBuffers): run 1 has the cold figures.
        On a shared 2-core VM one run moves by several percent: --runs N reports each measure's spread, every
        fraction taken against its own run's bounds; --json then holds every run under "runs" and the spreads
        under "summary".
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
        // Both sgemv kernels, since decode uses both (W and the transposed decode copies):
        // the faster one is what the machine can stream.
        var t = Double.infinity
        for transposed in [false, true] {
            t = min(t, time(5) { a.withUnsafeBufferPointer { ap in x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                if transposed {
                    BLAS.gemvTRows(n: rows, k: cols, ap.baseAddress!, lda: cols, xp.baseAddress!, yp.baseAddress!)
                } else {
                    BLAS.gemv(n: rows, k: cols, ap.baseAddress!, lda: cols, xp.baseAddress!, yp.baseAddress!)
                }
            } } } })
        }
        return Double(rows * cols * 4) / t / 1e9
    }

    /// Restarts the peak-RSS count at the current resident set (Linux ≥ 4.0:
    /// "5" to /proc/self/clear_refs), so each phase reports its own peak
    /// rather than the bounds' 256 MB test matrix or an earlier phase's.
    /// Without it (older kernels) the peak is the process's so far.
    static func resetPeakRSS() {
        guard let f = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return }
        try? f.write(contentsOf: Data("5".utf8))
        try? f.close()
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

    /// One timed phase with the machine's bound measured right around it.
    struct Timing {
        var kind: String, tokens: Int, seconds: Double, flops: Double, linearFlops: Double, rssMB: Double
        /// The larger of the sgemm peaks measured just before and just after this phase.
        var peak: Double
        var tokensPerSecond: Double { Double(tokens) / seconds }
        var gflops: Double { flops / seconds / 1e9 }
    }

    /// Runs `body` between two measurements of `bound` and returns its result
    /// with the larger one. On this VM the machine's speed moves by 5–15% for
    /// seconds at a time (at times one core only), so a phase is compared with
    /// the bound measured next to it, not with one taken a minute earlier.
    static func bracketed<T>(_ bound: () -> Double, into all: inout [Double], _ body: () throws -> T) rethrows -> (T, Double) {
        let before = bound()
        let result = try body()
        let after = bound()
        all += [before, after]
        return (result, max(before, after))
    }

    static func run(_ args: Args) throws {
        let decodeTokens = try args[Options.tokens]
        let runs = try args[Options.runs]
        let budget = try args[MemoryOptions.budgetMB] << 20
        let lengths = try args[Options.lengths]
        let m = try Common.load(args, tokenizer: args[Options.circuits])
        BLASInfo.lines().forEach(Out.err)
        if args[Options.distributed] {
            var report = try DistributedBench.measure(model: m.model, modelPath: try args[ModelOptions.model], parts: 8, samples: 8, length: 128)
            let peak = sgemmPeak()
            Out.err(String(format: "machine: sgemm peak %.1f GFLOP/s after the run (shared, loaded machine: compare ratios, not seconds)", peak))
            report["sgemm_peak_gflops"] = peak
            if args[OutputOptions.json] { Out.print(Out.json(report)) }
            return
        }
        var reports: [[String: Any]] = []
        for r in 1...runs {
            if runs > 1 { Out.err("run \(r) of \(runs)") }
            var one = try measure(m.model, lengths: lengths, decodeTokens: decodeTokens, lrp: args[Options.lrp],
                                  graphs: args[Options.graphs], budget: budget)
            if args[Options.generation] {
                one["generation"] = try measureGeneration(m.model, prompts: try args[Options.generationPrompts],
                                                          maxBatch: try args[Options.maxBatch])
            }
            reports.append(one)
        }
        let spreads = summary(reports)
        var report: [String: Any] = runs == 1 ? reports[0] : ["runs": reports, "summary": spreads]
        if args[Options.circuits] {
            report["circuits"] = try measureCircuits(m.model, tokenizer: m.tokenizer, prompts: try args[Options.circuitPrompts],
                                                     points: try args[Options.circuitPoints])
        }
        if args[Options.faults] { report["faults"] = try measureFaults(m.model, modelPath: try args[ModelOptions.model]) }
        report["blas"] = BLAS.configDescription
        report["blas_library"] = BLASInfo.libraryPath ?? "unknown"
        report["blas_core"] = BLASKernelCheck.chosenCore
        let peak = (reports.last?["sgemm_peak_gflops"] as? Double) ?? sgemmPeak()
        let peakLines = BLASInfo.peakLines(measuredGFLOPS: peak, how: "best of the run's 1536³ sgemm measurements, all cores")
        peakLines.forEach(Out.err)
        report["sgemm_peak_warning"] = peakLines.last { $0.hasPrefix("warning:") } ?? ""
        report["threads"] = BLAS.threads
        report["load_seconds"] = m.loadSeconds
        report["peak_rss_mb"] = reports.compactMap { $0["peak_rss_mb"] as? Double }.max() ?? peakRSSMB()
        if runs > 1 { printSummary(spreads, runs: runs) }
        if args[OutputOptions.json] { Out.print(Out.json(report)) }
    }

    /// One complete measurement: prefill, decode and (with `lrp`) the LRP pass,
    /// each between two measurements of its bound (sgemm peak or bandwidth).
    static func measure(_ model: Model, lengths: [Int], decodeTokens: Int, lrp: Bool, graphs: Bool = false,
                        budget: Int) throws -> [String: Any] {
        let c = model.config
        var report: [String: Any] = [:]
        var peaks: [Double] = [], bandwidths: [Double] = []
        Out.err("BLAS: \(BLAS.threads) threads; each phase is bracketed by two measurements of its bound")
        var rng = SeededRNG(seed: 1)
        func tokens(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % UInt64(c.vocabSize)) } }
        var timings: [Timing] = []
        func note(_ r: Timing) {
            Out.err(String(format: "%@ T=%d: %.1f tok/s, %.1f GFLOP/s, sgemm peak around it %.1f GFLOP/s, peak RSS %.0f MB",
                           r.kind, r.tokens, r.tokensPerSecond, r.gflops, r.peak, r.rssMB))
        }
        // Prefill: hidden states + last-position logits only, no [T, vocab] matrix
        // (the output of generation's first step, not of a PyTorch forward).
        for t in lengths where t <= c.maxSeqLen {
            let ids = tokens(t)
            let ((secs, rss), peak) = bracketed(sgemmPeak, into: &peaks) { () -> (Double, Double) in
                resetPeakRSS()
                let secs = time(t >= 2048 ? 5 : 10) {
                    let cache = KVCache(config: c, capacity: t)
                    _ = model.step(ids, cache: cache)
                }
                return (secs, peakRSSMB())
            }
            let f = forwardFlops(model, t)
            timings.append(Timing(kind: "prefill", tokens: t, seconds: secs, flops: f.linear + f.attention, linearFlops: f.linear,
                                  rssMB: rss, peak: peak))
            note(timings[timings.count - 1])
        }
        // Logits at every position: what perplexity and task metrics need, and what a
        // PyTorch/HF forward returns (`model(ids).logits`, [T, vocab]). "full-logits" is
        // exactly that output; "nll" is a perplexity window (logits 256 rows at a time
        // into one block kept across windows, log-softmax, NLL of the next token at every position). Both add the lm_head
        // GEMM, 2·T·d·vocab, to the prefill FLOPs; the log-softmax is not counted.
        for t in lengths where t <= c.maxSeqLen {
            let ids = tokens(t)
            let f = forwardFlops(model, t)
            let head = 2 * Double(t) * Double(c.dModel) * Double(c.vocabSize)
            for kind in ["full-logits", "nll"] {
                let ((secs, rss), peak) = bracketed(sgemmPeak, into: &peaks) { () -> (Double, Double) in
                    resetPeakRSS()
                    // nll reuses one logit block across windows, as `perplexity` does.
                    let block = kind == "nll" ? model.nllLogitBlock() : nil
                    let secs = time(t >= 2048 ? 3 : 6, skipFirst: true) {
                        if kind == "nll" { _ = model.nll(window: ids, scored: 0..<(t - 1), logitBlock: block) } else { _ = model.forward(ids) }
                    }
                    return (secs, peakRSSMB())
                }
                timings.append(Timing(kind: kind, tokens: t, seconds: secs, flops: f.linear + f.attention + head,
                                      linearFlops: f.linear + head, rssMB: rss, peak: peak))
                note(timings[timings.count - 1])
            }
        }
        // Decode: greedy, one token at a time with the KV cache.
        var sampler = Sampler()
        let tl = Date()
        model.prepareDecodeLayout()
        let layoutSeconds = Date().timeIntervalSince(tl)
        let prompt = tokens(16)
        let ((_, stats), bw) = try bracketed(bandwidth, into: &bandwidths) {
            try model.generate(prompt: prompt, maxNewTokens: min(decodeTokens, c.maxSeqLen) + 1, sampler: &sampler)
        }
        Out.err(String(format: "decode: %.1f tok/s, sgemv bandwidth around it %.1f GB/s (decode layout made in %.2f s, not counted)",
                       stats.decodeTokensPerSecond, bw, layoutSeconds))
        let layoutBytes = model.decodeLayoutBytes
        model.releaseDecodeLayout()   // made here, freed here: no later phase's RSS carries it
        // Batched sampling (evaluate's RTP protocol): 4 prompts × 16 samples of 20 tokens (RTP's sample length),
        // all live streams in one packed forward per step. (--generation times the full RTP shape.)
        let bt = Date()
        let streams = try model.generateBatch(prompts: (0..<4).map { _ in tokens(16) }, samplesPerPrompt: 16,
                                              settings: GenerationSettings(maxNewTokens: min(20, c.maxSeqLen - 16), temperature: 1, seed: 1),
                                              maxBatch: 64).tokens
        let batchedTokens = streams.joined().reduce(0) { $0 + $1.count }
        let batchedRate = Double(batchedTokens) / Date().timeIntervalSince(bt)
        Out.err(String(format: "batched sampling: 64 streams, %d tokens, %.1f tok/s in aggregate (prefill included) = %.1f× single-stream decode",
                       batchedTokens, batchedRate, batchedRate / max(stats.decodeTokensPerSecond, 1e-9)))
        report["batched_sampling"] = ["streams": 64, "tokens": batchedTokens, "tokens_per_s": batchedRate,
                                      "speedup_vs_decode": batchedRate / max(stats.decodeTokensPerSecond, 1e-9)]
        if lrp {
            let acc = RelevanceAccumulator(model: model)
            for t in lengths where t <= c.maxSeqLen {
                let ids = tokens(t)
                let ((secs, rss), peak) = bracketed(sgemmPeak, into: &peaks) { () -> (Double, Double) in
                    // One untimed warm-up pass first: a long run's steady state, not its first sample's page faults.
                    resetPeakRSS()
                    let secs = time(t >= 2048 ? 3 : 7, skipFirst: true) {
                        _ = try? model.lrp(tokens: ids, explain: ExplainSpec.nextToken(from: 0), sink: acc, memoryBudget: budget)
                    }
                    return (secs, peakRSSMB())
                }
                let f = forwardFlops(model, t)
                // forward + δX + δW = 3× the linear FLOPs; attention: forward (1) + recomputed QKᵀ (½)
                // + four backward matmuls (2) = 3.5× the forward's attention FLOPs.
                timings.append(Timing(kind: "lrp", tokens: t, seconds: secs, flops: 3 * f.linear + 3.5 * f.attention,
                                      linearFlops: 3 * f.linear, rssMB: rss, peak: peak))
                note(timings[timings.count - 1])
            }
        }
        if graphs { timings += try graphTimings(model, tokens: tokens, peaks: &peaks, note: note) }
        let runPeak = peaks.max() ?? sgemmPeak(), runBW = bandwidths.max() ?? bandwidth()
        Out.err(String(format: "machine: sgemm peak %.1f–%.1f GFLOP/s, sgemv bandwidth %.1f–%.1f GB/s over the run",
                       peaks.min() ?? runPeak, runPeak, bandwidths.min() ?? runBW, runBW))
        report["sgemm_peak_gflops"] = runPeak; report["bandwidth_gbs"] = runBW
        report["sgemm_peak_measurements_gflops"] = peaks; report["bandwidth_measurements_gbs"] = bandwidths
        func rows(_ kind: String) -> [[String: Any]] {
            timings.filter { $0.kind == kind }.map { r in
                ["tokens": r.tokens, "seconds": r.seconds, "tokens_per_s": r.tokensPerSecond, "gflops": r.gflops,
                 "sgemm_peak_gflops": r.peak, "fraction_of_sgemm_peak": r.gflops / r.peak,
                 "fraction_of_run_sgemm_peak": r.gflops / runPeak, "linear_gflops": r.linearFlops / r.seconds / 1e9,
                 "linear_fraction_of_sgemm_peak": r.linearFlops / r.seconds / 1e9 / r.peak, "peak_rss_mb": r.rssMB]
            }
        }
        BenchOutputs.lines.forEach(Out.err)
        for r in timings {
            Out.err(String(format: "%@ T=%d: %.1f tok/s = %.0f%% of the sgemm peak around it (linear matmuls alone: %.0f%%; %.0f%% of the run's best peak), peak RSS %.0f MB",
                           r.kind, r.tokens, r.tokensPerSecond, 100 * r.gflops / r.peak, 100 * r.linearFlops / r.seconds / 1e9 / r.peak,
                           100 * r.gflops / runPeak, r.rssMB))
        }
        let bound = bw * 1e9 / Double(model.weightBytes)
        Out.err(String(format: "decode: %.1f tok/s; bandwidth bound %.1f tok/s (%.0f MB of weights) → %.0f%% (%.0f%% of the run's best bandwidth)",
                       stats.decodeTokensPerSecond, bound, Double(model.weightBytes) / 1e6, 100 * stats.decodeTokensPerSecond / bound,
                       100 * stats.decodeTokensPerSecond * Double(model.weightBytes) / (runBW * 1e9)))
        report["prefill"] = rows("prefill")
        report["full_logits"] = rows("full-logits")
        report["nll"] = rows("nll")
        report["outputs"] = BenchOutputs.descriptions
        if lrp { report["lrp"] = rows("lrp") }
        if graphs { report["graph_eap"] = rows("graph-eap"); report["graph_point"] = rows("graph-point") }
        report["peak_rss_mb"] = timings.map(\.rssMB).max() ?? peakRSSMB()   // the largest phase peak
        report["decode"] = ["tokens_per_s": stats.decodeTokensPerSecond, "bandwidth_gbs": bw, "bound_tokens_per_s": bound,
                            "fraction_of_bandwidth_bound": stats.decodeTokensPerSecond / bound,
                            "fraction_of_run_bandwidth_bound": stats.decodeTokensPerSecond * Double(model.weightBytes) / (runBW * 1e9),
                            "weight_bytes": model.weightBytes, "layout_seconds": layoutSeconds, "layout_bytes": layoutBytes]
        return report
    }

    // MARK: - Several runs

    /// min / median / max of values (the median of an even count is the mean of the middle two).
    static func spread(_ v: [Double]) -> [String: Double] {
        let s = v.sorted(), n = s.count
        return ["min": s[0], "median": n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, "max": s[n - 1]]
    }

    /// Per measure, the spread over runs of its rate and of its fraction of the run's own bound.
    static func summary(_ reports: [[String: Any]]) -> [String: Any] {
        var out: [String: Any] = [:]
        for kind in ["prefill", "full_logits", "nll", "lrp", "graph_eap", "graph_point"] {
            let perRun = reports.compactMap { $0[kind] as? [[String: Any]] }
            guard let first = perRun.first else { continue }
            out[kind] = first.indices.map { i -> [String: Any] in
                ["tokens": first[i]["tokens"] as? Int ?? 0,
                 "tokens_per_s": spread(perRun.map { $0[i]["tokens_per_s"] as? Double ?? 0 }),
                 "fraction_of_sgemm_peak": spread(perRun.map { $0[i]["fraction_of_sgemm_peak"] as? Double ?? 0 }),
                 "fraction_of_run_sgemm_peak": spread(perRun.map { $0[i]["fraction_of_run_sgemm_peak"] as? Double ?? 0 })]
            }
        }
        let decode = reports.compactMap { $0["decode"] as? [String: Any] }
        out["decode"] = ["tokens_per_s": spread(decode.map { $0["tokens_per_s"] as? Double ?? 0 }),
                         "fraction_of_bandwidth_bound": spread(decode.map { $0["fraction_of_bandwidth_bound"] as? Double ?? 0 }),
                         "fraction_of_run_bandwidth_bound": spread(decode.map { $0["fraction_of_run_bandwidth_bound"] as? Double ?? 0 })]
        out["sgemm_peak_gflops"] = spread(reports.map { $0["sgemm_peak_gflops"] as? Double ?? 0 })
        out["bandwidth_gbs"] = spread(reports.map { $0["bandwidth_gbs"] as? Double ?? 0 })
        return out
    }

    static func printSummary(_ s: [String: Any], runs: Int) {
        func range(_ d: Any?, scale: Double = 1, _ fmt: String = "%.0f") -> String {
            guard let d = d as? [String: Double], let lo = d["min"], let hi = d["max"], let mid = d["median"] else { return "?" }
            return String(format: "\(fmt)–\(fmt) (median \(fmt))", scale * lo, scale * hi, scale * mid)
        }
        Out.err("over \(runs) runs: sgemm peak \(range(s["sgemm_peak_gflops"])) GFLOP/s, bandwidth \(range(s["bandwidth_gbs"], "%.1f")) GB/s")
        for kind in ["prefill", "full_logits", "nll", "lrp", "graph_eap", "graph_point"] {
            for row in s[kind] as? [[String: Any]] ?? [] {
                Out.err("\(kind) T=\(row["tokens"] ?? 0): \(range(row["tokens_per_s"])) tok/s = \(range(row["fraction_of_sgemm_peak"], scale: 100)) % of the sgemm peak around it, \(range(row["fraction_of_run_sgemm_peak"], scale: 100)) % of the run's best")
            }
        }
        if let d = s["decode"] as? [String: Any] {
            Out.err("decode: \(range(d["tokens_per_s"], "%.1f")) tok/s = \(range(d["fraction_of_bandwidth_bound"], scale: 100)) % of the bandwidth bound around it, \(range(d["fraction_of_run_bandwidth_bound"], scale: 100)) % of the run's best")
        }
    }
}
