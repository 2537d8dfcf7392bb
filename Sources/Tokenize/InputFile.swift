#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - Opening an input file safely
//
// Every reader of user-supplied paths (model files, configs, tokenizers,
// prompt and corpus files, score files) goes through here. A FIFO, socket,
// device or directory given where a file is expected must be refused, never
// read: `open` on a FIFO blocks until a writer appears, and /dev/zero never
// ends. The file is opened with O_NONBLOCK (so a FIFO cannot block the open)
// and its type is taken from `fstat` on that descriptor, so the check and the
// read refer to the same inode (no stat-then-open race).
// Lives in Tokenize because that is the module every other one depends on.

public enum InputFileError: LocalizedError, Equatable {
    case notFound(path: String)
    case notRegular(path: String, kind: String)
    case unreadable(path: String, reason: String)
    case tooLarge(path: String, size: Int, limit: Int)

    public var errorDescription: String? {
        switch self {
        case .notFound(let p): return "no such file or directory: \(QuotedName.path(p))"
        case .notRegular(let p, let k): return "\(QuotedName.path(p)): is a \(k), not a regular file"
        case .unreadable(let p, let r): return "cannot read \(QuotedName.path(p)): \(r)"
        case .tooLarge(let p, let s, let l): return "\(QuotedName.path(p)): \(s) bytes is larger than the \(l)-byte limit for this kind of file"
        }
    }

    /// The path the error is about.
    public var path: String {
        switch self {
        case .notFound(let p), .notRegular(let p, _), .unreadable(let p, _), .tooLarge(let p, _, _): return p
        }
    }
}

public enum InputFile {
    public enum Kind: Equatable { case regular, directory, other(String) }

    /// What `path` is (symlinks followed), or nil when it does not exist.
    public static func kind(_ path: String) -> Kind? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return kind(mode: st.st_mode)
    }

    static func kind(mode: mode_t) -> Kind {
        switch mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        case S_IFIFO: return .other("FIFO")
        case S_IFCHR: return .other("character device")
        case S_IFBLK: return .other("block device")
        case S_IFSOCK: return .other("socket")
        default: return .other("special file")
        }
    }

    /// Throws unless `path` exists and is a regular file (symlinks followed).
    public static func requireRegular(_ path: String) throws {
        switch kind(path) {
        case nil: throw InputFileError.notFound(path: path)
        case .regular?: return
        case .directory?: throw InputFileError.notRegular(path: path, kind: "directory")
        case .other(let k)?: throw InputFileError.notRegular(path: path, kind: k)
        }
    }

    /// Opens a regular file read-only and returns its descriptor and size; the caller closes it.
    /// Refuses anything else without blocking (see above).
    public static func openRegular(_ path: String) throws -> (fd: Int32, size: Int) {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT || e == ENOTDIR { throw InputFileError.notFound(path: path) }
            throw InputFileError.unreadable(path: path, reason: String(cString: strerror(e)))
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw InputFileError.unreadable(path: path, reason: reason)
        }
        switch kind(mode: st.st_mode) {
        case .regular: break
        case .directory: close(fd); throw InputFileError.notRegular(path: path, kind: "directory")
        case .other(let k): close(fd); throw InputFileError.notRegular(path: path, kind: k)
        }
        // Blocking reads from here on: a regular file never blocks, and O_NONBLOCK has no meaning for it.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, Int(st.st_size))
    }

    /// The whole content of a regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int = 1 << 31) throws -> Data {
        let (fd, size) = try openRegular(path)
        defer { close(fd) }
        guard size <= limit else { throw InputFileError.tooLarge(path: path, size: size, limit: limit) }
        var data = Data(count: size)
        var done = 0
        try data.withUnsafeMutableBytes { (buf: UnsafeMutableRawBufferPointer) in
            while done < size {
                let n = Glibc.read(fd, buf.baseAddress! + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw InputFileError.unreadable(path: path, reason: String(cString: strerror(errno)))
                }
                if n == 0 { break }          // the file shrank while we read it
                done += n
            }
        }
        if done < size { data.count = done }
        return data
    }

    /// The first `count` bytes (fewer when the file is shorter), e.g. a format's magic.
    public static func prefix(_ path: String, count: Int) throws -> Data {
        let (fd, _) = try openRegular(path)
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            done += n
        }
        return Data(out.prefix(done))
    }

    /// Whether `path` exists and is a regular file: for optional files looked up by name.
    public static func isRegular(_ path: String) -> Bool { kind(path) == .regular }
}

// MARK: - Quoting names read from a file

public enum QuotedName {
    /// A name read from a (possibly corrupt) file, made safe to print in an error: at most
    /// `limit` characters, control and other non-printable characters escaped as `\u{..}`.
    /// A corrupt length field can make a "name" hundreds of KB of raw bytes.
    public static func safe(_ name: String, limit: Int = 80) -> String {
        var out = ""
        var n = 0
        for s in name.unicodeScalars {
            if n == limit { return out + "…(\(name.unicodeScalars.count) characters)" }
            if needsEscape(s) {
                out += "\\u{\(String(s.value, radix: 16))}"
            } else if s == "\\" {
                out += "\\\\"
            } else {
                out.unicodeScalars.append(s)
            }
            n += 1
        }
        return out
    }

    /// A path the user gave (or one built from it), for an error message: the same escaping,
    /// with room for real paths (a user's path is rarely over 100 characters; a fuzzed one is 100 KB).
    public static func path(_ p: String) -> String { safe(p, limit: pathLimit) }
    public static let pathLimit = 240

    /// A list of values (token ids …) for an error: the first `limit`, then how many there are.
    public static func list<T>(_ items: [T], limit: Int = 8) -> String {
        let shown = items.prefix(limit).map { "\($0)" }.joined(separator: ", ")
        return items.count <= limit ? "[\(shown)]" : "[\(shown), …] (\(items.count) in all)"
    }

    /// Characters that must not reach a terminal raw: C0/C1 controls, DEL, unassigned and
    /// format characters (bidi overrides), line/paragraph separators, U+FFFD (a decoding error).
    public static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        s.value < 0x20 || s.value == 0x7F || (0x80..<0xA0).contains(s.value)
            || s.properties.generalCategory == .unassigned || s.properties.generalCategory == .format
            || s.properties.generalCategory == .lineSeparator || s.properties.generalCategory == .paragraphSeparator
            || s.value == 0xFFFD
    }
}

// MARK: - Integers in JSON read from files

public enum JSONInteger {
    /// The value of a JSON number that is an exact integer in Int's range, else nil.
    /// `NSNumber.intValue` truncates 494592.5 to 494592 and turns 1e30 into an arbitrary
    /// value; a size or offset read that way is silently wrong.
    public static func exact(_ v: Any) -> Int? {
        guard let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), d > -9.2e18, d < 9.2e18 else { return nil }
        let i = n.int64Value
        // Integers beyond 2^53 are not exact as doubles: compare after the same rounding.
        guard Double(i) == d else { return nil }
        return Int(i)
    }
}
