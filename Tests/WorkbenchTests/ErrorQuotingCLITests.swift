import Foundation
import XCTest
import TestSupport

/// Values quoted in usage errors are truncated and escaped (issue 12, fuzz classes): a 60 KB `--target`
/// used to be echoed whole, and control bytes in an argument reached the terminal raw.
final class ErrorQuotingCLITests: XCTestCase {
    private func assertBounded(_ r: WorkbenchRun, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        WorkbenchCLI.assertUsageError(r, file: file, line: line)
        XCTAssertLessThan(r.stderr.utf8.count, 4000, "stderr should not echo the whole value\n" + r.summary.prefix(600), file: file, line: line)
        XCTAssertFalse(r.stderr.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "raw control bytes in stderr", file: file, line: line)
        let errLine = r.stderrLines.first { $0.hasPrefix("Error: ") } ?? ""
        for m in mentions { XCTAssertTrue(errLine.contains(m), "Error line should mention '\(m)'\n" + errLine, file: file, line: line) }
    }

    func testHugeTargetSpecIsTruncated() throws {
        let model = try Assets.path("stories260K/hf")
        let spec = String(repeating: "1,", count: 30000)
        let r = try WorkbenchCLI.run(["heatmap", "--model", model, "--prompt", "hi", "--target", spec])
        assertBounded(r, mentions: ["invalid target '1,1,1,", "(60000 characters)"])
    }

    func testHugeNumberValueIsTruncated() throws {
        let model = try Assets.path("stories260K/hf")
        let r = try WorkbenchCLI.run(["prune", "--model", model, "--method", "magnitude", "--scheme", "row",
                                      "--sparsity", String(repeating: "x", count: 100_000), "--out", "/nonexistent/out"])
        assertBounded(r, mentions: ["--sparsity", "(100000 characters)", "expected a number"])
        let scheme = try WorkbenchCLI.run(["prune", "--model", model, "--method", "magnitude", "--scheme", String(repeating: "y", count: 50_000),
                                           "--sparsity", "0.5", "--out", "/nonexistent/out"])
        assertBounded(scheme, mentions: ["--scheme", "(50000 characters)"])
    }

    func testControlBytesInArgumentsAreEscaped() throws {
        let r = try WorkbenchCLI.run(["info", "--\u{1B}[31mred\u{07}", "x"])
        assertBounded(r, mentions: ["Unknown option", "\\u{1b}[31mred\\u{7}"])
        let sub = try WorkbenchCLI.run(["\u{1B}]0;title\u{07}"])
        assertBounded(sub, mentions: ["Unknown subcommand", "\\u{1b}]0;title\\u{7}"])
    }
}
