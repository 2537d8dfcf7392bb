import COpenBLAS
import Foundation

// MARK: - What BLAS this process runs, for `info` and `bench`

public enum BLASInfo {
    /// The shared object OpenBLAS was loaded from (the first mapping whose path
    /// names openblas in /proc/self/maps), or nil when statically linked / not on Linux.
    public static var libraryPath: String? {
        guard let maps = readProcFile("/proc/self/maps") else { return nil }
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            if (path as NSString).lastPathComponent.lowercased().contains("openblas") { return path }
        }
        return nil
    }

    /// `key: value` lines: library, configuration, core and how it came about, threads, CPU.
    public static func lines() -> [String] {
        let cpu = CPUFeatures.current
        let how = BLASKernelCheck.decision.map(BLASKernelCheck.describe) ?? "start-up check not run in this process"
        return [
            "blas library: \(libraryPath ?? "unknown (not found in /proc/self/maps)")",
            "blas config: \(BLASKernelCheck.config)",
            "blas core: \(BLASKernelCheck.chosenCore) (\(how))",
            "blas threads: \(BLAS.threads)" + (BLAS.ways > 1 ? " (1 OpenBLAS thread, calls split over \(BLAS.ways) cores)" : " (OpenBLAS's pool)"),
            "cpu: \(cpu.modelName), \(cpu.physicalCores) core\(cpu.physicalCores == 1 ? "" : "s"), vector level \(cpu.tier?.description ?? "n/a")"
                + (cpu.vectorFlags.isEmpty ? "" : " (\(cpu.vectorFlags.joined(separator: " ")))"),
        ]
    }

    /// Below this fraction of the vector-width estimate the sgemm peak is
    /// reported as far too low. Vector kernels reach 50–90 % of the estimate,
    /// also on parts with one 512-bit FMA pipe or double-pumped AVX-512 (where
    /// the estimate is 2× too high); a generic SSE kernel on an AVX2 part reaches
    /// at most 4/32 = 25 %, on an AVX-512 part 12.5 %.
    public static let farBelowFraction = 0.4

    /// Lines on a measured sgemm peak against the estimate from the vector width;
    /// the last one starts with "warning:" when the peak is far below it.
    public static func peakLines(measuredGFLOPS g: Double, how: String) -> [String] {
        var out = [String(format: "sgemm peak: %.1f GFLOP/s measured (%@)", g, how)]
        guard let est = CPUFeatures.current.peakEstimate(cores: ProcessInfo.processInfo.activeProcessorCount) else {
            out.append("sgemm peak estimate: unknown on this CPU (no x86 vector level or clock in /proc/cpuinfo)")
            return out
        }
        out.append("sgemm peak estimate: ≤ \(est.text); measured = \(Int((100 * g / est.gflops).rounded())) % of it")
        if g < farBelowFraction * est.gflops {
            out.append("warning: the measured sgemm peak is below \(Int(100 * farBelowFraction)) % of what the vector width implies: "
                       + "check the BLAS core above (OPENBLAS_CORETYPE, OPENBLAS_VERBOSE=2) and whether other processes share the cores")
        }
        return out
    }
}

// MARK: - What each `bench` row computes (so peer numbers are quoted like for like)

public enum BenchOutputs {
    /// Row kind → the output it produces and the peer call that produces the same.
    public static let descriptions: [String: String] = [
        "prefill": "hidden states + logits of the last position only (peer: HF forward with logits_to_keep=1; "
            + "NOT comparable with model(ids).logits, which makes every position's logits)",
        "full-logits": "logits at every position, [T, vocab] (peer: PyTorch/HF model(ids).logits)",
        "nll": "a perplexity window: logits at every position 256 rows at a time, log-softmax, next-token NLL "
            + "(peer: model(ids, labels=ids).loss)",
        "decode": "greedy tokens one at a time with the KV cache (peer: HF generate, do_sample=False)",
        "lrp": "AttnLRP: forward + modified backward + R_W accumulated for every decoder weight "
            + "(peer: lxt efficient AttnLRP forward + backward with W ⊙ W.grad)",
    ]

    /// One `output of <kind>: …` line per row kind, in table order.
    public static var lines: [String] {
        ["prefill", "full-logits", "nll", "decode", "lrp"].map { "output of \($0): \(descriptions[$0]!)" }
    }
}
