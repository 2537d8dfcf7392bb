import Foundation
@testable import Transformer
import XCTest

/// The start-up check of OpenBLAS's core: the pure decision and /proc/cpuinfo
/// parsing (end to end through the CLI: WorkbenchTests/BLASKernelCheckCLITests).
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
}
