import Foundation

// MARK: - Per-block buffers
//
// One set of named buffers per block call. The plain forward reuses one set for
// every layer; the LRP pass keeps (or recomputes) them per layer, so each block's
// activations stay addressable under TransformerLens-style names.

public final class BlockBuffers {
    /// Which optional copies a block keeps. The plain forward needs none of
    /// them: skipping the residual copies and adding o_proj/down straight into
    /// the stream (GEMM with β = 1) saves four [N, d] passes per block.
    public struct Hooks: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// resid, mid: the block's residual inputs (norm backward when the normaliser is differentiated).
        public static let residuals = Hooks(rawValue: 1)
        /// attnOut, mlpOut: the sub-layer outputs (LRP-ε on o_proj/down).
        public static let sublayerOutputs = Hooks(rawValue: 2)
        /// post: the MLP activation. Without it the block writes post to `sharedPost`
        /// and the LRP backward recomputes it from pre (and up), one element-wise pass.
        public static let mlpPost = Hooks(rawValue: 4)
        public static let all: Hooks = [.residuals, .sublayerOutputs, .mlpPost]
    }

    public let rows: Int
    public let hooks: Hooks
    public var resid: [Float]      // [N, d]     hook_resid_pre (copy of block input)
    public var normed1: [Float]    // [N, d]     ln1 output (attention input)
    public var inv1: [Float]       // [N]        ln1 1/rms or 1/σ (held constant by LRP)
    public var q: [Float]          // [N, qDim]  hook_q (post-RoPE for Llama)
    public var k: [Float]          // [N, kvDim] hook_k (post-RoPE for Llama)
    public var v: [Float]          // [N, kvDim] hook_v
    public var z: [Float]          // [N, qDim]  hook_z (attention output before o_proj)
    public var attnOut: [Float]    // [N, d]     hook_attn_out
    public var mid: [Float]        // [N, d]     hook_resid_mid
    public var normed2: [Float]    // [N, d]     ln2 output (MLP input)
    public var inv2: [Float]       // [N]
    public var pre: [Float]        // [N, dFF]   gate_proj out (Llama) / fc1 out (OPT): hook_pre
    public var up: [Float]         // [N, dFF]   up_proj out (Llama only): hook_pre_linear
    public var post: [Float]       // [N, dFF]   silu(gate)⊙up / relu(fc1): hook_post
    public var mlpOut: [Float]     // [N, d]     hook_mlp_out
    /// Where post goes when `hooks` lacks `.mlpPost` (shared by the kept blocks of one pass).
    let sharedPost: SharedBuffer?
    var scratch: [Float] = []

    public convenience init(config c: ModelConfig, rows n: Int) {
        self.init(config: c, rows: n, hooks: .all, sharedPost: nil)
    }

    init(config c: ModelConfig, rows n: Int, hooks: Hooks, sharedPost: SharedBuffer?) {
        precondition(hooks.contains(.mlpPost) || sharedPost != nil, "a block without post needs a shared buffer")
        rows = n
        self.hooks = hooks
        self.sharedPost = hooks.contains(.mlpPost) ? nil : sharedPost
        // Every buffer is written in full by the block forward before it is read.
        let nd = n * c.dModel
        normed1 = uninitialized(nd); normed2 = uninitialized(nd)
        resid = hooks.contains(.residuals) ? uninitialized(nd) : []
        mid = hooks.contains(.residuals) ? uninitialized(nd) : []
        attnOut = hooks.contains(.sublayerOutputs) ? uninitialized(nd) : []
        mlpOut = hooks.contains(.sublayerOutputs) ? uninitialized(nd) : []
        inv1 = uninitialized(n); inv2 = uninitialized(n)
        q = uninitialized(n * c.qDim); z = uninitialized(n * c.qDim)
        k = uninitialized(n * c.kvDim); v = uninitialized(n * c.kvDim)
        pre = uninitialized(n * c.dFF)
        post = hooks.contains(.mlpPost) ? uninitialized(n * c.dFF) : []
        up = c.family == .llama ? uninitialized(n * c.dFF) : []
    }

    /// The MLP activation buffer [N, dFF]: own, or the shared one.
    @inline(__always)
    func withPost<R>(_ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        if let sharedPost { return sharedPost.data.ptr(body) }
        return post.ptr(body)
    }

    /// Copies x into `into` when that hook is kept (an empty buffer means not kept).
    @inline(__always)
    func keep(_ x: [Float], _ into: inout [Float]) {
        guard !into.isEmpty else { return }
        x.cptr { xp in into.ptr { copyParallel($0, xp, x.count) } }
    }
}

