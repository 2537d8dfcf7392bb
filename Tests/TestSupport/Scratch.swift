import Foundation
import XCTest

/// Scratch directories for one test.
public enum Scratch {
    /// A fresh temporary directory, removed when `test` ends.
    public static func dir(_ test: XCTestCase) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}
