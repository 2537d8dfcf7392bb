import Foundation

/// The package checkout these tests were compiled from.
///
/// Found from this file's compile-time path (`#filePath`), so it does not depend on the
/// directory `swift test` runs in.
public enum Checkout {
    /// The first ancestor of this file that holds Package.swift.
    public static let root: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir.deleteLastPathComponent()
        }
        // The tests are always built from a checkout; a missing Package.swift is a broken setup,
        // which must fail loudly rather than make every test skip.
        fatalError("TestSupport: no Package.swift above \(#filePath)")
    }()
}
