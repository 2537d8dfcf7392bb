import Foundation
import XCTest

/// Renders a page the workbench wrote in headless Chromium through `scripts/check_html.sh` (one rule for
/// tests and people: self-contained, nothing logged to the console) and leaves a screenshot beside it.
public enum HeadlessBrowser {
    /// Throws XCTSkip (printed) when Chromium is absent; fails the test with the script's report otherwise.
    /// Returns the screenshot path. `WORKBENCH_SHOTS=DIR` keeps the screenshots in DIR for a person to look at.
    @discardableResult
    public static func check(_ page: URL, file: StaticString = #filePath, line: UInt = #line) throws -> URL {
        guard ["/usr/bin/chromium", "/usr/bin/chromium-browser"].contains(where: FileManager.default.isExecutableFile)
        else { throw Assets.skip("chromium not installed (scripts/setup.sh installs it): \(page.lastPathComponent) not rendered") }
        let shots = ProcessInfo.processInfo.environment["WORKBENCH_SHOTS"].map { URL(fileURLWithPath: $0) }
            ?? page.deletingLastPathComponent()
        let p = Process()
        p.executableURL = Checkout.root.appendingPathComponent("scripts/check_html.sh")
        p.arguments = ["--shots", shots.path, page.path]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let report = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "\(page.lastPathComponent) failed the headless-browser check:\n\(report)",
                       file: file, line: line)
        return shots.appendingPathComponent(page.deletingPathExtension().lastPathComponent + ".png")
    }
}
