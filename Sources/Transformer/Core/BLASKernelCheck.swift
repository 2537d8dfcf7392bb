import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Start-up check of the OpenBLAS kernel
//
// A DYNAMIC_ARCH OpenBLAS picks its kernels once, when the library loads, from the
// CPU's family/model. On a CPU model it does not know (e.g. Debian 12's 0.3.21 on a
// Sapphire-Rapids-class Xeon) it falls back to a generic core such as Prescott (SSE3)
// and every matmul runs about 3.6× slower (issue 18). OpenBLAS reads
// OPENBLAS_CORETYPE only at load time, so choosing another core means running the
// program again: we set the variable and execv(/proc/self/exe) with the same argv.
// The alternative — dlopen'ing OpenBLAS ourselves after setenv — would need every
// cblas_* call to go through function pointers; re-executing costs one process
// start (a few ms) and only on machines where detection failed.
//
// Rules: a user's OPENBLAS_CORETYPE, even empty, is never overridden; the
// re-executed process carries a marker (WORKBENCH_BLAS_REEXEC) and never
// re-executes again; WORKBENCH_BLAS_ASSUME_GENERIC=1 makes the check believe
// OpenBLAS chose Prescott, so the fallback path can be tested on a machine whose
// detection works.

public enum BLASKernelCheck {
    public static let userVariable = "OPENBLAS_CORETYPE"
    public static let markerVariable = "WORKBENCH_BLAS_REEXEC"
    public static let simulateVariable = "WORKBENCH_BLAS_ASSUME_GENERIC"
    /// The core the simulation pretends OpenBLAS chose.
    public static let simulatedCore = "Prescott"