/// A buffer several `BlockBuffers` write in turn.
final class SharedBuffer {
    var data: [Float]
    init(count: Int) { data = zeros(count) }
}

/// A run of consecutive rows belonging to one sequence, at positions pos0..<pos0+count.
public struct Segment {
    public var rowStart: Int
    public var count: Int
    public var pos0: Int
    public var cache: KVCache
    public init(rowStart: Int, count: Int, pos0: Int, cache: KVCache) {
        self.rowStart = rowStart; self.count = count; self.pos0 = pos0; self.cache = cache
    }
}

// MARK: - Forward

extension Model {
    /// Residual stream after embedding: [N, d] for the packed token rows.
    public func embedRows(_ tokens: [Int], segments: [Segment]) -> [Float] {
        let d = config.dModel
        var x = zeros(tokens.count * d)
        embed.withUnsafeBufferPointer { e in
            x.ptr { xp in
                for (r, t) in tokens.enumerated() {
                    (xp + r * d).update(from: e.baseAddress! + t * d, count: d)
                }
                if let positions {
                    positions.withUnsafeBufferPointer { pp in
                        for s in segments {
                            for i in 0..<s.count {
                                let row = (s.pos0 + i + ModelConfig.optPositionOffset) * d
                                addInPlace(xp + (s.rowStart + i) * d, pp.baseAddress! + row, d)
                            }
                        }
                    }
                }
            }
        }
        return x
    }

    /// Runs one block on the residual stream `x` [N, d] in place.
    public func runBlock(_ l: Int, _ x: inout [Float], segments: [Segment], buffers b: BlockBuffers) {
        switch config.family {
        case .llama: llamaBlock(blocks[l], &x, segments: segments, b)
        case .opt: optBlock(blocks[l], &x, segments: segments, b)
        }
    }

    /// Final norm of the residual stream: [N, d] → [N, d].
    public func finalNormRows(_ x: [Float], rows: Int, inv: UnsafeMutablePointer<Float>? = nil) -> [Float] {
        var y = zeros(x.count)
        x.cptr { xp in
            y.ptr { yp in
                switch config.family {
                case .llama: rmsNorm(xp, finalNorm.weight, yp, inv: inv, rows: rows, d: config.dModel, eps: config.normEps)
                case .opt: layerNorm(xp, finalNorm.weight, finalNorm.bias ?? zeros(config.dModel), yp, inv: inv,
                                     rows: rows, d: config.dModel, eps: config.normEps)
                }
            }
        }
        return y
    }

    /// The unembedding matrix [vocab, d] (lm_head, or the tied embedding).
    public var unembedding: [Float] { lmHead ?? embed }

    /// logits[rows, vocab] for `rows` final-normed hidden rows starting at `h`.
    public func logits(_ h: UnsafePointer<Float>, rows: Int) -> [Float] {
        var out = zeros(rows * config.vocabSize)
        if rows == 1, let wt = unembeddingT {   // decode layout: [dModel, vocab]
            out.ptr { BLAS.gemvTRows(n: config.dModel, k: config.vocabSize, wt.pointer, lda: config.vocabSize, h, $0) }
            return out
        }
        let w = lmHead ?? embed
        w.cptr { wp in out.ptr { BLAS.linear(h, wp, $0, m: rows, k: config.dModel, n: config.vocabSize) } }
        return out
    }

    /// Final-normed hidden states [N, d] for packed segments; fills each segment's cache.
    public func hidden(tokens: [Int], segments: [Segment]) -> [Float] {
        var x = embedRows(tokens, segments: segments)                 // [N, d]
        let buffers = BlockBuffers(config: config, rows: tokens.count, hooks: .mlpPost, sharedPost: nil)
        for l in 0..<config.nLayers { runBlock(l, &x, segments: segments, buffers: buffers) }
        for s in segments { s.cache.length = s.pos0 + s.count }
        return finalNormRows(x, rows: tokens.count)
    }

    /// Logits [T, vocab] of one sequence from scratch (no cache kept).
    public func forward(_ tokens: [Int]) -> [Float] {
        let cache = KVCache(config: config, capacity: tokens.count)
        let h = hidden(tokens: tokens, segments: [Segment(rowStart: 0, count: tokens.count, pos0: 0, cache: cache)])
        return h.cptr { logits($0, rows: tokens.count) }
    }

