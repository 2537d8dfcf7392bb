#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - Standard output and error that never crash
//
// Foundation's `FileHandle.write(_:)` is a `try!` on Linux: a full disk
// (`> /dev/full`), a closed stdout (`>&-`) or an I/O error kills the process
// with SIGILL. Everything the workbench prints goes through here instead, with
// write(2) and explicit errors:
//
// - stdout: a broken pipe (`| head`) means the reader wants no more, so the
//   process ends quietly with status 0 (as ripgrep does; the command's files are
//   complete by the time anything is printed about them, and generation is
//   pointless without a reader). Any other failure prints
//   `Error: cannot write to standard output: <reason>` on stderr and exits 1.
// - stderr (diagnostics, progress lines): failures are ignored — there is
//   nowhere left to report them, and a progress line must never end a run.

public enum StandardStreams {
    /// Set by `prepare()` when fd 1 was closed at start-up (it is then held open on /dev/null).
    nonisolated(unsafe) private static var stdoutClosedAtStart = false

    /// Call once at start-up, before any file is opened.
    /// - SIGPIPE is ignored: a reader that goes away then shows up as EPIPE, handled below
    ///   (and when writing an output through a FIFO, as a normal write error) instead of
    ///   killing the process half-way through a file.
    /// - Closed fds 0–2 are opened on /dev/null, so a file opened later cannot get fd 1 or 2
    ///   and receive console text. A closed stdout is still reported on the first write.
    public static func prepare() {
        signal(SIGPIPE, SIG_IGN)
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            if null >= 0, null != fd { dup2(null, fd); close(null) }
            if fd == 1 { stdoutClosedAtStart = true }
        }
    }

    /// Writes text to standard output; on failure ends the process as described above.
    public static func out(_ s: String) {
        var text = s
        let r: Int32 = stdoutClosedAtStart ? EBADF : text.withUTF8 { writeAll(UnsafeRawBufferPointer($0), fd: 1) }
        guard r != 0 else { return }
        if r == EPIPE { exit(0) }
        err("Error: cannot write to standard output: \(String(cString: strerror(r)))\n")
        exit(1)
    }

    /// Writes text to standard error, ignoring failures.
    public static func err(_ s: String) {
        var text = s
        _ = text.withUTF8 { writeAll(UnsafeRawBufferPointer($0), fd: 2) }
    }

    /// Writes every byte to `fd`, retrying short writes and EINTR. Returns 0 or the errno.
    public static func writeAll(_ bytes: UnsafeRawBufferPointer, fd: Int32) -> Int32 {
        guard var p = bytes.baseAddress else { return 0 }
        var left = bytes.count
        while left > 0 {
            let n = write(fd, p, left)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if n == 0 { return EIO }
            p += n; left -= n
        }
        return 0
    }
}