    /// The vector level each OpenBLAS x86 core's kernels use (names as
    /// `openblas_get_corename` returns them, compared case-insensitively).
    /// nil: a core this table does not know (then nothing is decided).
    public static func tier(ofCore name: String) -> VectorTier? {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return .avx512
        case "haswell", "zen": return .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": return .avx
        case "unknown", "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn",
             "dunnington", "nehalem", "opteron", "opteron(sse3)", "opteron_sse3", "barcelona", "bobcat", "athlon", "nano":
            return .sse
        default: return nil
        }
    }

    /// The best core for this CPU among those the library has kernels for,
    /// best first: SapphireRapids (AMX + AVX512-FP16) if the library knows it,
    /// Cooperlake (AVX512-BF16), SkylakeX (AVX-512), Haswell (AVX2+FMA),
    /// Sandybridge (AVX).
    public static func bestCore(for cpu: CPUFeatures, libraryKnows: (String) -> Bool) -> String? {
        guard let t = cpu.tier else { return nil }
        var candidates: [String] = []
        if t >= .avx512 {
            if cpu.has("amx_tile") && cpu.has("amx_bf16") && cpu.has("avx512_fp16") { candidates.append("SapphireRapids") }
            if cpu.has("avx512_bf16") { candidates.append("Cooperlake") }
            candidates.append("SkylakeX")
        }
        if t >= .avx2 { candidates.append("Haswell") }
        if t >= .avx { candidates.append("Sandybridge") }
        return candidates.first(where: libraryKnows)
    }

    public enum Decision: Equatable, Sendable {
        /// The core suits the CPU (or nothing better is known).
        case fine(core: String)
        /// The user set OPENBLAS_CORETYPE (value as set, possibly empty).
        case userChoice(value: String)
        /// Fallback detected: run again with OPENBLAS_CORETYPE=to.
        case reexec(to: String, from: String)
        /// This process is the re-executed one: `from` is what OpenBLAS had chosen.
        case reexecuted(requested: String, from: String)
        /// Fallback detected but cannot be fixed (reason says why).
        case stuck(core: String, reason: String)
        /// Not an x86 CPU, or a core name this check does not know.
        case notApplicable(core: String)
    }

    /// The decision, as a pure function of the environment and what was observed.
    public static func decide(environment env: [String: String], chosenCore: String, cpu: CPUFeatures,
                              dynamicArch: Bool, libraryKnows: (String) -> Bool) -> Decision {
        if let from = env[markerVariable] {
            // Never exec twice. Without the variable beside it the marker was inherited, not ours.
            guard let requested = env[userVariable] else { return .notApplicable(core: chosenCore) }
            return .reexecuted(requested: requested, from: from)
        }
        if let v = env[userVariable] { return .userChoice(value: v) }
        let core = env[simulateVariable] == "1" ? simulatedCore : chosenCore
        guard let have = tier(ofCore: core), let cpuTier = cpu.tier else { return .notApplicable(core: core) }
        guard have < cpuTier else { return .fine(core: core) }
        guard let best = bestCore(for: cpu, libraryKnows: libraryKnows), let bestTier = tier(ofCore: best), bestTier > have else {
            return .stuck(core: core, reason: "the library has no \(cpuTier) kernels")
        }
        guard dynamicArch else {
            return .stuck(core: core, reason: "the library was built for one core (no DYNAMIC_ARCH), so OPENBLAS_CORETYPE has no effect")
        }
        return .reexec(to: best, from: core + (core == chosenCore ? "" : " (simulated by \(simulateVariable)=1)"))
    }

    /// What the start-up check decided in this process (read by `BLASInfo`).
    public nonisolated(unsafe) static var decision: Decision?

    /// Whether the loaded library knows a core: a DYNAMIC_ARCH build exports
    /// one kernel table per core it was built with, `gotoblas_<CORE>`.
    public static func libraryKnows(_ core: String) -> Bool {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), "gotoblas_" + core.uppercased()) != nil
    }

    public static var chosenCore: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }
    public static var config: String { openblas_get_config().map { String(cString: $0) } ?? "unknown" }

    /// Call first thing in `main`, before any other output: may replace the
    /// process (execv) and does not return then. Prints one note on stderr in
    /// the re-executed process, and a warning when the fallback cannot be fixed.
    public static func runAtStartup() {
        requireBuildFeatures()
        let env = ProcessInfo.processInfo.environment
        let d = decide(environment: env, chosenCore: chosenCore, cpu: .current,
                       dynamicArch: config.contains("DYNAMIC_ARCH"), libraryKnows: libraryKnows)
        decision = d
        switch d {
        case .reexec(let to, let from):
            setenv(userVariable, to, 1)
            setenv(markerVariable, from, 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            // execv returns only on failure: carry on with the slow kernels, and say so.
            let err = String(cString: strerror(errno))
            unsetenv(userVariable); unsetenv(markerVariable)
            decision = .stuck(core: from, reason: "re-executing with \(userVariable)=\(to) failed: \(err)")
            warn("OpenBLAS chose the generic core \(from) on a CPU with \(CPUFeatures.current.tier?.description ?? "?"), and \(decision.map(describe) ?? "")")
        case .reexecuted(let requested, let from):
            let now = chosenCore
            if let t = tier(ofCore: now), let want = tier(ofCore: requested), t < want {
                warn("OpenBLAS did not take \(userVariable)=\(requested): it runs \(now) (had chosen \(from))")
            } else {
                warn("OpenBLAS had chosen \(from) on a CPU with \(CPUFeatures.current.tier?.description ?? "?"); running with \(userVariable)=\(requested) (core \(now)). Set \(userVariable) yourself to choose another.")
            }
        case .stuck(let core, let reason):
            warn("OpenBLAS runs the generic core \(core) on a CPU with \(CPUFeatures.current.tier?.description ?? "?"): \(reason); matmuls will be several times slower")
        case .fine, .userChoice, .notApplicable:
            break
        }
    }

    /// x86-64 builds use -target-cpu haswell (Package.swift): on a CPU without
    /// AVX2/FMA/F16C the first vectorised loop would die with SIGILL. Say so instead
    /// (this check's own code is scalar string handling). Skipped when
    /// /proc/cpuinfo cannot be read.
    static func requireBuildFeatures() {
        #if WORKBENCH_X86_64_V3
        let cpu = CPUFeatures.current
        guard !cpu.flags.isEmpty else { return }
        let missing = ["avx2", "fma", "f16c"].filter { !cpu.has($0) }
        guard !missing.isEmpty else { return }
        StandardStreams.err(("Error: this workbench was built with -target-cpu haswell (AVX2, FMA, F16C), and this CPU "
            + "(\(cpu.modelName)) lacks \(missing.joined(separator: ", ")). Remove the x86-64 -target-cpu flag in Package.swift and rebuild.\n"))
        exit(1)
        #endif
    }

    static func warn(_ s: String) { StandardStreams.err("workbench: " + s + "\n") }

    /// One phrase for `info`/`bench` on how the running core came about.
    public static func describe(_ d: Decision) -> String {
        switch d {
        case .fine: return "chosen by OpenBLAS, suits this CPU"
        case .userChoice(let v): return "\(userVariable)=\"\(v)\" set by the user (respected, not checked)"
        case .reexec(let to, let from): return "OpenBLAS chose \(from); re-executing with \(userVariable)=\(to)"
        case .reexecuted(let requested, let from):
            return "\(userVariable)=\(requested) set by workbench: OpenBLAS had chosen \(from)"
        case .stuck(_, let reason): return "generic core kept: \(reason)"
        case .notApplicable: return "chosen by OpenBLAS (not checked on this CPU)"
        }
    }
}
