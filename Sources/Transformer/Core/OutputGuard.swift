#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

// MARK: - No command writes over a file it reads
//
// One rule for every command that writes: the output may not be any file the
// run reads — the model's files (`LoadedModel.inputFiles`: config.json, weights,
// shards, tokenizer files, a llama2.c tokenizer beside the .bin), prompt, corpus
// and score files. Paths are compared as files, not strings: two paths are the
// same when stat(2) (which follows symlinks) gives the same device and inode,
// so `m/../m/config.json`, a symlink or a hard link to an input are all caught.
// An output that does not exist yet is compared by canonical path with inputs
// that do not exist either: loaders also list the files they looked for and did
// not find (an optional tokenizer file, a shard index), because creating one
// would change what the model loads next time.

public enum OutputGuard {
    /// Throws `OutputError.isInput` naming both paths when `output` is one of `inputs`, and
    /// `.shadowsInput` when it does not exist yet but a loader looks for a file there.
    public static func check(output: String, inputs: [String]) throws {
        let out = identity(output)
        let outPath = out == nil ? canonicalPath(output) : nil
        for input in inputs {
            let id = identity(input)
            if let out, id == out { throw OutputError.isInput(output: output, input: input) }
            if let outPath, id == nil, canonicalPath(input) == outPath { throw OutputError.shadowsInput(output: output, input: input) }
        }
    }

    /// For an output directory that replaces whatever is at `output`: throws
    /// `OutputError.containsInput` when an input is that directory or inside it.
    public static func checkDirectory(output: String, inputs: [String]) throws {
        let out = canonicalPath(output)
        for input in inputs {
            let i = canonicalPath(input)
            if i == out || i.hasPrefix(out == "/" ? "/" : out + "/") {
                throw OutputError.containsInput(output: output, input: input)
            }
        }
    }

    /// Device and inode of what `path` names (symlinks followed), or nil when nothing is there.
    static func identity(_ path: String) -> [UInt64]? {
        var st = stat()
        guard !path.isEmpty, stat(path, &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    /// Absolute, standardized path with symlinks resolved in its longest existing prefix
    /// (so it is defined for paths that do not exist yet).
    public static func canonicalPath(_ path: String) -> String {
        var url = URL(fileURLWithPath: path).standardizedFileURL
        var tail: [String] = []
        while !FileManager.default.fileExists(atPath: url.path), url.path != "/" {
            tail.insert(url.lastPathComponent, at: 0)
            url.deleteLastPathComponent()
        }
        var r = url.resolvingSymlinksInPath()
        for t in tail { r.appendPathComponent(t) }
        return r.standardizedFileURL.path
    }
}
