import Foundation
import Transformer

// MARK: - Ablating what lies outside a circuit
//
// Every ablation here is exact and lives in the weights, so the forward pass
// needs no hook:
// - a weight outside the circuit is set to 0 (= pruning);
// - neuron j of layer l outputs post_j into down_proj/fc2, so zeroing column j
//   of that matrix is exactly post_j = 0 for every token; replacing post_j by a
//   constant μ_j (mean ablation) is exactly that plus W[:, j]·μ_j added to the
//   layer's down bias (a bias is created when the model has none);
// - head h's output is z[:, h·hd ..< (h+1)·hd] entering o_proj/out_proj, so its
//   columns play the same role (o_proj's bias, if any, is not a head's output
//   and stays).
// Patching (the corrupted prompt's activation at the same position) depends on
// the position, so it cannot live in the weights: it is an input edit on
// o_proj/down_proj (`Linear.inputEdit`, see `PatchSource`).
// `restore()` puts back the original arrays (kept once, copy-on-write) and
// removes the edits, so a curve of many masks never reloads the model.

public enum Granularity: String, Sendable, CaseIterable {
    case weights, neurons, heads
}

public enum AblationKind: String, Sendable, CaseIterable {
    case zero, mean, patch
}

/// What a circuit keeps.
public enum CircuitMask: Equatable, Sendable {
    /// HF weight name → keep flags [out·in] (1 = kept); linears not listed are kept whole.
    case weights([String: [UInt8]])
    /// [layer][dFF]
    case neurons([[Bool]])
    /// [layer][nHeads]
    case heads([[Bool]])

    public var granularity: Granularity {
        switch self { case .weights: return .weights; case .neurons: return .neurons; case .heads: return .heads }
    }

    /// Everything kept (the full model) or nothing kept (∅) at a granularity.
    public static func uniform(_ g: Granularity, kept: Bool, model: Model) -> CircuitMask {
        let c = model.config
        switch g {
        case .weights:
            return .weights(Dictionary(uniqueKeysWithValues: model.linears.map {
                ($0.name, [UInt8](repeating: kept ? 1 : 0, count: $0.weight.count)) }))
        case .neurons: return .neurons([[Bool]](repeating: [Bool](repeating: kept, count: c.dFF), count: c.nLayers))
        case .heads: return .heads([[Bool]](repeating: [Bool](repeating: kept, count: c.nHeads), count: c.nLayers))
        }
    }
}

public enum AblationError: LocalizedError, Equatable {
    case unsupported(Granularity, AblationKind)
    case needsMeans
    case needsCorrupted
    case patchMismatch(captured: [Int], now: [Int])
    case shape(String)

    public var errorDescription: String? {
        switch self {
        case .unsupported(let g, let a): return "--ablation \(a.rawValue) is not defined at --granularity \(g.rawValue) (weights are only zero-ablated)"
        case .needsMeans: return "mean ablation needs mean activations over the reference set"
        case .needsCorrupted: return "patch ablation needs a corrupted prompt for every prompt"
        case .patchMismatch(let c, let n):
            return "patch ablation: the corrupted activations were captured for \(c.count) prompts, this run has \(n.count) (or other lengths)"
        case .shape(let s): return "circuit mask does not fit the model: \(s)"
        }
    }
}

public final class Ablator {
    public let model: Model
    private var saved: [String: (weight: [Float], bias: [Float]?)] = [:]
    private var edited = Set<String>()

    public init(model: Model) { self.model = model }

    /// Applies `mask` with `ablation` (undoing any earlier application first).
    public func apply(_ mask: CircuitMask, ablation: AblationKind, means: MeanActivations? = nil, patch: PatchSource? = nil) throws {
        try apply([mask], ablation: ablation, means: means, patch: patch)
    }

    /// Several masks at once (e.g. heads and neurons), all with `ablation`.
    public func apply(_ masks: [CircuitMask], ablation: AblationKind, means: MeanActivations? = nil, patch: PatchSource? = nil) throws {
        restore()
        if ablation == .mean, means == nil { throw AblationError.needsMeans }
        if ablation == .patch, patch == nil { throw AblationError.needsCorrupted }
        do {
            for m in masks { try applyOne(m, ablation, means, patch) }
        } catch {
            restore()
            throw error
        }
    }

