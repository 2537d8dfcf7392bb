import Foundation
import Transformer

// MARK: - Baselines with the relevance file's interface
//
// magnitude   S_ij = |W_ij|                      (no data; per-weight tensors only)
// wanda       S_ij = |W_ij| · ‖X_j‖₂             ‖X_j‖ over every calibration token of the
//             linear's input column j (Sun et al. 2023). The dense model's activations are
//             used for every layer: these are scores, and pruning decides what to do with
//             them. Σx² is accumulated in Double; the cost is the forward passes alone.
//             `prune --method wanda --sequential` (SequentialWanda) uses the same sums layer
//             by layer over the already-pruned layers below, as the reference code does.
// activation  mean |activation| per MLP neuron (hook_post, over all tokens) and per head
//             (mean |z| over all tokens and the head's dims), as IFR/ACDC-style activation
//             baselines. No per-weight tensors: an activation is a property of a unit, not
//             of a weight.
// The LRP and gradient methods live in AttributionScorer.swift.

/// Runs the model's forward over one sequence, calling `visit` with each block's buffers.
func forwardBlocks(_ model: Model, _ tokens: [Int], visit: (Int, BlockBuffers) -> Void) {
    let c = model.config, n = tokens.count
    let seg = [Segment(rowStart: 0, count: n, pos0: 0, cache: KVCache(config: c, capacity: n))]
    var x = model.embedRows(tokens, segments: seg)
    let bb = BlockBuffers(config: c, rows: n)
    for l in 0..<c.nLayers {
        model.runBlock(l, &x, segments: seg, buffers: bb)
        visit(l, bb)
    }
}

/// acc[j] += Σ_t a[t, j]² (or |a[t, j]| with `absolute`), in Double.
func accumulateColumns(_ a: Buffer, rows n: Int, cols m: Int, into acc: inout [Double], absolute: Bool = false) {
    acc.withUnsafeMutableBufferPointer { s in
        for t in 0..<n {
            let row = a.p + t * m
            if absolute { for j in 0..<m { s[j] += Double(abs(row[j])) } }
            else { for j in 0..<m { let v = Double(row[j]); s[j] += v * v } }
        }
    }
}

// MARK: - magnitude

final class MagnitudeScorer: AttributionScorer {
    let model: Model
    init(model: Model) { self.model = model }
    func process(_ s: AttributionSample) throws -> Double? { nil }
    func checkpointTensors() -> [OutTensor] { [] }
    func restore(_ sums: SumSource, samplesDone: Int) throws {}
    func finalTensors(samples: Int, tokens: Int) -> [OutTensor] {
        model.linears.map { l in
            let w = l.weight
            return OutTensor(name: l.name, shape: [l.outDim, l.inDim], payload: .computed(count: w.count) { r, dst in
                w.withUnsafeBufferPointer { wp in for i in r { dst[i - r.lowerBound] = abs(wp[i]) } }
            })
        }
    }
}

// MARK: - wanda

/// Input sites of a block's linears: which activation feeds which weight's columns.
enum WandaSite: String, CaseIterable {
    case attnIn = "attn_in"   // ln1 output → q, k, v
    case z                    // attention output before o_proj → o
    case mlpIn = "mlp_in"     // ln2 output → gate, up (OPT fc1)
    case post                 // MLP activation → down (OPT fc2)

    func width(_ c: ModelConfig) -> Int {
        switch self { case .attnIn, .mlpIn: return c.dModel; case .z: return c.qDim; case .post: return c.dFF }
    }
    func values(_ b: BlockBuffers) -> Buffer {
        switch self { case .attnIn: return b.normed1; case .z: return b.z; case .mlpIn: return b.normed2; case .post: return b.post }
    }
    static func of(_ lin: Linear, in blk: Block) -> WandaSite {
        if lin === blk.o { return .z }
        if lin === blk.down { return .post }
        if lin === blk.up || lin === blk.gate { return .mlpIn }
        return .attnIn
    }
}

final class WandaScorer: AttributionScorer {
    let model: Model
    /// Σ_t x_tj² per layer and site.
    var sumsq: [[WandaSite: [Double]]]

    init(model: Model) {
        self.model = model
        let c = model.config
        sumsq = (0..<c.nLayers).map { _ in
            Dictionary(uniqueKeysWithValues: WandaSite.allCases.map { ($0, [Double](repeating: 0, count: $0.width(c))) })
        }
    }

    static func key(_ l: Int, _ s: WandaSite) -> String { "wanda.layers.\(l).\(s.rawValue).sumsq" }

    func process(_ s: AttributionSample) throws -> Double? {
        forwardBlocks(model, s.tokens) { l, bb in accumulate(layer: l, bb) }
        return nil
    }

    /// Adds one block call's linear inputs to layer `l`'s sums.
    func accumulate(layer l: Int, _ bb: BlockBuffers) {
        for site in WandaSite.allCases {
            accumulateColumns(site.values(bb), rows: bb.rows, cols: site.width(model.config), into: &sumsq[l][site]!)
        }
    }

