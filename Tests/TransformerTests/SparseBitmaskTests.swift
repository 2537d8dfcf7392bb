import Foundation
import XCTest
@testable import Transformer

// compressed-tensors `sparse-bitmask` layout (anchors.md §C.1): `P.shape`,
// `P.compressed`, `P.bitmask` (numpy packbits bitorder="little") and
// `P.row_offsets` (exclusive cumsum of kept values per row).

final class SparseBitmaskTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("SparseBitmaskTests-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    static let rows = 5, cols = 13
    /// Columns kept in each row: an all-zero row, a full row, even columns,
    /// a scattered row crossing the byte boundary, and the two ends.
    static let kept: [[Int]] = [[], Array(0..<13), [0, 2, 4, 6, 8, 10, 12], [1, 3, 7, 8, 12], [0, 12]]

    /// 5×13 matrix, 27 of 65 entries non-zero, distinct signed values.
    static var matrix: [Float] {
        var w = [Float](repeating: 0, count: rows * cols)
        for (r, cs) in kept.enumerated() {
            for c in cs { w[r * cols + c] = Float(r * cols + c + 1) * (c % 2 == 0 ? 0.375 : -1.25) }
        }
        return w
    }

    private func record(_ rs: [SafetensorsRecord], _ name: String) throws -> SafetensorsRecord {
        try XCTUnwrap(rs.first { $0.name == name }, "no record \(name) in \(rs.map(\.name))")
    }

    private func i64(_ r: SafetensorsRecord) -> [Int] {
        stride(from: 0, to: r.bytes.count, by: 8).map { i in
            Int(Int64(littleEndian: r.bytes[i..<(i + 8)].withUnsafeBytes { $0.loadUnaligned(as: Int64.self) }))
        }
    }

    func testEncodeLayout() throws {
        let w = Self.matrix
        XCTAssertEqual(w.filter { $0 != 0 }.count, 27)
        let rs = SparseBitmask.encode(name: "model.layers.0.mlp.down_proj.weight", weight: w, rows: 5, cols: 13)
        let p = "model.layers.0.mlp.down_proj"
        XCTAssertEqual(Set(rs.map(\.name)), [p + ".shape", p + ".compressed", p + ".bitmask", p + ".row_offsets"])

        let shape = try record(rs, p + ".shape")
        XCTAssertEqual(shape.dtype, .I64)
        XCTAssertEqual(shape.shape, [2])
        XCTAssertEqual(i64(shape), [5, 13])

        // numpy.packbits(mask, axis=-1, bitorder="little"), worked by hand:
        //   row 0 all zero                        → 00000000 00000000           = 0x00 0x00
        //   row 1 full (13 columns)               → 11111111 11111 (+3 pad)     = 0xFF 0x1F
        //   row 2 cols 0,2,4,6 | 8,10,12          → bits 0,2,4,6 | bits 0,2,4   = 0x55 0x15
        //   row 3 cols 1,3,7   | 8,12             → 0x02+0x08+0x80 | 0x01+0x10  = 0x8A 0x11
        //   row 4 col 0        | 12               → 0x01 | 0x10                 = 0x01 0x10
        let bitmask = try record(rs, p + ".bitmask")
        XCTAssertEqual(bitmask.dtype, .U8)
        XCTAssertEqual(bitmask.shape, [5, 2])
        XCTAssertEqual(bitmask.bytes, [0x00, 0x00, 0xFF, 0x1F, 0x55, 0x15, 0x8A, 0x11, 0x01, 0x10])

        let offsets = try record(rs, p + ".row_offsets")
        XCTAssertEqual(offsets.dtype, .I64)
        XCTAssertEqual(offsets.shape, [5])
        XCTAssertEqual(i64(offsets), [0, 0, 13, 20, 25])   // exclusive cumsum of [0, 13, 7, 5, 2]

        let compressed = try record(rs, p + ".compressed")
        XCTAssertEqual(compressed.dtype, .F32)
        XCTAssertEqual(compressed.shape, [27])
        let values = stride(from: 0, to: compressed.bytes.count, by: 4).map { i in
            Float(bitPattern: UInt32(littleEndian: compressed.bytes[i..<(i + 4)].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
        }
        XCTAssertEqual(values, w.filter { $0 != 0 }, "compressed values must be the non-zeros in row-major order")
    }

    func testPrefixWithoutWeightSuffix() {
        let rs = SparseBitmask.encode(name: "lm_head", weight: [0, 1, 2, 0], rows: 2, cols: 2)
        XCTAssertEqual(Set(rs.map(\.name)), ["lm_head.shape", "lm_head.compressed", "lm_head.bitmask", "lm_head.row_offsets"])
        XCTAssertEqual(rs.first { $0.name == "lm_head.bitmask" }?.bytes, [0b10, 0b01])
    }

    func testRoundTripThroughFile() throws {
        let w = Self.matrix
        let dense = Tensor(shape: [3, 4], data: (0..<12).map { Float($0) - 5.5 })
        var records = SparseBitmask.encode(name: "a.b.weight", weight: w, rows: 5, cols: 13)
        records.append(SafetensorsRecord(name: "dense.weight", tensor: dense))
        let p = path("sparse.safetensors")
        try Safetensors.write(records, metadata: ["format": "pt"], to: p)

        let st = try SafetensorsFile(path: p)
        XCTAssertEqual(st.names, ["a.b.bitmask", "a.b.compressed", "a.b.row_offsets", "a.b.shape", "dense.weight"])
        XCTAssertEqual(try st.bytes("a.b.bitmask")[6..<8], [0x8A, 0x11])
        XCTAssertEqual(try st.integers("a.b.row_offsets"), [0, 0, 13, 20, 25])

        var tensors: [String: Tensor] = ["dense.weight": try st.tensor("dense.weight")]
        try SparseBitmask.decodeAll(st, into: &tensors, file: p)
        XCTAssertEqual(Set(tensors.keys), ["a.b.weight", "dense.weight"])
        let got = try XCTUnwrap(tensors["a.b.weight"])
        XCTAssertEqual(got.shape, [5, 13])
        XCTAssertEqual(got.data.map(\.bitPattern), w.map(\.bitPattern))
        XCTAssertEqual(tensors["dense.weight"], dense)
    }

    func testAllZeroMatrixRoundTrips() throws {
        let rs = SparseBitmask.encode(name: "z.weight", weight: [Float](repeating: 0, count: 6), rows: 2, cols: 3)
        XCTAssertEqual(rs.first { $0.name == "z.compressed" }?.shape, [0])
        let p = path("zero.safetensors")
        try Safetensors.write(rs, to: p)
        var tensors: [String: Tensor] = [:]
        try SparseBitmask.decodeAll(try SafetensorsFile(path: p), into: &tensors, file: p)
        XCTAssertEqual(tensors["z.weight"], Tensor(zeros: [2, 3]))
    }

    // MARK: - Corruption

    /// Encodes the test matrix with one record replaced, writes it and decodes.
    private func decodeCorrupted(_ replace: (inout [SafetensorsRecord]) -> Void) throws -> (String, Error?) {
        var rs = SparseBitmask.encode(name: "p.weight", weight: Self.matrix, rows: 5, cols: 13)
        replace(&rs)
        let p = path("bad-\(UUID().uuidString).safetensors")
        try Safetensors.write(rs, to: p)
        let st = try SafetensorsFile(path: p)
        var tensors: [String: Tensor] = [:]
        do {
            try SparseBitmask.decodeAll(st, into: &tensors, file: p)
            return (p, nil)
        } catch {
            XCTAssertNil(tensors["p.weight"], "no tensor may be produced on error")
            return (p, error)
        }
    }

    private func replaceOffsets(_ v: [Int], shape: [Int]? = nil) -> (inout [SafetensorsRecord]) -> Void {
        { rs in
            rs.removeAll { $0.name == "p.row_offsets" }
            rs.append(SafetensorsRecord(name: "p.row_offsets", i64: v, shape: shape ?? [v.count]))
        }
    }

    func testCorruptRowOffsets() throws {
        let (p, e) = try decodeCorrupted(replaceOffsets([0, 0, 13, 21, 25]))
        guard case .invalidHeader(let f, let reason)? = e as? SafetensorsError else {
            return XCTFail("expected SafetensorsError.invalidHeader, got \(String(describing: e))")
        }
        XCTAssertEqual(f, p)
        XCTAssertTrue(reason.contains("p.row_offsets"), reason)
        XCTAssertTrue(reason.contains("[3] = 21, expected 20"), reason)
        XCTAssertTrue((e as? LocalizedError)?.errorDescription?.contains(p) ?? false)
    }

    func testRowOffsetsOfWrongLength() throws {
        let (p, e) = try decodeCorrupted(replaceOffsets([0, 0, 13, 20]))
        guard case .invalidHeader(let f, let reason)? = e as? SafetensorsError else {
            return XCTFail("expected SafetensorsError.invalidHeader, got \(String(describing: e))")
        }
        XCTAssertEqual(f, p)
        XCTAssertTrue(reason.contains("row_offsets"), reason)
    }

    func testBitmaskAndValueCountDisagree() throws {
        // One extra kept bit in the last row (col 1) with no value left to take → too few values.
        let (_, e1) = try decodeCorrupted { rs in
            let i = rs.firstIndex { $0.name == "p.bitmask" }!
            rs[i].bytes[8] = 0x03
        }
        guard case .invalidHeader(_, let r1)? = e1 as? SafetensorsError else { return XCTFail("got \(String(describing: e1))") }
        XCTAssertTrue(r1.contains("'p.compressed' has too few values"), r1)
        // An extra bit in an earlier row shifts the next row's start → caught by row_offsets.
        let (_, e3) = try decodeCorrupted { rs in
            let i = rs.firstIndex { $0.name == "p.bitmask" }!
            rs[i].bytes[0] = 0x01
        }
        guard case .invalidHeader(_, let r3)? = e3 as? SafetensorsError else { return XCTFail("got \(String(describing: e3))") }
        XCTAssertTrue(r3.contains("'p.row_offsets'[1] = 0, expected 1"), r3)

        // One kept bit cleared in the last row → a value left over.
        let (_, e2) = try decodeCorrupted { rs in
            let i = rs.firstIndex { $0.name == "p.bitmask" }!
            rs[i].bytes[9] = 0x00
        }
        guard case .invalidHeader(_, let r2)? = e2 as? SafetensorsError else { return XCTFail("got \(String(describing: e2))") }
        XCTAssertTrue(r2.contains("has 27 values, bitmask keeps 26"), r2)
    }

    func testMissingBitmaskIsMissingTensor() throws {
        let (p, e) = try decodeCorrupted { rs in rs.removeAll { $0.name == "p.bitmask" } }
        XCTAssertEqual(e as? SafetensorsError, .missingTensor(file: p, tensor: "p.bitmask"))
    }

    /// Fuzz case 39 (issue 12): a renamed `.compressed` was reported as "tensor 'p.weight' is missing".
    func testRenamedCompressedNamesTheMissingComponent() throws {
        let (p, e) = try decodeCorrupted { rs in
            let i = rs.firstIndex { $0.name == "p.compressed" }!
            rs[i].name = "p.compresseX"
        }
        guard case .invalidHeader(let f, let reason)? = e as? SafetensorsError else { return XCTFail("got \(String(describing: e))") }
        XCTAssertEqual(f, p)
        XCTAssertEqual(reason, "sparse-bitmask weight 'p.weight': component 'p.compressed' is missing "
                       + "(present: 'p.shape', 'p.bitmask', 'p.row_offsets'); unexpected: 'p.compresseX'")
        // Dropped (not renamed): nothing unexpected to list.
        let (_, e2) = try decodeCorrupted { rs in rs.removeAll { $0.name == "p.compressed" || $0.name == "p.shape" } }
        guard case .invalidHeader(_, let r2)? = e2 as? SafetensorsError else { return XCTFail("got \(String(describing: e2))") }
        XCTAssertEqual(r2, "sparse-bitmask weight 'p.weight': component 'p.compressed' is missing (present: 'p.bitmask', 'p.row_offsets')")
    }
}
