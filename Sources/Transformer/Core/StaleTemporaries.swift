#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - Leftovers of killed runs
//
// Every output is first written under a hidden name next to its target:
// `.<name>.tmp-<pid>-<random>` (files from `AtomicFile`, directories from the
// checkpoint writer) and, while a checkpoint directory is swapped in,
// `.<name>.old-<pid>-<random>` (the previous output moved aside). A run killed
// with SIGKILL or by a power cut leaves them behind (up to ~190 MB for SmolLM2).
// The next write into the same directory removes those whose process is gone.
// Only names of exactly this shape are touched, and only when no process with
// that pid exists (kill(pid, 0) fails with ESRCH — the /proc/<pid> test, also
// on systems without /proc). A live pid, even an unrelated process that reused
// the number, keeps the leftover: removal errs on the safe side. Assumes the
// directory is written from one pid namespace (not containers sharing a volume).

public enum StaleTemporaries {
    /// A name the writers create: the target's name, "tmp" or "old", and the writer's pid.
    struct Leftover: Equatable {
        var target: String
        var kind: String
        var pid: Int32
    }

    /// Parses `.<target>.<tmp|old>-<pid>-<random>` (pid and random in decimal).
    static func parse(_ entry: String) -> Leftover? {
        guard entry.hasPrefix("."), entry.count > 1 else { return nil }
        let body = entry.dropFirst()
        for kind in ["tmp", "old"] {
            guard let r = body.range(of: ".\(kind)-", options: .backwards) else { continue }
            let target = body[..<r.lowerBound], rest = body[r.upperBound...]
            let parts = rest.split(separator: "-", omittingEmptySubsequences: false)
            guard !target.isEmpty, parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }),
                  let pid = Int32(parts[0]), pid > 0, UInt32(parts[1]) != nil else { continue }
            return Leftover(target: String(target), kind: kind, pid: pid)
        }
        return nil
    }

    nonisolated(unsafe) private static var swept: Set<String> = []
    private static let lock = NSLock()

    /// `sweep(directory:)` the first time this process writes into `directory` (checkpoints are
    /// written every few samples; listing a large folder each time would be wasted work).
    public static func sweepOnce(directory: String) {
        let key = URL(fileURLWithPath: directory).standardizedFileURL.path
        lock.lock()
        let first = swept.insert(key).inserted
        lock.unlock()
        if first { sweep(directory: directory) }
    }

    /// Whether a process with this pid exists (EPERM: it exists but belongs to someone else).
    static func isAlive(_ pid: Int32) -> Bool {
        pid == getpid() || kill(pid, 0) == 0 || errno == EPERM
    }

    /// Removes this tool's leftovers in `directory` whose writer is gone: every `.tmp-`, and an
    /// `.old-` only when its target exists again (otherwise it is the only copy of the previous
    /// output, kept for the user). Returns the names removed. Never throws: a leftover that cannot
    /// be removed (permissions) stays, and the write goes on.
    @discardableResult
    public static func sweep(directory: String) -> [String] {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for name in entries.sorted() {
            guard let l = parse(name), !isAlive(l.pid) else { continue }
            let path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
            if l.kind == "old" {
                var st = stat()
                guard lstat(URL(fileURLWithPath: directory).appendingPathComponent(l.target).path, &st) == 0 else { continue }
            }
            if (try? fm.removeItem(atPath: path)) != nil { removed.append(name) }
        }
        return removed
    }
}
