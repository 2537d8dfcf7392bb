#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Transformer

// MARK: - An output directory written atomically
//
// Files go to a hidden temporary sibling directory, which is renamed into place
// only when every file is written; the target must not exist (checked before the
// work and again right before the rename), and no input may be it or inside it.

public enum OutputDirectory {
    /// Refuses `out` when it is an input, contains one, or already exists.
    public static func preflight(_ out: String, inputs: [String]) throws {
        for i in inputs { try CheckpointWriter.preflight(output: out, input: i, force: false) }
    }

    /// Runs `body` with a temporary directory path, then renames it to `out`.
    public static func write(_ out: String, inputs: [String], _ body: (_ dir: String) throws -> Void) throws {
        try preflight(out, inputs: inputs)
        let fm = FileManager.default
        let target = URL(fileURLWithPath: CheckpointWriter.resolved(out))
        let parent = target.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw CheckpointWriteError.cannotWrite(path: parent.path, reason: error.localizedDescription)
        }
        let tmp = parent.appendingPathComponent(".\(target.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
            try body(tmp.path)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
        guard !fm.fileExists(atPath: target.path) else {
            try? fm.removeItem(at: tmp)
            throw CheckpointWriteError.outputExists(path: out)
        }
        guard rename(tmp.path, target.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? fm.removeItem(at: tmp)
            throw CheckpointWriteError.cannotWrite(path: out, reason: reason)
        }
    }
}