    /// Batched forward over sequences of different lengths (right-padding
    /// semantics: each sequence sees only its own tokens). Rows of all sequences
    /// are packed so the linear layers run as one matmul; attention runs per
    /// sequence. Returns logits [len_i, vocab] per sequence.
    public func forward(batch: [[Int]]) -> [[Float]] {
        var tokens: [Int] = [], segments: [Segment] = []
        for seq in batch {
            segments.append(Segment(rowStart: tokens.count, count: seq.count, pos0: 0,
                                    cache: KVCache(config: config, capacity: seq.count)))
            tokens += seq
        }
        let h = hidden(tokens: tokens, segments: segments)
        let all = h.cptr { logits($0, rows: tokens.count) }
        let v = config.vocabSize
        return segments.map { Array(all[($0.rowStart * v)..<(($0.rowStart + $0.count) * v)]) }
    }

    /// Appends `tokens` to the cache and returns logits of the last position [vocab].
    public func step(_ tokens: [Int], cache: KVCache) -> [Float] {
        let seg = Segment(rowStart: 0, count: tokens.count, pos0: cache.length, cache: cache)
        let h = hidden(tokens: tokens, segments: [seg])
        return h.cptr { logits($0 + (tokens.count - 1) * config.dModel, rows: 1) }
    }

    /// x += lin(input) [N, d]. With the sub-layer output hook kept, the output is
    /// written to `out` first (hook_attn_out / hook_mlp_out); otherwise the GEMM
    /// accumulates straight into the residual stream (β = 1).
    func addSublayer(_ lin: Linear, input: UnsafePointer<Float>, to x: inout [Float], keep out: inout [Float], rows n: Int) {
        if out.isEmpty {
            x.ptr { lin.forward(input, $0, rows: n, accumulate: true) }
        } else {
            out.ptr { lin.forward(input, $0, rows: n) }
            x.ptr { xp in out.cptr { addParallel(xp, $0, n * config.dModel) } }
        }
    }

    /// The MLP activation from b.pre (and b.up) into `p` [N, dFF]: silu(gate) ⊙ up
    /// for Llama, relu(fc1) for OPT. The LRP backward calls it again to
    /// recompute post instead of keeping it.
    func mlpActivation(_ b: BlockBuffers, into p: UnsafeMutablePointer<Float>) {
        let c = config, n = b.rows, f = c.dFF
        b.pre.cptr { g in
            switch c.family {
            case .llama:
                b.up.cptr { u in
                    parallelRows(n, work: n * f) { r in
                        let lo = r.lowerBound * f
                        swiGLU(g + lo, u + lo, p + lo, r.count * f)
                    }
                }
            case .opt:
                parallelRows(n, work: n * f) { r in
                    for i in (r.lowerBound * f)..<(r.upperBound * f) { p[i] = max(g[i], 0) }
                }
            }
        }
    }

    /// Shared attention sub-step: rope (Llama), write k/v to each segment's cache,
    /// causal attention into b.z.
    func attend(_ b: BlockBuffers, layer: Int, segments: [Segment], rope: RopeTable?) {
        let c = config
        for s in segments {
            b.q.ptr { q in
                b.k.ptr { k in
                    let qs = q + s.rowStart * c.qDim, ks = k + s.rowStart * c.kvDim
                    if let rope {
                        rope.apply(qs, rows: s.count, nHeads: c.nHeads, pos0: s.pos0)
                        rope.apply(ks, rows: s.count, nHeads: c.nKVHeads, pos0: s.pos0)
                    }
                    s.cache.k.ptr { (ck: UnsafeMutablePointer<Float>) in
                        copyParallel(ck + s.cache.offset(layer: layer, pos: s.pos0), ks, s.count * c.kvDim)
                    }
                }
            }
            b.v.cptr { v in
                s.cache.v.ptr { cv in
                    copyParallel(cv + s.cache.offset(layer: layer, pos: s.pos0), v + s.rowStart * c.kvDim, s.count * c.kvDim)
                }
            }
            b.q.cptr { q in
                b.z.ptr { z in
                    causalAttention(q: q + s.rowStart * c.qDim, cache: s.cache, layer: layer, out: z + s.rowStart * c.qDim,
                                    tq: s.count, pos0: s.pos0, config: c, scratch: &b.scratch)
                }
            }
        }
    }
}
