import Foundation
@testable import Transformer
import XCTest

/// The start-up check of OpenBLAS's core: the pure decision, /proc/cpuinfo
/// parsing, and the fallback path end to end through the CLI (re-exec).
final class BLASKernelCheckTests: XCTestCase {
    // MARK: - /proc/cpuinfo

    static let avx512Info = """
    processor\t: 0
    model name\t: Intel(R) Xeon(R) Platinum 8480+
    physical id\t: 0
    core id\t\t: 0
    cpu MHz\t\t: 2000.000
    flags\t\t: fpu sse sse2 ssse3 sse4_2 avx avx2 fma f16c avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512_fp16 amx_bf16 amx_tile

    processor\t: 1
    model name\t: Intel(R) Xeon(R) Platinum 8480+
    physical id\t: 0
    core id\t\t: 0
    cpu MHz\t\t: 3800.000
    flags\t\t: fpu sse sse2 ssse3 sse4_2 avx avx2 fma f16c avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512_fp16 amx_bf16 amx_tile

    processor\t: 2
    physical id\t: 0
    core id\t\t: 1
    """

    func testParseCpuinfo() {
        let c = CPUFeatures.parse(cpuinfo: Self.avx512Info)
        XCTAssertEqual(c.modelName, "Intel(R) Xeon(R) Platinum 8480+")
        XCTAssertEqual(c.physicalCores, 2)                 // two hyper-threads of core 0, and core 1
        XCTAssertEqual(c.tier, .avx512)
        XCTAssertEqual(try XCTUnwrap(c.ghz), 3.8, accuracy: 1e-9)   // the highest "cpu MHz"
        XCTAssertEqual(try XCTUnwrap(CPUFeatures.parse(cpuinfo: Self.avx512Info, cpufreqMaxKHz: 4_100_000).ghz), 4.1, accuracy: 1e-9)
        // 64 FLOP/cycle × min(2 usable, 2 physical) × 3.8 GHz.
        XCTAssertEqual(try XCTUnwrap(c.peakEstimate(cores: 8)).gflops, 64 * 2 * 3.8, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(c.peakEstimate(cores: 1)).gflops, 64 * 3.8, accuracy: 1e-9)

        XCTAssertEqual(CPUFeatures.parse(cpuinfo: "flags : sse sse2 avx avx2 fma\n").tier, .avx2)
        XCTAssertEqual(CPUFeatures.parse(cpuinfo: "flags : sse sse2 avx avx2\n").tier, .avx)   // AVX2 without FMA
        XCTAssertEqual(CPUFeatures.parse(cpuinfo: "flags : sse sse2 sse3\n").tier, .sse)
        // arm64 lists "Features": no x86 tier, no estimate, no decision.
        let arm = CPUFeatures.parse(cpuinfo: "processor : 0\nFeatures : fp asimd evtstrm aes crc32 sve\nCPU MHz : 2600\n")
        XCTAssertNil(arm.tier)
        XCTAssertTrue(arm.has("asimd"))
        XCTAssertNil(arm.peakEstimate(cores: 1))
    }

    // MARK: - The decision

    let sprCPU = CPUFeatures.parse(cpuinfo: avx512Info)
    let zen3CPU = CPUFeatures.parse(cpuinfo: "model name : AMD EPYC 7B13\nflags : sse sse2 avx avx2 fma f16c\ncpu MHz : 2450\n")
    /// Debian 12's 0.3.21: no SapphireRapids kernels.
    let lib0321: (String) -> Bool = { ["Prescott", "Core2", "Nehalem", "Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake"].contains($0) }

    func decide(_ env: [String: String], core: String, cpu: CPUFeatures, dynamic: Bool = true,
                knows: ((String) -> Bool)? = nil) -> BLASKernelCheck.Decision {
        BLASKernelCheck.decide(environment: env, chosenCore: core, cpu: cpu, dynamicArch: dynamic, libraryKnows: knows ?? lib0321)
    }

