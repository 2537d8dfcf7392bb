#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - Atomic writes

public enum AtomicFile {
    /// Writes `path` through `body` (see `OutputDestination`):
    /// - nothing there or a regular file: `body` writes a hidden temporary sibling
    ///   `.<name>.tmp-<pid>-<random>`, which is fsynced and renamed over the (symlink-resolved)
    ///   path, so a crash or a full disk never leaves a half-written output and an old file
    ///   survives a failed write. Stale temporaries of killed runs in that directory are removed first.
    /// - a character device or FIFO, when `allowStreams`: written through in place (no rename).
    /// Anything else is refused before `body` runs.
    public static func write(to path: String, allowStreams: Bool = true, _ body: (OutputSink) throws -> Void) throws {
        switch try OutputDestination.of(path, allowStreams: allowStreams) {
        case .stream: try writeThrough(path, body)
        case .file(let target): try writeReplacing(target, reportedAs: path, body)
        }
    }

    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { try $0.write(data) }
    }

    public static func write(_ string: String, to path: String) throws {
        try write(Data(string.utf8), to: path)
    }

    /// The temporary sibling's name for `name` (what `StaleTemporaries` recognises).
    static func temporaryName(for name: String) -> String {
        ".\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    private static func writeReplacing(_ target: String, reportedAs path: String, _ body: (OutputSink) throws -> Void) throws {
        let url = URL(fileURLWithPath: target)
        let dir = url.deletingLastPathComponent().path
        StaleTemporaries.sweepOnce(directory: dir)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(temporaryName(for: url.lastPathComponent)).path
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            throw ModelError.cannotWrite(path: path, reason: "cannot create a temporary file next to it: \(String(cString: strerror(errno)))")
        }
        do {
            // A replaced file keeps its permissions (a private 0600 result stays private).
            var old = stat()
            if stat(target, &old) == 0, fchmod(fd, old.st_mode & 0o7777) != 0 {
                throw ModelError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
            }
            try body(OutputSink(fd: fd, path: path, isStream: false))
            guard fsync(fd) == 0 else { throw ModelError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
            guard close(fd) == 0 else { throw ModelError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        // The path may have changed while the body ran (a long attribution): never rename over
        // anything but a regular file or a symlink.
        var st = stat()
        if lstat(target, &st) == 0, st.st_mode & S_IFMT != S_IFREG, st.st_mode & S_IFMT != S_IFLNK {
            unlink(tmp)
            throw OutputError.notRegularFile(path: path, kind: OutputDestination.kindName(st.st_mode))
        }
        // POSIX rename replaces atomically. FileManager.replaceItemAt on Linux
        // (swift-corelibs-foundation #4655, still in 6.3.1) deletes the original
        // and then fails, losing both files.
        if rename(tmp, target) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw ModelError.cannotWrite(path: path, reason: reason)
        }
    }

    private static func writeThrough(_ path: String, _ body: (OutputSink) throws -> Void) throws {
        // No O_CREAT / O_TRUNC: this only ever opens the device or FIFO that was found there.
        let fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw ModelError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFCHR || st.st_mode & S_IFMT == S_IFIFO else {
            throw ModelError.cannotWrite(path: path, reason: "it was replaced by something other than a device or FIFO while being opened")
        }
        try body(OutputSink(fd: fd, path: path, isStream: true))
    }
}
