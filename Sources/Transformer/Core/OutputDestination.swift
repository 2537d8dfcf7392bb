#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - What is at an output path

/// How an output path is written, decided from what exists there now.
public enum OutputDestination: Equatable, Sendable {
    /// Nothing there yet, or a regular file (`path` is the symlink-resolved location, so a
    /// link stays a link and the file it points to is replaced): written into a hidden temporary
    /// sibling, then renamed over `path` — readers see the old file or the new one, never a part.
    case file(path: String)
    /// A character device or FIFO (`/dev/null`, a named pipe, `/dev/stdout` on a pipe,
    /// bash's `>(…)`): written through in place. Renaming over it would replace the node
    /// itself — `--out /dev/null` run as root once turned /dev/null into a regular file.
    case stream(path: String)

    public var isStream: Bool { if case .stream = self { return true } else { return false } }

    /// Classifies `path`. Directories, block devices, sockets and dangling symlinks are refused,
    /// and so are FIFOs and character devices unless `allowStreams`.
    public static func of(_ path: String, allowStreams: Bool = true) throws -> OutputDestination {
        guard !path.isEmpty else { throw OutputError.emptyPath }
        var st = stat()
        if lstat(path, &st) != 0 {
            let e = errno
            guard e == ENOENT else { throw ModelError.cannotWrite(path: path, reason: String(cString: strerror(e))) }
            return .file(path: path)
        }
        if st.st_mode & S_IFMT == S_IFLNK, stat(path, &st) != 0 {
            let e = errno
            if e == ENOENT { throw OutputError.danglingSymlink(path: path) }
            throw ModelError.cannotWrite(path: path, reason: String(cString: strerror(e)))
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .file(path: resolved(path))
        case S_IFDIR: throw OutputError.isDirectory(path: path)
        case S_IFCHR, S_IFIFO:
            guard allowStreams else { throw OutputError.notRegularFile(path: path, kind: kindName(st.st_mode)) }
            return .stream(path: path)
        default: throw OutputError.notRegularFile(path: path, kind: kindName(st.st_mode))
        }
    }

    static func kindName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFCHR: return "character device"
        case S_IFIFO: return "FIFO"
        case S_IFBLK: return "block device"
        case S_IFSOCK: return "socket"
        case S_IFDIR: return "directory"
        default: return "special file"
        }
    }

    /// `realpath`, or `path` itself when that fails (it existed a moment ago; the write reports any error).
    static func resolved(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }
}
