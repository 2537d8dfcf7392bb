// MARK: - The tool's name and version, written once
//
// Printed by `workbench --version` and recorded in every file the tool writes
// (relevance metadata, pruning.json), so a file names the build that made it.

public enum Workbench {
    public static let version = "workbench 0.1.0"
}
