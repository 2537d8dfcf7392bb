import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Lays a case out in a fresh folder, runs the binary under a timeout and an address-
/// space cap, and checks afterwards that no input changed.
struct Runner {
    let workbench: String
    let timeout: Double
    let memoryLimitKB: Int

    /// Runs a setup command quietly (seed generation); returns its exit code.
    static func runQuiet(_ exe: String, _ args: [String], cwd: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        p.environment = env
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    struct Snapshot { let type: mode_t; let rdev: UInt64; let data: Data? }

    func run(_ k: Case, in dir: String) -> RunResult {
        let fm = FileManager.default
        try? fm.removeItem(atPath: dir)
        try? fm.createDirectory(atPath: dir + "/work", withIntermediateDirectories: true)
        let work = dir + "/work"
        var before: [String: Snapshot] = [:]
        for (rel, d) in k.files {
            let path = work + "/" + rel
            try? fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            fm.createFile(atPath: path, contents: d)
        }
        for (rel, s) in k.special {
            let path = work + "/" + rel
            switch s {
            case .fifo: _ = mkfifo(path, 0o644)
            case .directory: try? fm.createDirectory(atPath: path, withIntermediateDirectories: true)
            case .devnull: _ = mknod(path, S_IFCHR | 0o666, devNumber(1, 3))
            }
        }
        for rel in Array(k.files.keys) + Array(k.special.keys) { before[rel] = snapshot(work + "/" + rel) }

        let outPath = dir + "/stdout", errPath = dir + "/stderr"
        fm.createFile(atPath: outPath, contents: nil)
        fm.createFile(atPath: errPath, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        // 0 = no cap (a sanitizer build reserves terabytes of shadow address space).
        var script = (memoryLimitKB > 0 ? "ulimit -v \(memoryLimitKB) 2>/dev/null; " : "") + "exec \"$@\""
        if k.stdout == .devFull { script += " >/dev/full" }
        if k.stdout == .closed { script += " >&-" }
        p.arguments = ["-c", script, "sh", workbench] + k.argv
        p.currentDirectoryURL = URL(fileURLWithPath: work)
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        // Swift's crash backtracer symbolicates for seconds; the signal is all we need.
        env["SWIFT_BACKTRACE"] = "enable=no"
        // Sanitizer builds: Swift's runtime keeps allocations alive at exit; leaks are not this harness's subject.
        if env["ASAN_OPTIONS"] == nil { env["ASAN_OPTIONS"] = "detect_leaks=0" }
        p.environment = env
        let errHandle = FileHandle(forWritingAtPath: errPath)!
        let outHandle = FileHandle(forWritingAtPath: outPath)!
        p.standardError = errHandle
        var pipe: Pipe?
        if k.stdout == .brokenPipe { pipe = Pipe(); p.standardOutput = pipe } else { p.standardOutput = outHandle }
        p.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        var r = RunResult()
        let start = Date()
        do { try p.run() } catch {
            r.launchFailed = true; r.status = 127; r.stderr = Data("harness could not start \(workbench): \(error)".utf8)
            return r
        }
        if let pipe { try? pipe.fileHandleForReading.close() }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            r.timedOut = true
            kill(p.processIdentifier, SIGKILL)
            done.wait()
        }
        r.seconds = Date().timeIntervalSince(start)
        try? errHandle.close(); try? outHandle.close()
        if let pipe { try? pipe.fileHandleForWriting.close() }
        r.signaled = p.terminationReason == .uncaughtSignal
        r.status = p.terminationStatus
        r.stdout = Self.head(outPath, 1 << 20)
        r.stderr = Self.head(errPath, 1 << 20)
        r.stderrSize = (try? fm.attributesOfItem(atPath: errPath)[.size] as? Int) ?? r.stderr.count

        // Data safety: every input still there, same kind of node, same bytes.
        for (rel, b) in before {
            let a = snapshot(work + "/" + rel)
            if a.type != b.type { r.inputProblems.append("\(rel): \(Self.kind(b.type)) became \(Self.kind(a.type))") }
            else if a.rdev != b.rdev { r.inputProblems.append("\(rel): device number changed") }
            else if a.data != b.data { r.inputProblems.append("\(rel): contents changed") }
        }
        if !r.timedOut && !r.signaled { r.leftovers = Self.leftovers(work) }
        return r
    }

    private func snapshot(_ path: String) -> Snapshot {
        var st = stat()
        guard lstat(path, &st) == 0 else { return Snapshot(type: 0, rdev: 0, data: nil) }
        let type = st.st_mode & S_IFMT
        return Snapshot(type: type, rdev: UInt64(st.st_rdev), data: type == S_IFREG ? FileManager.default.contents(atPath: path) : nil)
    }

    static func kind(_ t: mode_t) -> String {
        switch t {
        case 0: return "missing"
        case S_IFREG: return "regular file"
        case S_IFDIR: return "directory"
        case S_IFIFO: return "FIFO"
        case S_IFCHR: return "character device"
        case S_IFLNK: return "symlink"
        default: return "node type \(t)"
        }
    }

    static func head(_ path: String, _ n: Int) -> Data {
        guard let h = FileHandle(forReadingAtPath: path) else { return Data() }
        defer { try? h.close() }
        return (try? h.read(upToCount: n)) ?? Data()
    }

    /// Temporary files a finished run left behind (".name.tmp-…" and similar).
    static func leftovers(_ dir: String) -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            if name.hasPrefix("."), name.contains("tmp") { out.append(rel); e.skipDescendants() }
        }
        return out
    }
}

#if canImport(Glibc)
private func devNumber(_ major: UInt32, _ minor: UInt32) -> dev_t {
    dev_t((UInt64(major) << 8) | UInt64(minor))
}
#endif
