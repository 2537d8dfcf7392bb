import Foundation
import XCTest

/// Assets that are not committed: the shared offline assets and the git-ignored SmolLM2 GGUF.
///
/// The rule (stated in the README): `$WORKBENCH_ASSETS` when set, else `../shared/assets` beside
/// the checkout. A test that needs an absent asset skips and prints why, so a checkout without
/// the assets still runs every other test.
public enum Assets {
    /// The shared assets folder, or nil when the rule finds none.
    public static var root: URL? {
        let env = ProcessInfo.processInfo.environment["WORKBENCH_ASSETS"] ?? ""
        let dir = env.isEmpty
            ? Checkout.root.deletingLastPathComponent().appendingPathComponent("shared/assets")
            : URL(fileURLWithPath: env)
        return FileManager.default.fileExists(atPath: dir.path) ? dir : nil
    }

    /// Where the rule looks, for skip messages.
    static var searched: String {
        let env = ProcessInfo.processInfo.environment["WORKBENCH_ASSETS"] ?? ""
        return env.isEmpty ? Checkout.root.deletingLastPathComponent().appendingPathComponent("shared/assets").path
                           : "$WORKBENCH_ASSETS=\(env)"
    }

    /// Absolute path of `relative` inside the shared assets folder, or XCTSkip.
    public static func path(_ relative: String) throws -> String {
        guard let base = root else { throw skip("shared assets not found at \(searched) (set WORKBENCH_ASSETS)") }
        let p = base.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else { throw skip("asset \(relative) not found under \(base.path)") }
        return p
    }

    /// SmolLM2-135M-Instruct Q4_1 GGUF: `$WORKBENCH_SMOLLM2`, else `<checkout>/models/`, or XCTSkip.
    public static func smolLM2() throws -> String {
        let env = ProcessInfo.processInfo.environment["WORKBENCH_SMOLLM2"] ?? ""
        let p = env.isEmpty ? Checkout.root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path : env
        guard FileManager.default.fileExists(atPath: p) else {
            throw skip("SmolLM2 GGUF not found at '\(p)' (set WORKBENCH_SMOLLM2 or copy it to models/)")
        }
        return p
    }

    /// Prints the reason (XCTest on Linux does not show a skip's message) and returns the skip to throw.
    public static func skip(_ reason: String) -> XCTSkip {
        print("SKIP: \(reason)")
        return XCTSkip(reason)
    }
}
