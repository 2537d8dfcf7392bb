#if canImport(Glibc)
import Glibc
#endif
import Circuits
import Foundation
import Transformer

// MARK: - bench --distributed: merge throughput, 1 vs 2 ranks, and a scaling estimate
//
// merge     `count` synthetic lrp parts of the model's full size (F64 sums, as real parts) are
//           written, then checked (metadata + sha256 of each) and merged as `workbench merge` does.
// scaling   the same prompts (random ids) attributed by one process with the default two threads,
//           and by two ranks with one thread each (`mpirun -np 2`, or two `--shard k/2` processes
//           and a merge when mpirun is absent), both end to end as child processes (load, hash,
//           attribution, reduction, write): the ratio of their throughputs.
// estimate  wall time of S samples on N machines from the measured per-token cost and the measured
//           per-map reduction cost (memory add here; a network adds map bytes / link bandwidth).

enum DistributedBench {
    struct Child { var stdout: String, stderr: String, status: Int32, seconds: Double }

    /// A child run of the benchmark failed (status < 0: it could not be started; `stderr` then says why).
    struct ChildFailed: LocalizedError {
        var command: String, status: Int32, stderr: String
        var errorDescription: String? {
            status < 0 ? "bench --distributed: cannot start '\(command)': \(stderr)"
                : "bench --distributed: '\(command)' exited \(status): \(stderr)"
        }
    }