    /// |W_ij| · ‖X_j‖₂ of one linear from the sums so far.
    func norms(_ lin: Linear, in blk: Block) -> [Float] {
        sumsq[blk.index][WandaSite.of(lin, in: blk)]!.map { Float($0.squareRoot()) }
    }

    static func score(_ w: UnsafeBufferPointer<Float>, _ norm: UnsafeBufferPointer<Float>, cols: Int, _ r: Range<Int>,
                      into dst: UnsafeMutablePointer<Float>) {
        for i in r { dst[i - r.lowerBound] = abs(w[i]) * norm[i % cols] }
    }

    /// The scores of one linear as an array (sequential Wanda ranks them right away).
    func weightScores(_ lin: Linear, in blk: Block) -> [Float] {
        let norm = norms(lin, in: blk)
        return [Float](unsafeUninitializedCapacity: lin.weight.count) { dst, n in
            lin.weight.withUnsafeBufferPointer { wp in norm.withUnsafeBufferPointer { np in
                Self.score(wp, np, cols: lin.inDim, 0..<wp.count, into: dst.baseAddress!)
            } }
            n = lin.weight.count
        }
    }

    func checkpointTensors() -> [OutTensor] {
        sumsq.enumerated().flatMap { l, sites in
            WandaSite.allCases.map { OutTensor(name: Self.key(l, $0), shape: [sites[$0]!.count], payload: .f64(sites[$0]!)) }
        }
    }

    func restore(_ f: SumSource, samplesDone: Int) throws {
        for l in sumsq.indices { for site in WandaSite.allCases {
            sumsq[l][site] = try f.sums(Self.key(l, site), count: site.width(model.config))
        } }
    }

    func finalTensors(samples: Int, tokens: Int) -> [OutTensor] {
        model.blocks.flatMap { blk in
            blk.linears.map { lin in
                let norm = norms(lin, in: blk)
                let w = lin.weight, cols = lin.inDim
                return OutTensor(name: lin.name, shape: [lin.outDim, cols], payload: .computed(count: w.count) { r, dst in
                    w.withUnsafeBufferPointer { wp in norm.withUnsafeBufferPointer { np in Self.score(wp, np, cols: cols, r, into: dst) } }
                })
            }
        }
    }
}

// MARK: - activation

final class ActivationScorer: AttributionScorer {
    let model: Model
    var neuronSums: [[Double]]   // Σ_t |post_tj| per layer
    var headSums: [[Double]]     // Σ_t Σ_{i∈h} |z_ti| per layer

    init(model: Model) {
        self.model = model
        let c = model.config
        neuronSums = Array(repeating: [Double](repeating: 0, count: c.dFF), count: c.nLayers)
        headSums = Array(repeating: [Double](repeating: 0, count: c.nHeads), count: c.nLayers)
    }

    static func neuronKey(_ l: Int) -> String { "activation.layers.\(l).post.abs_sum" }
    static func headKey(_ l: Int) -> String { "activation.layers.\(l).z.abs_sum" }

    func process(_ s: AttributionSample) throws -> Double? {
        let c = model.config
        forwardBlocks(model, s.tokens) { l, bb in
            accumulateColumns(bb.post, rows: bb.rows, cols: c.dFF, into: &neuronSums[l], absolute: true)
            var perDim = [Double](repeating: 0, count: c.qDim)
            accumulateColumns(bb.z, rows: bb.rows, cols: c.qDim, into: &perDim, absolute: true)
            for h in 0..<c.nHeads { for i in 0..<c.headDim { headSums[l][h] += perDim[h * c.headDim + i] } }
        }
        return nil
    }

    func checkpointTensors() -> [OutTensor] {
        (0..<model.config.nLayers).flatMap { l in
            [OutTensor(name: Self.neuronKey(l), shape: [neuronSums[l].count], payload: .f64(neuronSums[l])),
             OutTensor(name: Self.headKey(l), shape: [headSums[l].count], payload: .f64(headSums[l]))]
        }
    }

    func restore(_ f: SumSource, samplesDone: Int) throws {
        let c = model.config
        for l in 0..<c.nLayers {
            neuronSums[l] = try f.sums(Self.neuronKey(l), count: c.dFF)
            headSums[l] = try f.sums(Self.headKey(l), count: c.nHeads)
        }
    }

    func finalTensors(samples: Int, tokens: Int) -> [OutTensor] {
        let c = model.config, t = Double(max(tokens, 1))
        return (0..<c.nLayers).flatMap { l in
            [OutTensor(name: ScoreNames.neurons(model, layer: l), shape: [c.dFF], payload: .f32(neuronSums[l].map { Float($0 / t) })),
             OutTensor(name: ScoreNames.heads(model, layer: l), shape: [c.nHeads],
                       payload: .f32(headSums[l].map { Float($0 / (t * Double(c.headDim))) }))]
        }
    }
}
