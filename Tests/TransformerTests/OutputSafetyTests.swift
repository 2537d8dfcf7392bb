import Foundation
import XCTest
@testable import Transformer
import TestSupport

/// Outputs: what is at the path decides how it is written (never a rename over a device, FIFO or
/// directory), no output over an input (by device + inode), leftovers of killed runs swept, and the
/// data checksum of safetensors files.
final class OutputSafetyTests: XCTestCase {
    override func setUp() { signal(SIGPIPE, SIG_IGN) }   // a FIFO test that fails must not kill the test run

    func tmp() throws -> String { try Scratch.dir(self).path }

    func mode(_ path: String) -> mode_t? {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
    }

    /// Reads everything from a FIFO on a background thread (a writer blocks until a reader opens it).
    func drain(_ fifo: String) -> () -> Data {
        var data = Data()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            data = FileHandle(forReadingAtPath: fifo)?.readDataToEndOfFile() ?? Data()
            done.signal()
        }
        return { done.wait(); return data }
    }

    /// A pid that belonged to a process that has exited.
    func deadPid() throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        return p.processIdentifier
    }

    // MARK: - Destination

    func testDestinationClassifiesWhatIsThere() throws {
        let d = try tmp()
        let fm = FileManager.default
        XCTAssertEqual(try OutputDestination.of(d + "/new.bin"), .file(path: d + "/new.bin"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: d + "/f"))
        let real = OutputDestination.resolved(d + "/f")
        XCTAssertEqual(try OutputDestination.of(d + "/f"), .file(path: real))
        try fm.createSymbolicLink(atPath: d + "/link", withDestinationPath: d + "/f")
        XCTAssertEqual(try OutputDestination.of(d + "/link"), .file(path: real), "a symlink is followed to its regular file")
        XCTAssertThrowsError(try OutputDestination.of(d)) { XCTAssertEqual($0 as? OutputError, .isDirectory(path: d)) }
        XCTAssertEqual(mkfifo(d + "/fifo", 0o600), 0)
        XCTAssertEqual(try OutputDestination.of(d + "/fifo"), .stream(path: d + "/fifo"))
        XCTAssertThrowsError(try OutputDestination.of(d + "/fifo", allowStreams: false)) {
            XCTAssertEqual($0 as? OutputError, .notRegularFile(path: d + "/fifo", kind: "FIFO"))
        }
        XCTAssertEqual(try OutputDestination.of("/dev/null"), .stream(path: "/dev/null"))
        try fm.createSymbolicLink(atPath: d + "/devlink", withDestinationPath: "/dev/null")
        XCTAssertEqual(try OutputDestination.of(d + "/devlink"), .stream(path: d + "/devlink"))
        try fm.createSymbolicLink(atPath: d + "/dangling", withDestinationPath: d + "/missing")
        XCTAssertThrowsError(try OutputDestination.of(d + "/dangling")) { XCTAssertEqual($0 as? OutputError, .danglingSymlink(path: d + "/dangling")) }
        XCTAssertThrowsError(try OutputDestination.of("")) { XCTAssertEqual($0 as? OutputError, .emptyPath) }
    }

    // MARK: - Atomic writes

    func testWriteThroughSymlinkReplacesTheTargetAndKeepsTheLink() throws {
        let d = try tmp()
        try FileManager.default.createDirectory(atPath: d + "/real", withIntermediateDirectories: false)
        try Data("old".utf8).write(to: URL(fileURLWithPath: d + "/real/out.txt"))
        try FileManager.default.createSymbolicLink(atPath: d + "/out.txt", withDestinationPath: d + "/real/out.txt")
        try AtomicFile.write("new", to: d + "/out.txt")
        XCTAssertEqual(mode(d + "/out.txt"), S_IFLNK, "the link is still a link")
        XCTAssertEqual(try String(contentsOfFile: d + "/real/out.txt", encoding: .utf8), "new")
        XCTAssertEqual(chmod(d + "/real/out.txt", 0o600), 0)
        try AtomicFile.write("newer", to: d + "/real/out.txt")
        var st = stat()
        XCTAssertEqual(stat(d + "/real/out.txt", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "a replaced file keeps its permissions")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d + "/real"), ["out.txt"], "no temporary left")
    }

    func testDevicesAndFIFOsAreWrittenThroughNeverReplaced() throws {
        let d = try tmp()
        // /dev/null: discarding output must work and leave the node alone.
        var before = stat(), after = stat()
        XCTAssertEqual(stat("/dev/null", &before), 0)
        try AtomicFile.write(Data(count: 1 << 20), to: "/dev/null")
        XCTAssertEqual(stat("/dev/null", &after), 0)
        XCTAssertEqual(after.st_mode & S_IFMT, S_IFCHR)
        XCTAssertEqual(after.st_rdev, before.st_rdev)
        XCTAssertEqual(after.st_ino, before.st_ino, "the same node, not a regular file renamed over it")
        // A private copy of /dev/null (needs root, as in the report's reproduction).
        if mknod(d + "/null", S_IFCHR | 0o666, before.st_rdev) == 0 {
            try Safetensors.writeStreaming([StreamedTensor(name: "w", floats: [1, 2, 3], shape: [3])], metadata: nil, checksum: true, to: d + "/null")
            XCTAssertEqual(mode(d + "/null"), S_IFCHR)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d), ["null"], "no temporary beside the device")
        }
        // /dev/full: the write error is reported, the node stays.
        XCTAssertThrowsError(try AtomicFile.write("x", to: "/dev/full")) {
            guard case .cannotWrite("/dev/full", _)? = $0 as? ModelError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(mode("/dev/full"), S_IFCHR)
        // A FIFO: a reader gets exactly the file's bytes.
        XCTAssertEqual(mkfifo(d + "/pipe", 0o600), 0)
        let read = drain(d + "/pipe")
        let records = [SafetensorsRecord(name: "a", tensor: Tensor(shape: [2, 2], data: [1, -2, 3.5, 4]))]
        try Safetensors.write(records, metadata: ["k": "v"], to: d + "/pipe")
        XCTAssertEqual([UInt8](read()), Safetensors.serialize(records, metadata: ["k": "v"]))
        XCTAssertEqual(mode(d + "/pipe"), S_IFIFO, "still a FIFO")
        XCTAssertThrowsError(try AtomicFile.write(to: d + "/pipe", allowStreams: false) { _ in XCTFail("body must not run") })
    }

    func testRefusalsAndFailuresLeaveOldFilesAndNoTemporaries() throws {
        let d = try tmp()
        try FileManager.default.createDirectory(atPath: d + "/sub", withIntermediateDirectories: false)
        XCTAssertThrowsError(try AtomicFile.write("x", to: d + "/sub")) { XCTAssertEqual($0 as? OutputError, .isDirectory(path: d + "/sub")) }
        try AtomicFile.write("old", to: d + "/f")
        struct Boom: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: d + "/f") { sink in try sink.write(Data("partial".utf8)); throw Boom() }) {
            XCTAssertTrue($0 is Boom)
        }
        XCTAssertEqual(try String(contentsOfFile: d + "/f", encoding: .utf8), "old")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d).sorted(), ["f", "sub"])
        // A tensor that emits fewer bytes than declared is an error, not a corrupt file.
        let short = StreamedTensor(name: "t", dtype: .F32, shape: [4], byteCount: 16) { try $0.write([UInt8](repeating: 0, count: 12)) }
        XCTAssertThrowsError(try Safetensors.writeStreaming([short], metadata: nil, to: d + "/f"))
        XCTAssertEqual(try String(contentsOfFile: d + "/f", encoding: .utf8), "old")
    }

    // MARK: - Leftovers of killed runs

    func testLeftoverNamesAreParsedStrictly() {
        XCTAssertEqual(StaleTemporaries.parse(".r.safetensors.tmp-123-4567"), .init(target: "r.safetensors", kind: "tmp", pid: 123))
        XCTAssertEqual(StaleTemporaries.parse(".pruned.old-9-0"), .init(target: "pruned", kind: "old", pid: 9))
        XCTAssertEqual(StaleTemporaries.parse(".a.tmp-1-2.tmp-3-4"), .init(target: "a.tmp-1-2", kind: "tmp", pid: 3))
        for name in ["r.tmp-1-2", ".tmp-1-2", "..tmp-1-2", ".r.tmp-1", ".r.tmp-x-2", ".r.tmp-1-2x", ".r.tmp--1-2", ".r.tmp-0-2",
                     ".r.tmp-1-2-3", ".r.tmp-+1-2", ".r.tmp-99999999999-2", ".hidden", ".r.new-1-2"] {
            XCTAssertNil(StaleTemporaries.parse(name), name)
        }
    }

    func testSweepRemovesOnlyLeftoversOfProcessesThatAreGone() throws {
        let d = try tmp(), dead = try deadPid(), me = getpid()
        let fm = FileManager.default
        func file(_ n: String) throws { try Data("x".utf8).write(to: URL(fileURLWithPath: d + "/" + n)) }
        func dir(_ n: String) throws {
            try fm.createDirectory(atPath: d + "/" + n, withIntermediateDirectories: false)
            try Data(count: 1000).write(to: URL(fileURLWithPath: d + "/" + n + "/model.safetensors"))
        }
        let stale = [".r.safetensors.tmp-\(dead)-17", ".heat.html.tmp-\(dead)-1"]
        for n in stale { try file(n) }
        try dir(".pruned.tmp-\(dead)-42")                      // a killed prune's temp folder
        try dir("pruned"); try dir(".pruned.old-\(dead)-5")     // swap finished, old copy not yet deleted
        try dir(".gone.old-\(dead)-6")                          // swap interrupted: the only copy of "gone"
        let kept = [".x.tmp-1-5", ".y.tmp-\(me)-5", "notes.tmp-\(dead)-1", ".z.tmp-\(dead)-abc", ".hidden", "user.txt"]
        for n in kept { try file(n) }
        let removed = StaleTemporaries.sweep(directory: d)
        XCTAssertEqual(removed, (stale + [".pruned.tmp-\(dead)-42", ".pruned.old-\(dead)-5"]).sorted())
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: d).sorted(), (kept + ["pruned", ".gone.old-\(dead)-6"]).sorted())
        // Writing into the directory sweeps it too.
        try file(".again.tmp-\(dead)-3")
        try AtomicFile.write("y", to: d + "/out.txt")
        XCTAssertFalse(fm.fileExists(atPath: d + "/.again.tmp-\(dead)-3"))
        XCTAssertTrue(fm.fileExists(atPath: d + "/.x.tmp-1-5"), "pid 1 is alive: kept")
    }

    // MARK: - No output over an input

    func testGuardComparesFilesNotNames() throws {
        let d = try tmp()
        let fm = FileManager.default
        try fm.createDirectory(atPath: d + "/m", withIntermediateDirectories: false)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: d + "/m/config.json"))
        let inputs = [d + "/m", d + "/m/config.json", d + "/m/tokenizer.json"]   // tokenizer.json: looked for, absent
        try fm.createSymbolicLink(atPath: d + "/link.json", withDestinationPath: d + "/m/config.json")
        XCTAssertEqual(link(d + "/m/config.json", d + "/hard.json"), 0)
        for out in [d + "/m/config.json", d + "/m/../m/./config.json", d + "/link.json", d + "/hard.json"] {
            XCTAssertThrowsError(try OutputGuard.check(output: out, inputs: inputs), out) {
                XCTAssertEqual($0 as? OutputError, .isInput(output: out, input: d + "/m/config.json"))
            }
        }
        XCTAssertThrowsError(try OutputGuard.check(output: d + "/m/./tokenizer.json", inputs: inputs)) {
            XCTAssertEqual($0 as? OutputError, .shadowsInput(output: d + "/m/./tokenizer.json", input: d + "/m/tokenizer.json"))
        }
        XCTAssertThrowsError(try OutputGuard.check(output: d + "/m", inputs: inputs))
        try OutputGuard.check(output: d + "/m/heat.html", inputs: inputs)
        try OutputGuard.check(output: d + "/other.json", inputs: inputs)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: d + "/copy.json"))
        try OutputGuard.check(output: d + "/copy.json", inputs: inputs)   // same contents, another file
        // Directory outputs: replacing a directory that holds an input is refused; a name prefix is not containment.
        XCTAssertThrowsError(try OutputGuard.checkDirectory(output: d, inputs: inputs)) {
            XCTAssertEqual($0 as? OutputError, .containsInput(output: d, input: d + "/m"))
        }
        XCTAssertThrowsError(try OutputGuard.checkDirectory(output: d + "/m/", inputs: [d + "/m/config.json"]))
        try OutputGuard.checkDirectory(output: d + "/m2", inputs: inputs)
    }

    // MARK: - Data checksum

    /// sha256 by coreutils, an independent implementation (nil when it is not installed).
    func sha256sum(_ data: Data) throws -> String? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum") else { return nil }
        let f = try tmp() + "/blob"
        try data.write(to: URL(fileURLWithPath: f))
        let p = Process(), pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [f]
        p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init)
    }

    func testSHA256OfAnySplitMatchesCoreutils() throws {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<(1 << 17) + 13).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let hardware = SHA256.useHardware
        defer { SHA256.useHardware = hardware }
        SHA256.useHardware = false
        let whole = SHA256.hex(bytes)
        for cut in [[1, 63, 64, 65], [127, 4096, 100_000], [1 << 16]] {
            var h = SHA256(), lo = 0
            for c in cut { h.update(bytes[lo..<lo + c]); lo += c }
            h.update(bytes[lo...])
            XCTAssertEqual(h.finalizeHex(), whole, "\(cut)")
        }
        if let ref = try sha256sum(Data(bytes)) { XCTAssertEqual(whole, ref) }
        // The SHA-extension path (when this CPU has it) against the Swift rounds, over every length 0…200.
        SHA256.useHardware = hardware
        XCTAssertEqual(SHA256.hex(bytes), whole, "hardware path, 128 KiB")
        if hardware {
            for n in 0...200 {
                SHA256.useHardware = false
                let soft = SHA256.hex(bytes[..<n])
                SHA256.useHardware = true
                XCTAssertEqual(SHA256.hex(bytes[..<n]), soft, "length \(n)")
            }
        }
    }

    func testChecksummedFileVerifiesAndEveryFlippedBitIsRefused() throws {
        let d = try tmp()
        let a: [Float] = (0..<300).map { Float($0) * 0.25 - 7 }, b: [Double] = [1.0 / 3, -2e-300, .pi]
        let tensors = [StreamedTensor(name: "a", floats: a, shape: [30, 10]), StreamedTensor(name: "b", doubles: b, shape: [3])]
        try Safetensors.writeStreaming(tensors, metadata: ["format": "x"], checksum: true, to: d + "/c.safetensors")
        try Safetensors.writeStreaming(tensors, metadata: ["format": "x"], to: d + "/plain.safetensors")
        let c = try SafetensorsFile(path: d + "/c.safetensors"), plain = try SafetensorsFile(path: d + "/plain.safetensors")
        XCTAssertEqual(try c.verifyDataChecksum(), .verified)
        var order: [String] = []
        XCTAssertEqual(try c.readVerifyingChecksum { order.append($0) }, .verified)
        XCTAssertEqual(order, ["b", "a"], "file order (F64 first)")
        XCTAssertEqual(try plain.verifyDataChecksum(), .absent, "files without the key still load, unverified")
        for n in ["a", "b"] { XCTAssertEqual([UInt8](try c.rawBytes(n)), [UInt8](try plain.rawBytes(n)), "tensor data unchanged") }
        var meta = c.metadata
        let recorded = try XCTUnwrap(meta.removeValue(forKey: Safetensors.dataChecksumKey))
        XCTAssertEqual(meta, plain.metadata, "the only metadata change is the checksum key")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: d + "/c.safetensors"))
        let data = bytes.suffix(from: c.dataStart)
        XCTAssertEqual(data.count, 300 * 4 + 3 * 8)
        if let ref = try sha256sum(Data(data)) { XCTAssertEqual(recorded, ref, "sha256 of every byte after the header") }
        // Large tensors are hashed on a worker thread while written: same sum as the one-thread Swift rounds.
        let big = (0..<(3 << 20) / 2).map { Float($0 % 977) - 400.5 }   // 6 MB: several 1 MB+ writes
        try Safetensors.writeStreaming([StreamedTensor(name: "big", floats: big, shape: [big.count]), tensors[1]], metadata: nil,
                                       checksum: true, to: d + "/big.safetensors")
        let bf = try SafetensorsFile(path: d + "/big.safetensors")
        let hardware = SHA256.useHardware
        SHA256.useHardware = false
        let soft = SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: d + "/big.safetensors")).suffix(from: bf.dataStart))
        SHA256.useHardware = hardware
        XCTAssertEqual(bf.metadata[Safetensors.dataChecksumKey], soft)
        XCTAssertEqual(try bf.verifyDataChecksum(), .verified)
        // Any single flipped bit in the data is caught.
        for (offset, bit) in [(0, 0), (17, 3), (data.count / 2, 7), (data.count - 1, 5)] {
            var bad = bytes
            bad[c.dataStart + offset] ^= UInt8(1 << bit)
            try bad.write(to: URL(fileURLWithPath: d + "/bad.safetensors"))
            XCTAssertThrowsError(try SafetensorsFile(path: d + "/bad.safetensors").readVerifyingChecksum { _ in }, "byte \(offset)")
            XCTAssertThrowsError(try SafetensorsFile(path: d + "/bad.safetensors").verifyDataChecksum(), "byte \(offset)") {
                guard case .mismatch(let f, let r, _)? = $0 as? SafetensorsChecksumError else { return XCTFail("\($0)") }
                XCTAssertEqual(f, d + "/bad.safetensors"); XCTAssertEqual(r, recorded)
                XCTAssertTrue($0.localizedDescription.contains("corrupt"), $0.localizedDescription)
            }
        }
    }
}