    func testFallbackPicksTheBestCoreTheLibraryKnows() {
        // The case: Prescott on a Sapphire-Rapids-class Xeon with 0.3.21 → Cooperlake.
        XCTAssertEqual(decide([:], core: "Prescott", cpu: sprCPU), .reexec(to: "Cooperlake", from: "Prescott"))
        // A library that has SapphireRapids kernels gets that name.
        XCTAssertEqual(decide([:], core: "Prescott", cpu: sprCPU, knows: { _ in true }), .reexec(to: "SapphireRapids", from: "Prescott"))
        // An older library without AVX-512 kernels: Haswell.
        XCTAssertEqual(decide([:], core: "Nehalem", cpu: sprCPU, knows: { ["Haswell", "Nehalem"].contains($0) }),
                       .reexec(to: "Haswell", from: "Nehalem"))
        // Core names compare case-insensitively; Haswell on an AVX-512 part is below its level too.
        XCTAssertEqual(decide([:], core: "haswell", cpu: sprCPU), .reexec(to: "Cooperlake", from: "haswell"))
        // AVX2 machine: Core2 → Haswell; Zen and Haswell are fine there.
        XCTAssertEqual(decide([:], core: "Core2", cpu: zen3CPU), .reexec(to: "Haswell", from: "Core2"))
        XCTAssertEqual(decide([:], core: "Zen", cpu: zen3CPU), .fine(core: "Zen"))
        XCTAssertEqual(decide([:], core: "Cooperlake", cpu: sprCPU), .fine(core: "Cooperlake"))
    }

    func testUserValueIsNeverOverridden() {
        XCTAssertEqual(decide(["OPENBLAS_CORETYPE": "Prescott"], core: "Prescott", cpu: sprCPU), .userChoice(value: "Prescott"))
        XCTAssertEqual(decide(["OPENBLAS_CORETYPE": ""], core: "Prescott", cpu: sprCPU), .userChoice(value: ""))
        XCTAssertEqual(decide(["OPENBLAS_CORETYPE": "", "WORKBENCH_BLAS_ASSUME_GENERIC": "1"], core: "Cooperlake", cpu: sprCPU),
                       .userChoice(value: ""))
    }

    func testNoLoopsAndNoPointlessExec() {
        // The re-executed process never re-executes, even if its core is still generic.
        XCTAssertEqual(decide(["WORKBENCH_BLAS_REEXEC": "Prescott", "OPENBLAS_CORETYPE": "Cooperlake"], core: "Prescott", cpu: sprCPU),
                       .reexecuted(requested: "Cooperlake", from: "Prescott"))
        XCTAssertEqual(decide(["WORKBENCH_BLAS_REEXEC": "Prescott"], core: "Prescott", cpu: sprCPU), .notApplicable(core: "Prescott"))
        // Without DYNAMIC_ARCH the variable does nothing: no exec, a stated reason.
        guard case .stuck(let core, let reason) = decide([:], core: "Prescott", cpu: sprCPU, dynamic: false) else {
            return XCTFail("expected .stuck")
        }
        XCTAssertEqual(core, "Prescott")
        XCTAssertTrue(reason.contains("DYNAMIC_ARCH"), reason)
        // No better kernels in the library.
        guard case .stuck = decide([:], core: "Prescott", cpu: sprCPU, knows: { $0 == "Prescott" }) else { return XCTFail("expected .stuck") }
        // Unknown core names and non-x86 CPUs are left alone.
        XCTAssertEqual(decide([:], core: "NeoverseN1", cpu: sprCPU), .notApplicable(core: "NeoverseN1"))
        XCTAssertEqual(decide([:], core: "Prescott", cpu: CPUFeatures.parse(cpuinfo: "Features : fp asimd\n")),
                       .notApplicable(core: "Prescott"))
        // The simulation switch: believes Prescott, says so.
        XCTAssertEqual(decide(["WORKBENCH_BLAS_ASSUME_GENERIC": "1"], core: "Cooperlake", cpu: sprCPU),
                       .reexec(to: "Cooperlake", from: "Prescott (simulated by WORKBENCH_BLAS_ASSUME_GENERIC=1)"))
    }

    func testLoadedLibraryExportsItsKernelTables() throws {
        let config = BLASKernelCheck.config
        try XCTSkipUnless(config.contains("DYNAMIC_ARCH"), "OpenBLAS without DYNAMIC_ARCH: \(config)")
        XCTAssertTrue(BLASKernelCheck.libraryKnows("Prescott"))
        XCTAssertTrue(BLASKernelCheck.libraryKnows(BLASKernelCheck.chosenCore), BLASKernelCheck.chosenCore)
        XCTAssertFalse(BLASKernelCheck.libraryKnows("NoSuchCore"))
    }

    // MARK: - End to end through the CLI

