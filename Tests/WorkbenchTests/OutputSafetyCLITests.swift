import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

/// The workbench binary as a hostile user runs it: stdout on a full disk, closed or a broken
/// pipe; `--out` at the model's own files, a llama2.c tokenizer, a device node or a FIFO.
final class OutputSafetyCLITests: XCTestCase {
    override func setUp() { signal(SIGPIPE, SIG_IGN) }   // a FIFO test that fails must not kill the test run

    struct Run { let status: Int32; let signalled: Bool; let stdout: String; let stderr: String }

    /// Runs `/bin/bash -c script workbench args…` (the script refers to the binary as "$0"),
    /// stdout and stderr captured in files unless the script redirects them.
    func run(_ script: String, _ args: [String]) throws -> Run {
        let exe = try WorkbenchCLI.executable()
        let dir = try Scratch.dir(self)
        let o = dir.appendingPathComponent("stdout"), e = dir.appendingPathComponent("stderr")
        try Data().write(to: o)
        try Data().write(to: e)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", script, exe.path] + args
        p.standardOutput = try FileHandle(forWritingTo: o)
        p.standardError = try FileHandle(forWritingTo: e)
        try p.run()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, signalled: p.terminationReason == .uncaughtSignal,
                   stdout: String(decoding: try Data(contentsOf: o), as: UTF8.self), stderr: String(decoding: try Data(contentsOf: e), as: UTF8.self))
    }

    func workbench(_ args: [String]) throws -> Run { try run(#"exec "$0" "$@""#, args) }

    func hashes(_ dir: String) throws -> [String: String] {
        var r: [String: String] = [:]
        for n in try FileManager.default.contentsOfDirectory(atPath: dir) { r[n] = try SHA256.hex(file: dir + "/" + n) }
        return r
    }

    // MARK: - Standard output

    func testStdoutFullClosedOrBrokenNeverCrashes() throws {
        let model = try Assets.path("stories260K/hf")
        let info = ["info", "--model", model]
        for (script, what) in [(#"exec "$0" "$@" > /dev/full"#, "No space left on device"), (#"exec "$0" "$@" >&-"#, "Bad file descriptor")] {
            for args in [info, ["tokenize", "--model", model, "--text", "Once upon a time"],
                         ["generate", "--model", model, "--prompt", "Once", "--max-new-tokens", "3"], ["--help"]] {
                let r = try run(script, args)
                XCTAssertFalse(r.signalled, "\(script) \(args): \(r.stderr)")
                XCTAssertEqual(r.status, 1, "\(script) \(args): \(r.stderr)")
                XCTAssertTrue(r.stderr.contains("Error: cannot write to standard output: \(what)"), r.stderr)
            }
        }
        // The reader went away before the first write: quiet exit 0 (no SIGPIPE, no error).
        let r = try run(#"exec 1> >(true); sleep 0.3; exec "$0" "$@""#, info)
        XCTAssertFalse(r.signalled, r.stderr)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stderr.contains("Error"), r.stderr)
        // A closed stderr loses the diagnostics, not the run, and never lands in an output file.
        let out = try Scratch.dir(self).appendingPathComponent("h.html").path
        let h = try run(#"exec "$0" "$@" 2>&-"#, ["heatmap", "--model", model, "--prompt", "Once upon a time", "--out", out])
        XCTAssertEqual(h.status, 0)
        XCTAssertTrue(try String(contentsOfFile: out, encoding: .utf8).hasPrefix("<!DOCTYPE html>"))
    }

    // MARK: - Inputs are never overwritten

    func testOutputAtAnyFileTheRunReadsIsRefused() throws {
        let dir = try Scratch.dir(self).path
        let m = dir + "/m"
        try FileManager.default.copyItem(atPath: try Assets.path("stories260K/hf"), toPath: m)
        let p = dir + "/p.txt"
        try "Once upon a time\n".write(toFile: p, atomically: true, encoding: .utf8)
        let before = try hashes(m)
        var cases: [[String]] = []
        for f in before.keys.sorted() {
            cases.append(["heatmap", "--model", m, "--prompt", "Once upon a time", "--out", m + "/" + f])
            cases.append(["attribute", "--model", m, "--prompts", p, "--quiet", "--out", m + "/./" + f])
        }
        cases.append(["heatmap", "--model", m, "--prompt", "Hi there", "--out", m + "/tokenizer.json"])  // looked for: would change the model
        cases.append(["attribute", "--model", m, "--prompts", p, "--out", p])
        cases.append(["tasks", "greater-than", "--model", m, "--n", "2", "--out", m + "/tokenizer.model"])
        for args in cases {
            let r = try workbench(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Error: the output"), "\(args): \(r.stderr)")
            XCTAssertEqual(try hashes(m), before, "\(args): model folder unchanged")
        }
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "Once upon a time\n")
        // A llama2.c checkpoint: the tokenizer beside the .bin is an input too.
        let l = dir + "/l"
        try FileManager.default.createDirectory(atPath: l, withIntermediateDirectories: false)
        for f in ["stories260K.bin", "tok512.bin"] { try FileManager.default.copyItem(atPath: try Assets.path("stories260K/" + f), toPath: l + "/" + f) }
        let lBefore = try hashes(l)
        for args in [["attribute", "--model", l + "/stories260K.bin", "--prompts", p, "--quiet", "--out", l + "/tok512.bin"],
                     ["heatmap", "--model", l + "/stories260K.bin", "--prompt", "Once upon a time", "--out", l + "/tok512.bin"],
                     ["heatmap", "--model", l + "/stories260K.bin", "--prompt", "Once upon a time", "--out", l + "/tokenizer.bin"]] {
            let r = try workbench(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Error: the output"), r.stderr)
        }
        XCTAssertEqual(try hashes(l), lBefore)
    }

    // MARK: - Device nodes and FIFOs

    func testDeviceAndFIFOOutputsAreWrittenThroughAndStayWhatTheyWere() throws {
        let model = try Assets.path("stories260K/hf")
        let dir = try Scratch.dir(self).path
        let p = dir + "/p.txt"
        try "Once upon a time\n".write(toFile: p, atomically: true, encoding: .utf8)
        var nodes = ["/dev/null"]
        var st = stat()
        if stat("/dev/null", &st) == 0, mknod(dir + "/null", S_IFCHR | 0o666, st.st_rdev) == 0 { nodes.append(dir + "/null") }
        for node in nodes {
            for args in [["heatmap", "--model", model, "--prompt", "Once upon a time", "--out", node],
                         ["attribute", "--model", model, "--prompts", p, "--quiet", "--checkpoint-every", "1", "--out", node]] {
                let r = try workbench(args)
                XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
                var after = stat()
                XCTAssertEqual(lstat(node, &after), 0)
                XCTAssertEqual(after.st_mode & S_IFMT, S_IFCHR, "\(node) is still a character device")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/dev/null.partial"))
        let t = try workbench(["tasks", "greater-than", "--model", model, "--n", "2", "--out", "/dev/null"])
        XCTAssertEqual(t.status, 0, t.stderr)
        // A FIFO gets the heatmap's bytes.
        let fifo = dir + "/pipe"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        var html = Data()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { html = FileHandle(forReadingAtPath: fifo)?.readDataToEndOfFile() ?? Data(); done.signal() }
        let r = try workbench(["heatmap", "--model", model, "--prompt", "Once upon a time", "--out", fifo])
        XCTAssertEqual(r.status, 0, r.stderr)
        done.wait()
        XCTAssertTrue(String(decoding: html, as: UTF8.self).hasPrefix("<!DOCTYPE html>"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), nodes.count > 1 ? ["null", "p.txt", "pipe"] : ["p.txt", "pipe"])
        // A directory is refused before any work.
        let d = try workbench(["heatmap", "--model", model, "--prompt", "Once upon a time", "--out", dir])
        XCTAssertEqual(d.status, 1)
        XCTAssertTrue(d.stderr.contains("it is a directory"), d.stderr)
        XCTAssertFalse(d.stderr.contains("loaded"), "refused before loading: \(d.stderr)")
    }
}
