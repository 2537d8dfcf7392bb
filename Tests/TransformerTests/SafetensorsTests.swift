import Foundation
import XCTest
@testable import Transformer

// safetensors reader/writer against the format rules and byte-exact vectors of
// huggingface/safetensors `tensor.rs` (anchors.md §C.2).

/// Little-endian bytes of an F32 array.
private func f32Bytes(_ v: [Float]) -> [UInt8] {
    v.flatMap { f -> [UInt8] in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }
}

/// A hand-built safetensors file: `[u64 LE length][header][data]`. `length`
/// overrides the declared header length (to corrupt it).
private func rawFile(_ header: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out = withUnsafeBytes(of: (length ?? UInt64(h.count)).littleEndian) { Array($0) }
    out += h
    out += data
    return out
}

/// `{"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]}, ...}` for hand-built headers.
private func entry(_ name: String, _ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
    "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(begin),\(end)]}"
}

final class SafetensorsTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafetensorsTests-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    @discardableResult
    private func writeBytes(_ bytes: [UInt8], _ name: String = "t.safetensors") throws -> String {
        let p = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Runs `body`, requires it to throw a `SafetensorsError`, and checks that
    /// its description names the file (and `tensor`, when given).
    private func safetensorsError(_ body: () throws -> Void, file: String, tensor: String? = nil,
                                  line: UInt = #line) -> SafetensorsError? {
        do {
            try body()
            XCTFail("expected a SafetensorsError, nothing was thrown", line: line)
            return nil
        } catch let e as SafetensorsError {
            let d = e.errorDescription ?? ""
            XCTAssertTrue(d.contains(file), "'\(d)' does not name the file \(file)", line: line)
            if let tensor { XCTAssertTrue(d.contains("'\(tensor)'"), "'\(d)' does not name tensor '\(tensor)'", line: line) }
            return e
        } catch {
            XCTFail("expected a SafetensorsError, got \(type(of: error)): \(error)", line: line)
            return nil
        }
    }

    private func open(_ bytes: [UInt8], tensor: String? = nil, line: UInt = #line) throws -> SafetensorsError? {
        let p = try writeBytes(bytes)
        return safetensorsError({ _ = try SafetensorsFile(path: p) }, file: p, tensor: tensor, line: line)
    }

    // MARK: - Byte-exact vectors (safetensors tensor.rs tests)

    func testEmptyFileVector() throws {
        let expected: [UInt8] = [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8)
        XCTAssertEqual(expected.count, 16)
        XCTAssertEqual(Safetensors.serialize([]), expected)

        let p = path("empty.safetensors")
        try Safetensors.write([], to: p)
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: p))), expected)
        let st = try SafetensorsFile(path: p)
        XCTAssertTrue(st.entries.isEmpty)
        XCTAssertTrue(st.metadata.isEmpty)
        XCTAssertEqual(st.dataStart, 16)
    }

    func testSingleF32TensorVector() throws {
        let header = #"{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}"#
        XCTAssertEqual(header.utf8.count, 64)
        let data: [UInt8] = [
            0x00, 0x00, 0x00, 0x00,  0x00, 0x00, 0x80, 0x3F,  0x00, 0x00, 0x00, 0x40,   // 0, 1, 2
            0x00, 0x00, 0x40, 0x40,  0x00, 0x00, 0x80, 0x40,  0x00, 0x00, 0xA0, 0x40,   // 3, 4, 5
        ]
        let expected: [UInt8] = [64, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8) + data
        XCTAssertEqual(expected.count, 8 + 64 + 24)

        let t = Tensor(shape: [1, 2, 3], data: [0, 1, 2, 3, 4, 5])
        let got = Safetensors.serialize([SafetensorsRecord(name: "attn.0", tensor: t)])
        XCTAssertEqual(got, expected)
        XCTAssertEqual(String(decoding: got[8..<72], as: UTF8.self), header)

        let p = try writeBytes(got)
        let st = try SafetensorsFile(path: p)
        XCTAssertEqual(st.names, ["attn.0"])
        XCTAssertEqual(try st.tensor("attn.0"), t)
    }

    func testPaddedHeaderVector() throws {
        let json = #"{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}"#
        XCTAssertEqual(json.utf8.count, 65)
        let header = json + String(repeating: " ", count: 7)
        let expected: [UInt8] = [72, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8) + f32Bytes([0, 1, 2, 3, 4, 5])

        let t = Tensor(shape: [1, 1, 2, 3], data: [0, 1, 2, 3, 4, 5])
        let got = Safetensors.serialize([SafetensorsRecord(name: "attn0", tensor: t)])
        XCTAssertEqual(got, expected)
        XCTAssertEqual(Array(got[(8 + 65)..<(8 + 72)]), [UInt8](repeating: 0x20, count: 7))

        let st = try SafetensorsFile(path: try writeBytes(got))
        XCTAssertEqual(st.dataStart, 80)
        XCTAssertEqual(try st.tensor("attn0"), t)
    }

    func testMetadataOnlyVector() throws {
        let json = #"{"__metadata__":{"framework":"pt"}}"#
        XCTAssertEqual(json.utf8.count, 35)
        let expected: [UInt8] = [40, 0, 0, 0, 0, 0, 0, 0] + Array(json.utf8) + [UInt8](repeating: 0x20, count: 5)
        let got = Safetensors.serialize([], metadata: ["framework": "pt"])
        XCTAssertEqual(got, expected)

        let st = try SafetensorsFile(path: try writeBytes(got))
        XCTAssertEqual(st.metadata, ["framework": "pt"])
        XCTAssertTrue(st.entries.isEmpty)
    }

    // MARK: - Round trip

    func testRankZeroAndZeroSizeTensors() throws {
        let records = [
            SafetensorsRecord(name: "scalar", tensor: Tensor(shape: [], data: [2.5])),
            SafetensorsRecord(name: "empty", tensor: Tensor(shape: [0, 3], data: [])),
            SafetensorsRecord(name: "z.tail", u8: [], shape: [0]),
        ]
        let p = path("edge.safetensors")
        try Safetensors.write(records, to: p)
        let st = try SafetensorsFile(path: p)
        XCTAssertEqual(try st.tensor("scalar"), Tensor(shape: [], data: [2.5]))
        XCTAssertEqual(try st.tensor("empty"), Tensor(shape: [0, 3], data: []))
        XCTAssertEqual(try st.bytes("z.tail"), [])
        XCTAssertEqual(st.entries["empty"]?.byteCount, 0)
        XCTAssertEqual(st.entries["scalar"]?.byteCount, 4)
    }

    // MARK: - Corruption → typed errors

    func testHeaderTooLarge() throws {
        let bytes = rawFile("{}", length: 100_000_001)
        guard case .headerTooLarge(let f, let n)? = try open(bytes) else { return XCTFail("wrong case") }
        XCTAssertEqual(f, path("t.safetensors"))
        XCTAssertEqual(n, 100_000_001)
        // Exactly the limit is not "too large" (it is then longer than the file).
        guard case .invalidHeaderLength(_, let m, _)? = try open(rawFile("{}", length: 100_000_000)) else {
            return XCTFail("wrong case at the limit")
        }
        XCTAssertEqual(m, 100_000_000)
        guard case .headerTooLarge(_, let big)? = try open(rawFile("{}", length: UInt64.max)) else {
            return XCTFail("wrong case for u64 max")
        }
        XCTAssertEqual(big, UInt64.max)
    }

    func testHeaderLengthBeyondFileSize() throws {
        // Header declares 11 bytes but only 10 follow.
        let bytes = rawFile(#"{"a":"b"}  "#, length: 11).dropLast()
        guard case .invalidHeaderLength(let f, let n, let size)? = try open(Array(bytes)) else { return XCTFail("wrong case") }
        XCTAssertEqual(f, path("t.safetensors"))
        XCTAssertEqual(n, 11)
        XCTAssertEqual(size, 18)
    }

    func testFileShorterThanEightBytes() throws {
        guard case .invalidHeaderLength(_, _, let size)? = try open([2, 0, 0, 0, 0]) else { return XCTFail("wrong case") }
        XCTAssertEqual(size, 5)
        // A 0-byte file fails in the mapper, still naming the file.
        let p = try writeBytes([], "zero.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(path: p)) { e in
            XCTAssertEqual(e as? ModelError, .unreadable(path: p, reason: "file is empty"))
            XCTAssertTrue((e as? LocalizedError)?.errorDescription?.contains(p) ?? false)
        }
    }

    func testHeaderNotJSON() throws {
        guard case .invalidHeader(_, let reason)? = try open(rawFile("{not json")) else { return XCTFail("wrong case") }
        XCTAssertTrue(reason.contains("JSON"), reason)
        guard case .invalidHeader(_, let r2)? = try open(rawFile("[1,2,3]  ")) else { return XCTFail("array header") }
        XCTAssertTrue(r2.contains("not a JSON object"), r2)
        guard case .invalidHeader? = try open(rawFile(#"{"__metadata__":{"k":1}}"#)) else { return XCTFail("non-string metadata") }
    }

    func testHeaderNotUTF8() throws {
        var bytes = rawFile(#"{"a":"xx"}"#)
        bytes[8 + 6] = 0xFF    // inside the string value
        bytes[8 + 7] = 0xFE
        guard case .invalidHeader(_, let reason)? = try open(bytes) else { return XCTFail("wrong case") }
        XCTAssertTrue(reason.contains("UTF-8"), reason)
    }

    func testEntryMissingDataOffsets() throws {
        let header = #"{"w":{"dtype":"F32","shape":[2]}}"#
        guard case .invalidHeader(_, let reason)? = try open(rawFile(header, data: f32Bytes([1, 2])), tensor: "w") else {
            return XCTFail("wrong case")
        }
        XCTAssertTrue(reason.contains("data_offsets"), reason)
        // A single offset is no better.
        let one = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#
        guard case .invalidHeader? = try open(rawFile(one, data: f32Bytes([1, 2])), tensor: "w") else { return XCTFail("one offset") }
    }

    func testUnknownDType() throws {
        let header = "{" + entry("w", "F7", [2], 0, 8) + "}"
        let e = try open(rawFile(header, data: f32Bytes([1, 2])), tensor: "w")
        XCTAssertEqual(e, .unknownDType(file: path("t.safetensors"), tensor: "w", dtype: "F7"))
        XCTAssertTrue(e?.errorDescription?.contains("F7") ?? false)
    }

    func testOverlappingOffsets() throws {
        let header = "{" + entry("a", "F32", [2], 0, 8) + "," + entry("b", "F32", [2], 4, 12) + "}"
        guard case .invalidOffset(let f, let t, let reason)? = try open(rawFile(header, data: f32Bytes([1, 2, 3])), tensor: "b") else {
            return XCTFail("wrong case")
        }
        XCTAssertEqual(f, path("t.safetensors"))
        XCTAssertEqual(t, "b")
        XCTAssertTrue(reason.contains("overlap"), reason)
    }

    func testGapBetweenTensors() throws {
        let header = "{" + entry("a", "F32", [2], 0, 8) + "," + entry("b", "F32", [2], 12, 20) + "}"
        guard case .invalidOffset(_, let t, let reason)? = try open(rawFile(header, data: f32Bytes([1, 2, 0, 3, 4])), tensor: "b") else {
            return XCTFail("wrong case")
        }
        XCTAssertEqual(t, "b")
        XCTAssertTrue(reason.contains("gap"), reason)
        // The buffer must start at 0.
        let late = "{" + entry("a", "F32", [2], 4, 12) + "}"
        guard case .invalidOffset(_, let t2, let r2)? = try open(rawFile(late, data: f32Bytes([0, 1, 2])), tensor: "a") else {
            return XCTFail("wrong case for a leading gap")
        }
        XCTAssertEqual(t2, "a")
        XCTAssertTrue(r2.contains("gap"), r2)
    }

    func testEndBeforeBegin() throws {
        let header = "{" + entry("w", "F32", [2], 8, 0) + "}"
        guard case .invalidOffset(_, let t, let reason)? = try open(rawFile(header, data: f32Bytes([1, 2])), tensor: "w") else {
            return XCTFail("wrong case")
        }
        XCTAssertEqual(t, "w")
        XCTAssertTrue(reason.contains("end 0 < begin 8"), reason)
        // Negative offsets are rejected too.
        let neg = "{" + entry("w", "F32", [2], -8, 0) + "}"
        guard case .invalidOffset? = try open(rawFile(neg, data: f32Bytes([1, 2])), tensor: "w") else { return XCTFail("negative") }
    }

    func testSizeMismatch() throws {
        let header = "{" + entry("w", "F32", [3], 0, 8) + "}"
        let e = try open(rawFile(header, data: f32Bytes([1, 2])), tensor: "w")
        XCTAssertEqual(e, .sizeMismatch(file: path("t.safetensors"), tensor: "w", expectedBytes: 12, foundBytes: 8))
        // Right byte count, wrong dtype size: 8 bytes of F16 [2] needs 4.
        let h2 = "{" + entry("h", "F16", [2], 0, 8) + "}"
        XCTAssertEqual(try open(rawFile(h2, data: f32Bytes([1, 2])), tensor: "h"),
                       .sizeMismatch(file: path("t.safetensors"), tensor: "h", expectedBytes: 4, foundBytes: 8))
    }

    func testTrailingBytesAndShortBuffer() throws {
        let header = "{" + entry("w", "F32", [2], 0, 8) + "}"
        let n = header.utf8.count
        // Three bytes after the last tensor.
        XCTAssertEqual(try open(rawFile(header, data: f32Bytes([1, 2]) + [9, 9, 9])),
                       .incompleteBuffer(file: path("t.safetensors"), dataEnd: 8 + n + 8, fileSize: 8 + n + 11))
        // Buffer shorter than declared.
        XCTAssertEqual(try open(rawFile(header, data: f32Bytes([1]))),
                       .incompleteBuffer(file: path("t.safetensors"), dataEnd: 8 + n + 8, fileSize: 8 + n + 4))
        // Tensor-less file with trailing data.
        XCTAssertEqual(try open(rawFile("{}", data: [0])),
                       .incompleteBuffer(file: path("t.safetensors"), dataEnd: 10, fileSize: 11))
    }

    func testMissingTensor() throws {
        let p = path("m.safetensors")
        try Safetensors.write([SafetensorsRecord(name: "w", tensor: Tensor(shape: [1], data: [1]))], to: p)
        let st = try SafetensorsFile(path: p)
        let expected = SafetensorsError.missingTensor(file: p, tensor: "nope")
        XCTAssertEqual(safetensorsError({ _ = try st.tensor("nope") }, file: p, tensor: "nope"), expected)
        XCTAssertEqual(safetensorsError({ _ = try st.bytes("nope") }, file: p, tensor: "nope"), expected)
        XCTAssertEqual(safetensorsError({ _ = try st.integers("nope") }, file: p, tensor: "nope"), expected)
        XCTAssertEqual(safetensorsError({ _ = try st.rawBytes("nope") }, file: p, tensor: "nope"), expected)
    }

    func testU8ViaTensorIsNotFloat() throws {
        let p = path("u8.safetensors")
        try Safetensors.write([SafetensorsRecord(name: "mask", u8: [1, 0, 1], shape: [3])], to: p)
        let st = try SafetensorsFile(path: p)
        XCTAssertEqual(safetensorsError({ _ = try st.tensor("mask") }, file: p, tensor: "mask"),
                       .notFloat(file: p, tensor: "mask", dtype: "U8"))
        XCTAssertEqual(try st.bytes("mask"), [1, 0, 1])   // still readable as bytes
    }

    func testMissingFile() throws {
        let p = path("does-not-exist.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(path: p)) { e in
            XCTAssertEqual(e as? ModelError, .fileNotFound(path: p))
            XCTAssertTrue((e as? LocalizedError)?.errorDescription?.contains(p) ?? false)
        }
    }
}