    private func applyOne(_ mask: CircuitMask, _ ablation: AblationKind, _ means: MeanActivations?, _ patch: PatchSource?) throws {
        let c = model.config
        switch mask {
        case .weights(let keep):
            guard ablation == .zero else { throw AblationError.unsupported(.weights, ablation) }
            for (name, k) in keep {
                guard let lin = model.linear(named: name) else { throw AblationError.shape("no linear '\(name)'") }
                guard k.count == lin.weight.count else { throw AblationError.shape("\(name): \(k.count) flags for \(lin.weight.count) weights") }
                guard k.contains(0) else { continue }
                save(lin)
                lin.weight.withUnsafeMutableBufferPointer { w in for i in 0..<w.count where k[i] == 0 { w[i] = 0 } }
            }
        case .neurons(let keep):
            guard keep.count == c.nLayers, keep.allSatisfy({ $0.count == c.dFF }) else { throw AblationError.shape("neurons need [\(c.nLayers)][\(c.dFF)]") }
            for l in 0..<c.nLayers {
                let cols = keep[l].indices.filter { !keep[l][$0] }
                if ablation == .patch {
                    if !cols.isEmpty { edit(model.blocks[l].down, cols, patch!.post[l]) }
                } else {
                    removeColumns(model.blocks[l].down, cols, means: ablation == .mean ? means!.post[l] : nil)
                }
            }
        case .heads(let keep):
            guard keep.count == c.nLayers, keep.allSatisfy({ $0.count == c.nHeads }) else { throw AblationError.shape("heads need [\(c.nLayers)][\(c.nHeads)]") }
            let hd = c.headDim
            for l in 0..<c.nLayers {
                let cols = keep[l].indices.filter { !keep[l][$0] }.flatMap { ($0 * hd)..<(($0 + 1) * hd) }
                if ablation == .patch {
                    if !cols.isEmpty { edit(model.blocks[l].o, cols, patch!.z[l]) }
                } else {
                    removeColumns(model.blocks[l].o, cols, means: ablation == .mean ? means!.z[l] : nil)
                }
            }
        }
    }

    /// Puts every touched weight and bias back and removes the patch edits.
    public func restore() {
        for lin in model.linears {
            if edited.contains(lin.name) { lin.inputEdit = nil }
            guard let s = saved[lin.name] else { continue }
            lin.weight = s.weight
            lin.bias = s.bias
        }
        saved = [:]
        edited = []
    }

    private func edit(_ lin: Linear, _ cols: [Int], _ source: [Float]) {
        precondition(!edited.contains(lin.name), "\(lin.name) is patched twice")
        edited.insert(lin.name)
        PatchSource.install(on: lin, columns: cols, source: source)
    }

    private func save(_ lin: Linear) {
        if saved[lin.name] == nil { saved[lin.name] = (lin.weight, lin.bias) }
    }

    /// Zeroes input columns `cols` of `lin` [out, in]; with `means` [in], adds W[:, j]·μ_j to the bias first.
    private func removeColumns(_ lin: Linear, _ cols: [Int], means: [Float]?) {
        guard !cols.isEmpty else { return }
        save(lin)
        let n = lin.inDim
        if let means {
            var delta = [Double](repeating: 0, count: lin.outDim)
            lin.weight.withUnsafeBufferPointer { w in
                for r in 0..<lin.outDim { for j in cols { delta[r] += Double(w[r * n + j]) * Double(means[j]) } }
            }
            var b = lin.bias ?? [Float](repeating: 0, count: lin.outDim)
            for r in 0..<lin.outDim { b[r] = Float(Double(b[r]) + delta[r]) }
            lin.bias = b
        }
        lin.weight.withUnsafeMutableBufferPointer { w in
            for r in 0..<lin.outDim { for j in cols { w[r * n + j] = 0 } }
        }
    }
}
