import Foundation
import Tokenize

// MARK: - Why an output path is refused

/// Refusals of an output path, raised before anything is written.
public enum OutputError: LocalizedError, Equatable {
    /// The output is a file this run reads (same file after resolving symlinks and hard links).
    case isInput(output: String, input: String)
    /// The output does not exist yet, but a loader looks for a file at that path: creating it
    /// would change what this input loads as next time.
    case shadowsInput(output: String, input: String)
    /// A directory output would replace a directory holding an input of this run.
    case containsInput(output: String, input: String)
    /// The output path is a directory, where a file is to be written.
    case isDirectory(path: String)
    /// The output exists and is neither a regular file nor something that can be written through
    /// (`kind`: "block device", "socket", or "FIFO" / "character device" where those are not allowed).
    case notRegularFile(path: String, kind: String)
    /// The output is a symbolic link whose target does not exist.
    case danglingSymlink(path: String)
    /// `--out ''`.
    case emptyPath

    public var errorDescription: String? {
        switch self {
        case .isInput(let o, let i):
            return o == i ? "the output \(QuotedName.path(o)) is also an input of this run; choose another path"
                          : "the output \(QuotedName.path(o)) is also an input of this run (it is \(QuotedName.path(i))); choose another path"
        case .shadowsInput(let o, let i):
            return "the output \(QuotedName.path(o)) is a file the model loader looks for (\(QuotedName.path(i))); creating it would change what the model loads — choose another path"
        case .containsInput(let o, let i): return "the output directory \(QuotedName.path(o)) contains the input \(QuotedName.path(i)); replacing it would delete the input"
        case .isDirectory(let p): return "refusing to write \(QuotedName.path(p)): it is a directory"
        case .notRegularFile(let p, let k): return "refusing to write \(QuotedName.path(p)): it is a \(k), not a regular file"
        case .danglingSymlink(let p): return "refusing to write \(QuotedName.path(p)): it is a symbolic link to a file that does not exist"
        case .emptyPath: return "the output path is empty"
        }
    }
}
