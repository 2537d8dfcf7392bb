import Foundation
import TestSupport
@testable import Transformer
import XCTest

/// The start-up OpenBLAS kernel check end to end: the simulated fallback really
/// re-executes `workbench` with the best core, and a user's value is respected.
final class BLASKernelCheckCLITests: XCTestCase {
    // MARK: - End to end through the CLI

    /// `workbench info` with a chosen environment (OPENBLAS_CORETYPE and the
    /// workbench's own switches removed unless given).
    func info(_ extra: [String: String]) throws -> (status: Int32, stdout: [String], stderr: String) {
        let exe = try WorkbenchCLI.executable()
        let model = try Assets.path("stories260K/hf")
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
        try Data().write(to: o); try Data().write(to: e)
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
