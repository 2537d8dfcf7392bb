import Foundation
import Transformer

// MARK: - Pruning masks
//
// A mask is keyed by the same HF names as the checkpoint: one U8 tensor per
// parameter it touches (1 = kept, 0 = pruned). It is the hand-off point
// between ranking and the model: circuits and correction can build, combine,
// save (`mask.safetensors`) and re-apply masks without re-ranking.

/// Keep-mask of one parameter tensor (weight [out, in] or bias [out]).
public struct TensorMask: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public var keep: [UInt8]

    public init(name: String, shape: [Int], keep: [UInt8]) {
        precondition(shape.reduce(1, *) == keep.count, "mask '\(name)': shape \(shape) vs \(keep.count) entries")
        self.name = name; self.shape = shape; self.keep = keep
    }

    public init(allKept name: String, shape: [Int]) {
        self.init(name: name, shape: shape, keep: [UInt8](repeating: 1, count: shape.reduce(1, *)))
    }

    public var count: Int { keep.count }
    public var pruned: Int {
        keep.withUnsafeBufferPointer { p in
            var n = 0
            for b in p where b == 0 { n += 1 }
            return n
        }
    }
}

/// One structured unit removed by a `neurons` / `heads` pruning.
public struct PrunedUnit: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable { case neuron, head }
    public var kind: Kind
    public var layer: Int
    public var index: Int
    public var score: Float
    public init(kind: Kind, layer: Int, index: Int, score: Float) {
        self.kind = kind; self.layer = layer; self.index = index; self.score = score
    }
}

public struct PruneMask: Sendable {
    /// Masks in model order (layer, then q k v o gate up down, weight before bias).
    public var tensors: [TensorMask]
    /// Units removed by structured schemes, in (layer, index) order; empty otherwise.
    public var units: [PrunedUnit]

    public init(tensors: [TensorMask], units: [PrunedUnit] = []) {
        self.tensors = tensors; self.units = units
    }

    public subscript(name: String) -> TensorMask? { tensors.first { $0.name == name } }
    public var pruned: Int { tensors.reduce(0) { $0 + $1.pruned } }
    public var count: Int { tensors.reduce(0) { $0 + $1.count } }

    // MARK: - Applying

    /// Sets every masked-out parameter of `model` to exactly +0. Validates all names and shapes
    /// first, so a bad mask changes nothing.
    public func apply(to model: Model) throws {
        var targets: [(TensorMask, Linear, isBias: Bool)] = []
        let byName = Dictionary(model.linears.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let byBias = Dictionary(model.linears.filter { $0.bias != nil }.map { ($0.biasName, $0) }, uniquingKeysWith: { a, _ in a })
        for m in tensors {
            if let l = byName[m.name] {
                guard m.shape == [l.outDim, l.inDim] else {
                    throw PruneError.maskMismatch(tensor: m.name, reason: "shape \(m.shape), the model's weight is \([l.outDim, l.inDim])")
                }
                targets.append((m, l, false))
            } else if let l = byBias[m.name] {
                guard m.shape == [l.outDim] else {
                    throw PruneError.maskMismatch(tensor: m.name, reason: "shape \(m.shape), the model's bias is [\(l.outDim)]")
                }
                targets.append((m, l, true))
            } else {
                throw PruneError.maskMismatch(tensor: m.name, reason: "not a decoder linear weight or bias of this model")
            }
        }
        for (m, l, isBias) in targets {
            m.keep.withUnsafeBufferPointer { k in
                if isBias {
                    l.bias?.withUnsafeMutableBufferPointer { b in
                        for i in 0..<k.count where k[i] == 0 { b[i] = 0 }
                    }
                } else {
                    // Branch-free: AND the bits with 0 or all-ones, so pruned entries become exactly +0.
                    l.weight.withUnsafeMutableBufferPointer { w in
                        for i in 0..<k.count {
                            let m: UInt32 = k[i] == 0 ? 0 : .max
                            w[i] = Float(bitPattern: w[i].bitPattern & m)
                        }
                    }
                }
            }
        }
    }

    // MARK: - mask.safetensors

    /// Writes `mask.safetensors`: one U8 tensor per masked parameter, same HF name and shape.
    public func records() -> [SafetensorsRecord] {
        tensors.map { SafetensorsRecord(name: $0.name, u8: $0.keep, shape: $0.shape) }
    }

    public func write(to path: String, metadata: [String: String] = [:]) throws {
        try Safetensors.write(records(), metadata: ["format": "pt"].merging(metadata) { _, b in b }, to: path)
    }

    /// Reads a mask file (U8/BOOL tensors; any nonzero byte = kept).
    public static func load(path: String) throws -> PruneMask {
        let st = try SafetensorsFile(path: path)
        var out: [TensorMask] = []
        for name in st.names {
            guard let e = st.entries[name] else { continue }
            guard e.dtype == .U8 || e.dtype == .BOOL else {
                throw PruneError.maskMismatch(tensor: name, reason: "dtype \(e.dtype.rawValue) in \(path), expected U8 or BOOL")
            }
            let bytes = try st.bytes(name).map { $0 == 0 ? UInt8(0) : 1 }
            out.append(TensorMask(name: name, shape: e.shape, keep: bytes))
        }
        return PruneMask(tensors: out)
    }

    /// Element-wise AND of two masks (a weight is kept only if both keep it).
    public func intersecting(_ other: PruneMask) throws -> PruneMask {
        var merged = tensors
        for o in other.tensors {
            if let i = merged.firstIndex(where: { $0.name == o.name }) {
                guard merged[i].shape == o.shape else {
                    throw PruneError.maskMismatch(tensor: o.name, reason: "shapes \(merged[i].shape) and \(o.shape) differ")
                }
                for j in 0..<o.keep.count where o.keep[j] == 0 { merged[i].keep[j] = 0 }
            } else {
                merged.append(o)
            }
        }
        return PruneMask(tensors: merged, units: units + other.units)
    }
}