    /// `workbench info` with a chosen environment (OPENBLAS_CORETYPE and the
    /// workbench's own switches removed unless given).
    func info(_ extra: [String: String]) throws -> (status: Int32, stdout: [String], stderr: String) {
        let exe = try WorkbenchCLI.executable()
        let model = try TestAssets.asset("stories260K/hf")
        var env = ProcessInfo.processInfo.environment
        for k in ["OPENBLAS_CORETYPE", "WORKBENCH_BLAS_REEXEC", "WORKBENCH_BLAS_ASSUME_GENERIC"] { env[k] = nil }
        env.merge(extra) { $1 }
        let p = Process()
        p.executableURL = exe
        p.arguments = ["info", "--model", model]
        p.environment = env
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("blascheck-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let o = tmp.appendingPathComponent("out"), e = tmp.appendingPathComponent("err")
        FileManager.default.createFile(atPath: o.path, contents: nil); FileManager.default.createFile(atPath: e.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: o); p.standardError = try FileHandle(forWritingTo: e)
        try p.run(); p.waitUntilExit()
        return (p.terminationStatus, String(decoding: try Data(contentsOf: o), as: UTF8.self).split(separator: "\n").map(String.init),
                String(decoding: try Data(contentsOf: e), as: UTF8.self))
    }

    func testSimulatedFallbackReExecutesWithTheBestCore() throws {
        let cpu = CPUFeatures.current
        try XCTSkipUnless(cpu.tier != nil && BLASKernelCheck.config.contains("DYNAMIC_ARCH"),
                          "no x86 vector level or no DYNAMIC_ARCH OpenBLAS here")
        let best = try XCTUnwrap(BLASKernelCheck.bestCore(for: cpu, libraryKnows: BLASKernelCheck.libraryKnows))
        let r = try info(["WORKBENCH_BLAS_ASSUME_GENERIC": "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        // The child runs the core the parent asked for, and says how it came about.
        let coreLine = try XCTUnwrap(r.stdout.first { $0.hasPrefix("blas core: ") }, r.stdout.joined(separator: "\n"))
        XCTAssertEqual(coreLine, "blas core: \(best) (OPENBLAS_CORETYPE=\(best) set by workbench: OpenBLAS had chosen Prescott (simulated by WORKBENCH_BLAS_ASSUME_GENERIC=1))")
        XCTAssertTrue(r.stdout.contains { $0.hasPrefix("blas config: ") && $0.contains(" \(best) ") }, r.stdout.joined(separator: "\n"))
        XCTAssertTrue(r.stderr.contains("workbench: OpenBLAS had chosen Prescott"), r.stderr)
        XCTAssertTrue(r.stdout.contains("family: llama"))          // and the command itself ran once, normally
        XCTAssertEqual(r.stdout.filter { $0.hasPrefix("family: ") }.count, 1)

        // A user's value, even empty, is respected: no re-exec, no note.
        let u = try info(["WORKBENCH_BLAS_ASSUME_GENERIC": "1", "OPENBLAS_CORETYPE": ""])
        XCTAssertEqual(u.status, 0, u.stderr)
        XCTAssertTrue(u.stdout.contains { $0.hasPrefix("blas core: ") && $0.hasSuffix("(OPENBLAS_CORETYPE=\"\" set by the user (respected, not checked))") },
                      u.stdout.joined(separator: "\n"))
        XCTAssertFalse(u.stderr.contains("OpenBLAS had chosen"), u.stderr)

        // A real generic core chosen by the user stays, and the peak line reports it honestly.
        let g = try info(["OPENBLAS_CORETYPE": "Prescott"])
        XCTAssertTrue(g.stdout.contains("blas core: Prescott (OPENBLAS_CORETYPE=\"Prescott\" set by the user (respected, not checked))"),
                      g.stdout.joined(separator: "\n"))
        XCTAssertTrue(g.stdout.contains { $0.hasPrefix("sgemm peak: ") }, g.stdout.joined(separator: "\n"))
    }

    func testDetectedCoreIsReportedWithoutReExec() throws {
        let r = try info([:])
        XCTAssertEqual(r.status, 0, r.stderr)
        // (This test process may run with the session's own OPENBLAS_CORETYPE; the child runs without it.)
        let coreLine = try XCTUnwrap(r.stdout.first { $0.hasPrefix("blas core: ") }, r.stdout.joined(separator: "\n"))
        XCTAssertTrue(coreLine.hasSuffix("(chosen by OpenBLAS, suits this CPU)") || coreLine.contains("set by workbench: OpenBLAS had chosen")
                      || coreLine.hasSuffix("(chosen by OpenBLAS (not checked on this CPU))"), coreLine)
        XCTAssertTrue(r.stdout.contains { $0.hasPrefix("blas config: OpenBLAS ") }, r.stdout.joined(separator: "\n"))
        XCTAssertTrue(r.stdout.contains { $0.hasPrefix("blas library: ") && $0.contains("openblas") }, r.stdout.joined(separator: "\n"))
        XCTAssertTrue(r.stdout.contains { $0.hasPrefix("blas threads: ") }, r.stdout.joined(separator: "\n"))
        XCTAssertEqual(r.stderr.contains("OpenBLAS had chosen"), coreLine.contains("set by workbench"), r.stderr)
    }
}
