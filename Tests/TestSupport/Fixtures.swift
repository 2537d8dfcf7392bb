import Foundation
import XCTest

/// The committed fixtures under Tests/Fixtures: tiny random-weight checkpoints and goldens
/// (recipes in tools/README.md).
///
/// They are part of the checkout, so a missing one is a failure, never a skip: a test that
/// skips on a broken checkout cannot fail.
public enum Fixtures {
    public static let root: URL = Checkout.root.appendingPathComponent("Tests/Fixtures")

    /// Absolute path of `relative` under Tests/Fixtures; throws (the test fails) when it is absent.
    public static func path(_ relative: String) throws -> String {
        let p = root.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else { throw FixtureError.missing(p) }
        return p
    }

    /// A JSON object fixture (goldens).
    public static func json(_ relative: String) throws -> [String: Any] {
        let d = try Data(contentsOf: URL(fileURLWithPath: try path(relative)))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: d) as? [String: Any], "\(relative) is not a JSON object")
    }

    /// Token ids valid for every tiny fixture (vocab ≥ 256), for forward passes on pruned or reloaded copies.
    public static let tokens = [1, 5, 17, 42, 99, 3, 64, 128, 7, 200, 11, 250]
}

public enum FixtureError: Error, CustomStringConvertible {
    case missing(String)
    public var description: String {
        switch self { case .missing(let p): return "committed fixture \(p) is missing (broken checkout?)" }
    }
}