    static func executable() -> String { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Starts `program args`, output to files in `dir` (no pipe can fill up).
    static func start(_ program: String, _ args: [String], env: [String: String], dir: String, tag: String) throws -> (Process, String, String) {
        let out = "\(dir)/\(tag).out", err = "\(dir)/\(tag).err"
        for path in [out, err] where !FileManager.default.createFile(atPath: path, contents: nil) {
            throw ChildFailed(command: ([program] + args).joined(separator: " "), status: -1, stderr: "cannot create its output file \(path)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { _, new in new }
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return (p, out, err)
    }

    static func finish(_ c: (Process, String, String), since t0: Date) throws -> Child {
        c.0.waitUntilExit()
        return Child(stdout: try String(contentsOfFile: c.1, encoding: .utf8), stderr: try String(contentsOfFile: c.2, encoding: .utf8),
                     status: c.0.terminationStatus, seconds: Date().timeIntervalSince(t0))
    }

    static func run(_ program: String, _ args: [String], env: [String: String] = [:], dir: String, tag: String) throws -> Child {
        let t0 = Date()
        let c = try finish(try start(program, args, env: env, dir: dir, tag: tag), since: t0)
        guard c.status == 0 else {
            throw ChildFailed(command: ([program] + args).joined(separator: " "), status: c.status, stderr: String(c.stderr.suffix(600)))
        }
        return c
    }

    /// The number after `prefix` in `text` ("time: 1.23 s" → 1.23).
    static func number(after prefix: String, in text: String) -> Double? {
        guard let r = text.range(of: prefix) else { return nil }
        return Double(text[r.upperBound...].prefix { "0123456789.".contains($0) })
    }

    static func measure(model: Model, modelPath: String, parts: Int, samples: Int, length: Int) throws -> [String: Any] {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("workbench-bench-distributed-\(getpid())").path
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        var report: [String: Any] = [:]

        // Merge of `parts` full-size parts.
        let tw = Date()
        let paths = try SyntheticParts.write(model: model, count: parts, dir: dir)
        let writeParts = Date().timeIntervalSince(tw)
        let tc = Date()
        let plan = try ShardMerger.plan(paths, verify: true)
        let check = Date().timeIntervalSince(tc)
        let merged = try ShardMerger.merge(plan, model: model, modelPath: modelPath, out: "\(dir)/merged.safetensors")
        try? fm.removeItem(atPath: "\(dir)/merged.safetensors")
        let mapBytes = merged.bytesRead / parts
        let total = check + merged.seconds
        Out.err(String(format: "merge: %d parts of %.0f MB (F64 sums) in %.2f s = check %.2f s (metadata + sha256 of each part) + add %.2f s "
                       + "(%.0f MB/s) + write %.2f s; writing the parts took %.2f s (not counted)",
                       parts, Double(mapBytes) / 1e6, total, check, merged.addSeconds, Double(merged.bytesRead) / 1e6 / merged.addSeconds,
                       merged.writeSeconds, writeParts))
        report["merge"] = ["parts": parts, "part_bytes": mapBytes, "seconds": total, "check_seconds": check, "add_seconds": merged.addSeconds,
                           "write_seconds": merged.writeSeconds, "add_mb_per_s": Double(merged.bytesRead) / 1e6 / merged.addSeconds]

        // 1 process × 2 threads vs 2 ranks × 1 thread, end to end.
        var rng = SeededRNG(seed: 7)
        let lines = (0..<samples).map { _ in
            "{\"ids\": [" + (0..<length).map { _ in String(rng.next() % UInt64(model.config.vocabSize)) }.joined(separator: ",") + "]}"
        }
        let prompts = "\(dir)/prompts.jsonl"
        try lines.joined(separator: "\n").write(toFile: prompts, atomically: true, encoding: .utf8)
        let exe = executable()
        let common = ["attribute", "--model", modelPath, "--prompts", prompts, "--quiet"]
        let one = try run(exe, common + ["--out", "\(dir)/one.safetensors"], dir: dir, tag: "one")
        let oneCompute = number(after: "time: ", in: one.stdout) ?? one.seconds
        var two: Child, how: String, reduction: Double?
        let oneThread = ["WORKBENCH_BLAS_THREADS": "1", "WORKBENCH_SERIAL": "1"]
        if let mpirun = which("mpirun") {
            var env = oneThread
            if getuid() == 0 { env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1" }
            two = try run(mpirun, ["--oversubscribe", "-np", "2", exe] + common + ["--out", "\(dir)/two.safetensors"], env: env, dir: dir, tag: "two")
            how = "mpirun -np 2"
            reduction = number(after: "ranks reduced into rank 0 in ", in: two.stderr)
        } else {
            let t0 = Date()
            let shards = try (0..<2).map { k in
                try start(exe, common + ["--shard", "\(k)/2", "--out", "\(dir)/s\(k).safetensors"], env: oneThread, dir: dir, tag: "s\(k)")
            }
            let done = try shards.map { try finish($0, since: t0) }
            if let bad = done.first(where: { $0.status != 0 }) {
                throw ChildFailed(command: "workbench attribute --shard k/2", status: bad.status, stderr: String(bad.stderr.suffix(600)))
            }
            _ = try run(exe, ["merge", "\(dir)/s0.safetensors", "\(dir)/s1.safetensors", "--out", "\(dir)/two.safetensors"], dir: dir, tag: "m")
            two = Child(stdout: done[0].stdout, stderr: "", status: 0, seconds: Date().timeIntervalSince(t0))
            how = "two --shard k/2 processes + merge (no mpirun)"
        }
        let ratio = one.seconds / two.seconds
        // Also the attribution loop alone (each run's own "time:" line; rank 0's for the ranks): end to end
        // includes what does not grow with the samples (loading, the finished shard's checkpoint, the
        // reduction), which dominates at this bench's small size and amortises over a real run's thousands.
        let twoCompute = number(after: "time: ", in: two.stdout)
        let computeRatio = twoCompute.map { oneCompute / $0 }
        Out.err(String(format: "scaling: %d samples × %d tokens: 1 process × 2 threads %.1f s, 2 ranks × 1 thread (%@) %.1f s end to end "
                       + "→ 2 ranks give %.2f× the throughput (target ≥ 0.9×)%@%@", samples, length, one.seconds, how, two.seconds, ratio,
                       reduction.map { String(format: "; rank 0 waited and reduced %.2f s", $0) } ?? "",
                       computeRatio.map { String(format: "; attribution loop alone %.1f s vs %.1f s = %.2f×", oneCompute, twoCompute ?? 0, $0) } ?? ""))
        var scaling: [String: Any] = ["samples": samples, "tokens_per_sample": length, "one_process_seconds": one.seconds,
                                      "one_process_compute_seconds": oneCompute, "two_ranks_seconds": two.seconds, "two_ranks_how": how,
                                      "throughput_ratio_two_ranks_vs_one_process": ratio]
        if let twoCompute, let computeRatio {
            scaling["two_ranks_compute_seconds"] = twoCompute
            scaling["compute_throughput_ratio_two_ranks_vs_one_process"] = computeRatio
        }
        report["scaling"] = scaling

        // Estimate for N machines of this kind: S·L·c/N compute + (N−1) maps reduced at rank 0 + one write.
        let perToken = oneCompute / Double(samples * length)
        let perMap = merged.addSeconds / Double(max(parts - 1, 1))
        let link = 1.25e9                                            // 10 Gb/s, bytes per second
        var estimate: [[String: Any]] = []
        for n in [1, 2, 8, 32, 128] {
            let compute = 8192.0 * 2048.0 * perToken / Double(n)
            let reduce = Double(n - 1) * (perMap + Double(mapBytes) / link)
            estimate.append(["machines": n, "compute_hours": compute / 3600, "reduction_seconds": reduce])
            Out.err(String(format: "estimate: 8192 samples × 2048 tokens on %3d machines like this one: %.1f h compute + %.0f s reduction "
                           + "(%.2f s per map to add, + %.2f s per map over 10 Gb/s)", n, compute / 3600, reduce, perMap, Double(mapBytes) / link))
        }
        report["estimate"] = ["per_token_seconds": perToken, "per_map_add_seconds": perMap, "link_bytes_per_s": link, "rows": estimate]
        return report
    }
}
