import Foundation
import XCTest

/// What one `workbench` run produced.
public struct WorkbenchRun {
    public let args: [String]
    public let stdout: String
    public let stderr: String
    public let status: Int32
    /// true when the process died from a signal (a crash), not a clean exit.
    public let crashed: Bool

    public var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
    public var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
    public var summary: String {
        "workbench \(args.joined(separator: " ")) → status \(status)\(crashed ? " (SIGNAL)" : "")\nstdout: \(stdout)\nstderr: \(stderr)"
    }
}

/// Runs the `workbench` executable SwiftPM built for this test run, as a user would.
public enum WorkbenchCLI {
    /// `workbench` in the build products directory the tests run from (`.build/<triple>/debug`, or
    /// `release` under `-c release`). Never a fixed `.build/debug`: that could be a stale binary from
    /// another configuration.
    public static func executable() throws -> URL {
        let fm = FileManager.default
        var dirs: [URL] = []
        let bundle = Bundle(for: BundleToken.self)
        dirs.append(bundle.bundleURL)                                   // Linux: the products dir itself
        dirs.append(bundle.bundleURL.deletingLastPathComponent())       // macOS: the dir holding the .xctest
        if let exe = bundle.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        if let arg0 = CommandLine.arguments.first { dirs.append(URL(fileURLWithPath: arg0).deletingLastPathComponent()) }
        dirs = dirs.map(\.standardizedFileURL).reduce(into: []) { seen, d in if !seen.contains(d) { seen.append(d) } }
        for d in dirs {
            let p = d.appendingPathComponent("workbench")
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: p.path, isDirectory: &isDir), !isDir.boolValue, fm.isExecutableFile(atPath: p.path) { return p }
        }
        // A build product, not an asset: `swift test` builds it (WorkbenchTests depends on it), so its
        // absence is a failure, not a skip.
        throw CLIError.executableNotFound(dirs.map(\.path))
    }

    /// Runs `workbench args…` and waits for it.
    ///
    /// - stdin: bytes fed to standard input (nil: /dev/null).
    /// - environment: variables set on top of the test process's environment.
    /// - interruptAfter: seconds after which SIGINT is sent if the run is still going (the checkpoint path).
    /// - timeout: the run is killed and the test fails after this many seconds.
    /// - launcher: a program that starts workbench (`mpirun -np 2 …`): it runs `launcher + [workbench] + args`.
    /// stdout, stderr and stdin go through temporary files, so a chatty run cannot deadlock on a full pipe.
    /// `run` as a user with the shared assets runs it (`WORKBENCH_ASSETS` set when they are found), failing
    /// the calling test if the process died from a signal.
    public static func runWithAssets(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> WorkbenchRun {
        let r = try run(args, environment: Assets.root.map { ["WORKBENCH_ASSETS": $0.path] } ?? [:], file: file, line: line)
        XCTAssertFalse(r.crashed, r.summary, file: file, line: line)
        return r
    }

    public static func run(_ args: [String], stdin: Data? = nil, environment: [String: String] = [:],
                           interruptAfter: TimeInterval? = nil, timeout: TimeInterval = 300, launcher: [String] = [],
                           file: StaticString = #filePath, line: UInt = #line) throws -> WorkbenchRun {
        let exe = try executable()
        let fm = FileManager.default
        let tmp = fm.temporaryDirectory.appendingPathComponent("wbcli-\(UUID().uuidString)")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: tmp) }
        let outURL = tmp.appendingPathComponent("stdout"), errURL = tmp.appendingPathComponent("stderr")
        // Data().write throws with the path on failure; createFile would only return false.
        try Data().write(to: outURL)
        try Data().write(to: errURL)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let p = Process()
        if let program = launcher.first {
            p.executableURL = URL(fileURLWithPath: program)
            p.arguments = Array(launcher.dropFirst()) + [exe.path] + args
        } else {
            p.executableURL = exe
            p.arguments = args
        }
        p.standardOutput = out
        p.standardError = err
        if let stdin {
            let inURL = tmp.appendingPathComponent("stdin")
            try stdin.write(to: inURL)
            p.standardInput = try FileHandle(forReadingFrom: inURL)
        } else {
            p.standardInput = FileHandle.nullDevice
        }
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        let start = DispatchTime.now()
        try p.run()
        var finished = false
        if let t = interruptAfter {
            finished = done.wait(timeout: start + min(t, timeout)) == .success
            if !finished { kill(p.processIdentifier, SIGINT) }
        }
        if !finished, done.wait(timeout: start + timeout) == .timedOut {
            p.terminate()
            if done.wait(timeout: .now() + 5) == .timedOut {
                kill(p.processIdentifier, SIGKILL)
                done.wait()
            }
            XCTFail("workbench \(args.joined(separator: " ")) timed out after \(timeout) s", file: file, line: line)
        }
        try out.close(); try err.close()
        let so = String(decoding: try Data(contentsOf: outURL), as: UTF8.self)
        let se = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
        return WorkbenchRun(args: args, stdout: so, stderr: se, status: p.terminationStatus,
                            crashed: p.terminationReason == .uncaughtSignal)
    }

    /// A usage error: exit 64, `Error:` and `Usage:` lines on stderr, nothing on stdout.
    public static func assertUsageError(_ r: WorkbenchRun, mentions: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.crashed, r.summary, file: file, line: line)
        XCTAssertEqual(r.status, 64, r.summary, file: file, line: line)
        XCTAssertTrue(r.stderrLines.contains { $0.hasPrefix("Error: ") }, "no Error: line\n" + r.summary, file: file, line: line)
        XCTAssertTrue(r.stderrLines.contains { $0.hasPrefix("Usage: ") }, "no Usage: line\n" + r.summary, file: file, line: line)
        XCTAssertEqual(r.stdout, "", "usage errors print nothing on stdout\n" + r.summary, file: file, line: line)
        if let mentions {
            let errLine = r.stderrLines.first { $0.hasPrefix("Error: ") } ?? ""
            XCTAssertTrue(errLine.contains(mentions), "Error line should mention '\(mentions)'\n" + r.summary, file: file, line: line)
        }
    }

    /// A runtime error: exit 1, an `Error:` line containing `mentions`, no crash.
    public static func assertRuntimeError(_ r: WorkbenchRun, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.crashed, "CRASH (signal) instead of a clean error\n" + r.summary, file: file, line: line)
        XCTAssertEqual(r.status, 1, r.summary, file: file, line: line)
        let errLine = r.stderrLines.first { $0.hasPrefix("Error: ") }
        XCTAssertNotNil(errLine, "no Error: line\n" + r.summary, file: file, line: line)
        for m in mentions {
            XCTAssertTrue(errLine?.contains(m) ?? false, "Error line should mention '\(m)'\n" + r.summary, file: file, line: line)
        }
        XCTAssertFalse(r.stderrLines.contains { $0.hasPrefix("Usage: ") }, "runtime errors are not usage errors\n" + r.summary,
                       file: file, line: line)
    }
}

private final class BundleToken {}

public enum CLIError: Error, CustomStringConvertible {
    case executableNotFound([String])
    public var description: String {
        switch self { case .executableNotFound(let d): return "workbench executable not found next to the test bundle (looked in \(d))" }
    }
}
