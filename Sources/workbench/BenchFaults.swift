import Circuits
import Foundation
import Transformer

// MARK: - bench --faults: quantising the model and one bit-flip trial (issue 16's targets: < 10 s each)

extension BenchCommand {
    /// `quantize` as the command runs it (magnitude importance, 6 bits per weight over f16/q8_0/q4_1/q4_0,
    /// importance-weighted scales) into a temporary file; then one `faults` trial: Q8_0 storage set up once
    /// (not the trial), inject at BER 1e-5, perplexity on 4 windows × 512 tokens (the wanda protocol; random
    /// tokens, the cost is the same), restore. Changes the model's weights to their Q8_0 decode: run last.
    static func measureFaults(_ model: Model, modelPath: String) throws -> [String: Any] {
        var peaks: [Double] = []
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bench-quantize-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        // CPU seconds (user + system, all threads) beside wall seconds: on a shared machine wall time mostly
        // measures the other processes, CPU time the work.
        func cpuSeconds() -> Double {
            var u = rusage()
            getrusage(RUSAGE_SELF.rawValue, &u)
            return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
        }
        var qCPU = 0.0
        let ((qSeconds, bpw), qPeak) = try bracketed(sgemmPeak, into: &peaks) { () throws -> (Double, Double) in
            let t0 = Date(), c0 = cpuSeconds()
            defer { qCPU = cpuSeconds() - c0 }
            let ck = try ModelLoader.checkpoint(modelPath)
            let r = try MixedPrecisionQuantizer.run(ck, settings: QuantizeSettings(bitsPerWeight: 6, types: [.f16, .q8_0, .q4_1, .q4_0],
                                                                                   importance: .magnitude, weightedRounding: true),
                                                    carry: [], out: tmp)
            return (Date().timeIntervalSince(t0), r.achievedBitsPerWeight)
        }
        Out.err(String(format: "quantize: %.2f s wall, %.2f s CPU (checkpoint read, 6 bpw budget → %.3f bpw, magnitude importance, weighted scales, GGUF written; target < 10 s); sgemm peak around it %.1f GFLOP/s",
                       qSeconds, qCPU, bpw, qPeak))
        let c = model.config, seqlen = min(512, c.maxSeqLen), windows = 4
        var rng = SeededRNG(seed: 3)
        let tokens = (0..<(seqlen * windows)).map { _ in Int(rng.next() % UInt64(c.vocabSize)) }
        let ts = Date()
        let storage = try FaultStorage(model: model, type: .q8_0)
        let setup = Date().timeIntervalSince(ts)
        let ((trial, flips, faultSeconds), tPeak) = try bracketed(sgemmPeak, into: &peaks) { () throws -> (Double, Int, Double) in
            let t0 = Date()
            let t = BitFlips.trial(totalBits: storage.totalBits, ber: 1e-5, seed: 1, trial: 0, protected: ProtectedBits())
            let touched = storage.inject(t.masks)
            let t1 = Date()
            _ = try model.perplexity(tokens: tokens, seqlen: seqlen, protocol: .wanda, maxWindows: windows)
            let t2 = Date()
            storage.restore(touched)
            let t3 = Date()
            return (t3.timeIntervalSince(t0), t.primaryFlips, t1.timeIntervalSince(t0) + t3.timeIntervalSince(t2))
        }
        let f = forwardFlops(model, seqlen)
        let gflops = Double(windows) * (f.linear + f.attention + 2 * Double(seqlen) * Double(c.dModel) * Double(c.vocabSize)) / trial / 1e9
        Out.err(String(format: "fault trial: %.2f s (Q8_0 storage, BER 1e-5: %d flips injected, %d × %d-token perplexity windows, restored; target < 10 s) = %.0f%% of the sgemm peak around it; draw + inject + restore %.3f s of it; storage set up once in %.2f s",
                       trial, flips, windows, seqlen, 100 * gflops / tPeak, faultSeconds, setup))
        return ["quantize_seconds": qSeconds, "quantize_cpu_seconds": qCPU, "quantize_bits_per_weight": bpw, "quantize_sgemm_peak_gflops": qPeak,
                "fault_trial_seconds": trial, "fault_trial_flips": flips, "fault_trial_windows": windows, "fault_trial_seqlen": seqlen,
                "fault_trial_fraction_of_sgemm_peak": gflops / tPeak, "fault_trial_inject_restore_seconds": faultSeconds, "fault_storage_setup_seconds": setup]
    }
}
