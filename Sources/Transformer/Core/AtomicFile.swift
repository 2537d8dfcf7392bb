import Foundation

// MARK: - Atomic writes

public enum AtomicFile {
    /// Writes `data` to a temporary sibling and renames it over `path`, so a
    /// crash never leaves a half-written output.
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try data.write(to: tmp)
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw ModelError.cannotWrite(path: path, reason: error.localizedDescription)
        }
        // POSIX rename replaces atomically. FileManager.replaceItemAt on Linux
        // (swift-corelibs-foundation #4655, still in 6.3.1) deletes the original
        // and then fails, losing both files.
        if rename(tmp.path, path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw ModelError.cannotWrite(path: path, reason: reason)
        }
    }

    public static func write(_ string: String, to path: String) throws {
        try write(Data(string.utf8), to: path)
    }
}
