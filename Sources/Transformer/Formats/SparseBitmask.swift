import Foundation
import Tokenize

// MARK: - compressed-tensors `sparse-bitmask`
//
// Each compressed weight `P.weight` [R, C] is stored as four tensors (the
// `.weight` suffix stripped): `P.shape` (I64 [2]), `P.compressed` (kept values,
// row-major, original dtype), `P.bitmask` (U8 [R, ceil(C/8)], numpy
// packbits bitorder="little", 1 = kept) and `P.row_offsets` (I64 [R], index into
// `compressed` where each row starts). Layout per neuralmagic/compressed-tensors
// `sparse_bitmask.py`.

public enum SparseBitmask {
    /// Encodes a dense [rows, cols] matrix; zeros are the pruned entries.
    public static func encode(name weightName: String, weight: [Float], rows: Int, cols: Int) -> [SafetensorsRecord] {
        let prefix = weightName.hasSuffix(".weight") ? String(weightName.dropLast(7)) : weightName
        let bpr = (cols + 7) / 8
        var mask = [UInt8](repeating: 0, count: rows * bpr)
        var values: [Float] = []
        var offsets = [Int](repeating: 0, count: rows)
        weight.withUnsafeBufferPointer { w in
            for r in 0..<rows {
                offsets[r] = values.count
                for c in 0..<cols where w[r * cols + c] != 0 {
                    mask[r * bpr + c / 8] |= UInt8(1) << UInt8(c % 8)
                    values.append(w[r * cols + c])
                }
            }
        }
        return [
            SafetensorsRecord(name: prefix + ".shape", i64: [rows, cols], shape: [2]),
            SafetensorsRecord(name: prefix + ".compressed", tensor: Tensor(shape: [values.count], data: values)),
            SafetensorsRecord(name: prefix + ".bitmask", u8: mask, shape: [rows, bpr]),
            SafetensorsRecord(name: prefix + ".row_offsets", i64: offsets, shape: [rows]),
        ]
    }

    /// Decodes every bitmask-compressed weight of a file into dense `P.weight` tensors.
    public static func decodeAll(_ st: SafetensorsFile, into tensors: inout [String: Tensor], file: String) throws {
        try checkComponents(st, file: file)
        for name in st.names where name.hasSuffix(".compressed") {
            let prefix = String(name.dropLast(".compressed".count))
            let shape = try st.integers(prefix + ".shape")
            guard shape.count == 2 else {
                throw SafetensorsError.invalidHeader(file: file, reason: "'\(QuotedName.safe(prefix)).shape' must hold 2 values")
            }
            let (rows, cols) = (shape[0], shape[1])
            // Dims are file data: negative values and products that wrap (under -Ounchecked they
            // do not trap) would pass the equality checks below and write out of bounds.
            guard rows >= 0, cols >= 0, let bpr = CheckedSize.ceilDiv(cols, 8),
                  let maskBytes = CheckedSize.product(rows, bpr), let count = CheckedSize.product(rows, cols),
                  count <= 1 << 40 else {
                throw SafetensorsError.invalidHeader(file: file, reason: "'\(QuotedName.safe(prefix)).shape' \(shape) is not a valid [rows, cols] size")
            }
            let mask = try st.bytes(prefix + ".bitmask")
            let offsets = try st.integers(prefix + ".row_offsets")
            guard mask.count == maskBytes, offsets.count == rows else {
                throw SafetensorsError.invalidHeader(file: file, reason: "'\(QuotedName.safe(prefix))' bitmask (\(mask.count) bytes) / row_offsets (\(offsets.count)) do not match shape \(shape)")
            }
            let values = try st.tensor(name).data
            // Each row keeps at most `cols` values, so the dense size bounds the compressed one.
            guard values.count <= count else {
                throw SafetensorsError.invalidHeader(file: file, reason: "'\(QuotedName.safe(prefix)).compressed' has \(values.count) values, more than \(shape) holds")
            }
            var dense = [Float](repeating: 0, count: count)   // [rows, cols]
            var k = 0
            for r in 0..<rows {
                guard offsets[r] == k else {
                    throw SafetensorsError.invalidHeader(file: file, reason: "'\(QuotedName.safe(prefix)).row_offsets'[\(r)] = \(offsets[r]), expected \(k)")
                }
                for c in 0..<cols where mask[r * bpr + c / 8] & (UInt8(1) << UInt8(c % 8)) != 0 {
                    guard k < values.count else {
                        throw SafetensorsError.invalidHeader(file: file, reason: "'\(QuotedName.safe(prefix)).compressed' has too few values")
                    }
                    dense[r * cols + c] = values[k]
                    k += 1
                }
            }
            guard k == values.count else {
                throw SafetensorsError.invalidHeader(file: file, reason: "'\(QuotedName.safe(prefix)).compressed' has \(values.count) values, bitmask keeps \(k)")
            }
            tensors[prefix + ".weight"] = Tensor(shape: [rows, cols], data: dense)
        }
    }

    /// The parts of one compressed weight besides `.compressed`.
    static let sideComponents = [".shape", ".bitmask", ".row_offsets"]

    /// A weight whose bitmask or row offsets are present but whose `.compressed` is not (renamed,
    /// dropped) would otherwise surface as "tensor 'P.weight' is missing": name the component that is
    /// missing, and any unexpected tensor sharing the prefix (e.g. the renamed one).
    static func checkComponents(_ st: SafetensorsFile, file: String) throws {
        let names = Set(st.names)
        let prefixes = Set(names.compactMap { n -> String? in
            for sfx in [".bitmask", ".row_offsets"] where n.hasSuffix(sfx) { return String(n.dropLast(sfx.count)) }
            return nil
        })
        for prefix in prefixes.sorted() where !names.contains(prefix + ".compressed") {
            let present = sideComponents.filter { names.contains(prefix + $0) }.map { prefix + $0 }
            let known = Set(([".compressed", ".weight", ".bias"] + sideComponents).map { prefix + $0 })
            let unexpected = names.filter { $0.hasPrefix(prefix + ".") && !known.contains($0) }.sorted()
            var reason = "sparse-bitmask weight '\(QuotedName.safe(prefix)).weight': component '\(QuotedName.safe(prefix)).compressed' is missing"
                + " (present: \(present.map { "'\(QuotedName.safe($0))'" }.joined(separator: ", ")))"
            if !unexpected.isEmpty {
                reason += "; unexpected: " + unexpected.prefix(3).map { "'\(QuotedName.safe($0))'" }.joined(separator: ", ")
                    + (unexpected.count > 3 ? " and \(unexpected.count - 3) more" : "")
            }
            throw SafetensorsError.invalidHeader(file: file, reason: reason)
        }
    }
}
