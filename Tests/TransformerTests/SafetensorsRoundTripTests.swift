import Foundation
import XCTest
@testable import Transformer

/// Every dtype, the metadata and the tensor order survive a write and a read (split out of SafetensorsTests).
final class SafetensorsRoundTripTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafetensorsRoundTripTests-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testRoundTripDTypesMetadataAndOrdering() throws {
        let f32 = Tensor(shape: [2, 3], data: [0, -1.5, 3.25, Float.pi, -1e-30, 1e30])
        let f32b = Tensor(shape: [2], data: [7, -8])
        let f16Values: [Float] = [0, 1, -2, 0.5, 65504, 0x1p-24, 0.1, 1.0 / 3.0]
        let bf16Values: [Float] = [1, -2.5, 0.1, Float.pi, 1.0 / 3.0, 0]
        let u8: [UInt8] = [0, 1, 127, 128, 255]
        let i64 = [-3, 0, 1 << 40, Int.max, Int.min]
        let i32Raw: [Int32] = [-7, 2_000_000_000]
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t ctl \u{01}", "unicode": "ü→日本"]

        let records = [
            SafetensorsRecord(name: "mask", u8: u8, shape: [5]),
            SafetensorsRecord(name: "c.bf16", tensor: Tensor(shape: [2, 3], data: bf16Values), dtype: .BF16),
            SafetensorsRecord(name: "b.f32", tensor: f32),
            SafetensorsRecord(name: "a.f16", tensor: Tensor(shape: [8], data: f16Values), dtype: .F16),
            SafetensorsRecord(name: "idx", i64: i64, shape: [5]),
            SafetensorsRecord(name: "a.f32", tensor: f32b),
            SafetensorsRecord(name: "i32", dtype: .I32, shape: [2],
                              bytes: i32Raw.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }),
        ]
        let p = path("rt.safetensors")
        try Safetensors.write(records, metadata: metadata, to: p)
        let st = try SafetensorsFile(path: p)

        XCTAssertEqual(st.metadata, metadata)
        XCTAssertEqual(st.names, ["a.f16", "a.f32", "b.f32", "c.bf16", "i32", "idx", "mask"])
        XCTAssertEqual(st.dataStart % 8, 0, "header must be padded to a multiple of 8")

        // Descending dtype size, then name: idx(8) | a.f32, b.f32, i32 (4) | a.f16, c.bf16 (2) | mask (1).
        let expectedOffsets: [(String, Int, Int)] = [
            ("idx", 0, 40), ("a.f32", 40, 48), ("b.f32", 48, 72), ("i32", 72, 80),
            ("a.f16", 80, 96), ("c.bf16", 96, 108), ("mask", 108, 113),
        ]
        for (name, b, e) in expectedOffsets {
            XCTAssertEqual(st.entries[name]?.begin, b, "begin of \(name)")
            XCTAssertEqual(st.entries[name]?.end, e, "end of \(name)")
        }
        let fileSize = try FileManager.default.attributesOfItem(atPath: p)[.size] as? Int
        XCTAssertEqual(fileSize, st.dataStart + 113)
        // The header JSON lists them in the same order.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: p)))
        let header = String(decoding: bytes[8..<st.dataStart], as: UTF8.self)
        let positions = expectedOffsets.map { header.range(of: "\"\($0.0)\":")!.lowerBound }
        XCTAssertEqual(positions, positions.sorted(), header)
        XCTAssertTrue(header.hasPrefix("{\"__metadata__\":{"), header)

        // Shapes and dtypes.
        XCTAssertEqual(st.entries["b.f32"]?.shape, [2, 3])
        XCTAssertEqual(st.entries["a.f16"]?.shape, [8])
        XCTAssertEqual(st.entries["c.bf16"]?.shape, [2, 3])
        XCTAssertEqual(st.entries["mask"]?.shape, [5])
        XCTAssertEqual(st.entries["idx"]?.shape, [5])
        XCTAssertEqual(st.entries["a.f16"]?.dtype, .F16)
        XCTAssertEqual(st.entries["c.bf16"]?.dtype, .BF16)
        XCTAssertEqual(st.entries["mask"]?.dtype, .U8)
        XCTAssertEqual(st.entries["idx"]?.dtype, .I64)

        // F32 exact (bit patterns, so -1e-30 and 1e30 are checked precisely).
        XCTAssertEqual(try st.tensor("b.f32").data.map(\.bitPattern), f32.data.map(\.bitPattern))
        XCTAssertEqual(try st.tensor("b.f32").shape, [2, 3])
        XCTAssertEqual(try st.tensor("a.f32"), f32b)

        // F16: exact IEEE half bits (round to nearest even), exact for representable values.
        let f16Bits: [UInt16] = [0x0000, 0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x2E66, 0x3555]
        XCTAssertEqual(Array(try st.rawBytes("a.f16")), f16Bits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        let f16 = try st.tensor("a.f16")
        XCTAssertEqual(f16.shape, [8])
        XCTAssertEqual(Array(f16.data[0..<6]), Array(f16Values[0..<6]))
        XCTAssertEqual(f16.data[6], 0.0999755859375)
        XCTAssertEqual(f16.data[7], 0.333251953125)
        for i in 6..<8 {
            XCTAssertLessThanOrEqual(abs(f16.data[i] - f16Values[i]), abs(f16Values[i]) * 0x1p-11)
        }

        // BF16: round to nearest even on the top 16 bits.
        let bf16Bits: [UInt16] = [0x3F80, 0xC020, 0x3DCD, 0x4049, 0x3EAB, 0x0000]
        XCTAssertEqual(Array(try st.rawBytes("c.bf16")), bf16Bits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] })
        let bf16 = try st.tensor("c.bf16")
        XCTAssertEqual(bf16.shape, [2, 3])
        XCTAssertEqual(bf16.data[0], 1)
        XCTAssertEqual(bf16.data[1], -2.5)
        XCTAssertEqual(bf16.data[5], 0)
        XCTAssertEqual(bf16.data[2], 0.10009765625)
        XCTAssertEqual(bf16.data[3], 3.140625)
        XCTAssertEqual(bf16.data[4], 0.333984375)
        for i in 0..<6 {
            XCTAssertLessThanOrEqual(abs(bf16.data[i] - bf16Values[i]), abs(bf16Values[i]) * 0x1p-8)
        }

        // Integers and bytes.
        XCTAssertEqual(try st.integers("idx"), i64)
        XCTAssertEqual(try st.integers("i32"), i32Raw.map(Int.init))
        XCTAssertEqual(try st.integers("mask"), u8.map(Int.init))
        XCTAssertEqual(try st.bytes("mask"), u8)
        XCTAssertEqual(Array(try st.rawBytes("idx")[0..<8]), [0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        // Reading a tensor releases its pages; a second read still sees the data.
        XCTAssertEqual(try st.tensor("a.f32"), f32b)
    }
}
