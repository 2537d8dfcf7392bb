import Foundation
import XCTest

/// Locates the shared offline assets for tests.
///
/// Order: `$WORKBENCH_ASSETS`, else the first `shared/assets` folder found walking up
/// from this source file. Missing assets make the calling test skip (with a printed reason).
enum Assets {
    static let root: URL? = {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["WORKBENCH_ASSETS"], !env.isEmpty {
            return fm.fileExists(atPath: env) ? URL(fileURLWithPath: env) : nil
        }
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" && !dir.path.isEmpty {
            let candidate = dir.appendingPathComponent("shared/assets")
            if fm.fileExists(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }()

    /// Absolute path of `relative` inside the assets folder; skips the test when absent.
    static func path(_ relative: String) throws -> String {
        guard let root else {
            let reason = "assets folder not found (set WORKBENCH_ASSETS or provide shared/assets); skipping"
            print("[TokenizeTests] \(reason)")
            throw XCTSkip(reason)
        }
        let p = root.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else {
            let reason = "asset \(relative) not found under \(root.path); skipping"
            print("[TokenizeTests] \(reason)")
            throw XCTSkip(reason)
        }
        return p
    }

    /// The package's `Tests/Fixtures` folder.
    static var fixtures: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    /// A fresh temporary directory, removed at the end of the test.
    static func tempDir(_ test: XCTestCase) throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("TokenizeTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}

/// Strings for round-trip checks: unicode, emoji, CJK, whitespace runs, tabs/newlines.
let roundTripStrings = [
    "Hello world",
    "I believe the meaning of life is",
    "Café naïve résumé Ångström e\u{301}",
    "Emoji 😀👍🏽 🇺🇸 👨‍👩‍👧 done",
    "中文字符和日本語のテキスト 한국어",
    "Multiple   spaces   and  trailing  ",
    "   leading spaces",
    "tabs\tand\t\tnewlines\n\nCRLF\r\nend\n",
    "Numbers 12345 3.14159 1,000,000",
    "I'm sure they'll say it's what we've done",
    "",
    " ",
]
