#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - Where output bytes go

/// An open output (see `AtomicFile.write(to:allowStreams:_:)`), or a hasher that only
/// computes the SHA-256 of what would be written (a first pass for a header checksum).
/// Writes use write(2) with every error thrown as `ModelError.cannotWrite` naming the path.
public final class OutputSink {
    /// The path as the caller gave it (for messages).
    public let path: String
    let fd: Int32                         // -1: hash only
    /// A device or FIFO (written through: cannot seek back).
    public let isStream: Bool
    private var hasher: SHA256?
    public private(set) var bytesWritten = 0

    init(fd: Int32, path: String, isStream: Bool = false, hashing: Bool = false) {
        self.fd = fd; self.path = path; self.isStream = isStream; self.hasher = hashing ? SHA256() : nil
    }

    /// A sink that writes nothing and hashes everything it is given.
    public static func hashing() -> OutputSink { OutputSink(fd: -1, path: "", hashing: true) }

    /// From now on, also hash what is written (`digestHex()` then gives the sha256 of it).
    public func startHashing() { hasher = SHA256() }

    public func write(_ raw: UnsafeRawBufferPointer) throws {
        if fd >= 0, let h = hasher, raw.count >= 1 << 20 {
            // Hash on another thread while this one is in write(2) (page-cache copy and disk):
            // the checksum of a 0.8 GB checkpoint then costs little wall time when a core is free.
            // Both only read `raw`, and the wait below ends the worker's use of it.
            let box = HasherBox(h, raw), group = DispatchGroup()
            DispatchQueue.global().async(group: group) { box.hasher.update(box.bytes) }
            let r = StandardStreams.writeAll(raw, fd: fd)
            group.wait()
            hasher = box.hasher
            if r != 0 { throw ModelError.cannotWrite(path: path, reason: String(cString: strerror(r))) }
        } else {
            hasher?.update(raw)
            if fd >= 0 {
                let r = StandardStreams.writeAll(raw, fd: fd)
                if r != 0 { throw ModelError.cannotWrite(path: path, reason: String(cString: strerror(r))) }
            }
        }
        bytesWritten += raw.count
    }

    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Overwrites bytes already written at `offset` (regular files only: a checksum slot in a header).
    public func patch(_ bytes: [UInt8], at offset: Int) throws {
        precondition(!isStream && fd >= 0 && offset + bytes.count <= bytesWritten, "patch outside what was written")
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        if n != bytes.count { throw ModelError.cannotWrite(path: path, reason: n < 0 ? String(cString: strerror(errno)) : "short write") }
    }

    /// SHA-256 of everything hashed so far, as hex.
    public func digestHex() -> String {
        guard var h = hasher else { preconditionFailure("digestHex() on a sink that does not hash") }
        return h.finalizeHex()
    }
}

/// The hasher and the bytes it is given while a worker thread updates it (the caller waits).
private final class HasherBox: @unchecked Sendable {
    var hasher: SHA256
    let bytes: UnsafeRawBufferPointer
    init(_ h: SHA256, _ b: UnsafeRawBufferPointer) { hasher = h; bytes = b }
}
