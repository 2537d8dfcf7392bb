import Foundation
import XCTest
@testable import Transformer

/// AtomicFile and Safetensors.write replace a file whole or not at all (split out of SafetensorsTests).
final class AtomicWriteTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("AtomicWriteTests-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testAtomicWriteReplacesExistingFileAndLeavesNoTemporaries() throws {
        // Known hazard: on swift-corelibs-foundation before PR #5443 (issue #4655),
        // `FileManager.replaceItemAt` on Linux throws "The file doesn't exist" after
        // having removed the original, so a replace loses both old and new contents.
        let p = path("out.safetensors")
        try AtomicFile.write("old contents that are longer than the new ones", to: p)
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "old contents that are longer than the new ones")

        XCTAssertNoThrow(try AtomicFile.write("new", to: p), "AtomicFile.write over an existing file")
        XCTAssertTrue(FileManager.default.fileExists(atPath: p), "the target vanished: neither old nor new contents survive")
        XCTAssertEqual(try? String(contentsOfFile: p, encoding: .utf8), "new")

        let t = Tensor(shape: [2], data: [3, 4])
        XCTAssertNoThrow(try Safetensors.write([SafetensorsRecord(name: "w", tensor: t)], to: p), "Safetensors.write over an existing file")
        XCTAssertEqual(try? SafetensorsFile(path: p).tensor("w"), t)

        let listing = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertEqual(listing, ["out.safetensors"], "unexpected directory contents (temporaries left, or target missing): \(listing)")
    }

    func testAtomicWriteIntoMissingDirectoryThrowsCannotWrite() throws {
        let p = dir.appendingPathComponent("no/such/dir/out.safetensors").path
        XCTAssertThrowsError(try AtomicFile.write("x", to: p)) { e in
            guard case .cannotWrite(let q, _)? = e as? ModelError else { return XCTFail("expected cannotWrite, got \(e)") }
            XCTAssertEqual(q, p)
            XCTAssertTrue((e as? LocalizedError)?.errorDescription?.contains(p) ?? false)
        }
        XCTAssertThrowsError(try Safetensors.write([], to: p)) { e in
            guard case .cannotWrite(let q, _)? = e as? ModelError else { return XCTFail("expected cannotWrite, got \(e)") }
            XCTAssertEqual(q, p)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: p))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}
