import Foundation
import XCTest

// MARK: - Locating test assets
//
// Shared assets live outside the repository (../shared/assets) and the SmolLM2
// GGUF is git-ignored under models/, so tests that need them skip (with a
// printed reason) instead of failing when a checkout lacks them.

enum TestAssets {
    /// `shared/assets`: $WORKBENCH_ASSETS, else the first ancestor of this file containing `shared/assets`.
    static var sharedAssets: URL? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["WORKBENCH_ASSETS"], !env.isEmpty {
            return fm.fileExists(atPath: env) ? URL(fileURLWithPath: env) : nil
        }
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("shared/assets")
            if fm.fileExists(atPath: candidate.path) { return candidate }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    /// The package root: the first ancestor of this file containing Package.swift.
    static var repoRoot: URL? {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir.deleteLastPathComponent()
        }
        return nil
    }

    /// Path of `relative` inside shared/assets, or XCTSkip.
    static func asset(_ relative: String) throws -> String {
        guard let base = sharedAssets else { throw skip("shared/assets not found (set WORKBENCH_ASSETS)") }
        let p = base.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else { throw skip("asset \(relative) not found under \(base.path)") }
        return p
    }

    /// SmolLM2-135M-Instruct Q4_1 GGUF: $WORKBENCH_SMOLLM2, else <repo>/models/, or XCTSkip.
    static func smolLM2() throws -> String {
        let env = ProcessInfo.processInfo.environment["WORKBENCH_SMOLLM2"] ?? ""
        let p = !env.isEmpty ? env : (repoRoot?.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path ?? "")
        guard FileManager.default.fileExists(atPath: p) else {
            throw skip("SmolLM2 GGUF not found at '\(p)' (set WORKBENCH_SMOLLM2 or copy it to models/)")
        }
        return p
    }

    /// A file under Tests/Fixtures, or XCTSkip.
    static func fixture(_ relative: String) throws -> String {
        guard let root = repoRoot else { throw skip("package root not found") }
        let p = root.appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else { throw skip("fixture \(relative) not found") }
        return p
    }

    static func skip(_ reason: String) -> XCTSkip {
        print("SKIP: \(reason)")
        return XCTSkip(reason)
    }

    /// A fresh temporary directory, removed by the caller's `addTeardownBlock`.
    static func tempDir(_ test: XCTestCase) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}
