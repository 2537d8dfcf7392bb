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
    // Each buffer holds one stable pointer for the block's lifetime (`Buffer.p`);
    // an empty one is a hook that is not kept.
    public let resid: Buffer       // [N, d]     hook_resid_pre (copy of block input)
    public let normed1: Buffer     // [N, d]     ln1 output (attention input)
    public let inv1: Buffer        // [N]        ln1 1/rms or 1/σ (held constant by LRP)
    public let q: Buffer           // [N, qDim]  hook_q (post-RoPE for RoPE families)
    public let k: Buffer           // [N, kvDim] hook_k (post-RoPE for RoPE families)
    public let v: Buffer           // [N, kvDim] hook_v
    public let z: Buffer           // [N, qDim]  hook_z (attention output before o_proj)
    public let attnOut: Buffer     // [N, d]     hook_attn_out
    public let mid: Buffer         // [N, d]     hook_resid_mid
    public let normed2: Buffer     // [N, d]     ln2 output (MLP input)
    public let inv2: Buffer        // [N]
    public let pre: Buffer         // [N, dFF]   gate_proj out (Llama) / fc1 out (OPT): hook_pre
    public let up: Buffer          // [N, dFF]   up_proj out (gated MLPs only): hook_pre_linear
    public let post: Buffer        // [N, dFF]   silu(gate)⊙up / relu(fc1): hook_post
    public let mlpOut: Buffer      // [N, d]     hook_mlp_out
    /// hook_pattern at each segment's last row only: when set, attention writes the softmax probabilities of
    /// every head's final query row, [segments, nHeads, lastRowPatternStride] (segment i's keys 0..<pos0 + count,
    /// the rest untouched) — the numbers the forward multiplies V by, not a recomputation.
    public var lastRowPattern: UnsafeMutablePointer<Float>? = nil
    public var lastRowPatternStride = 0
    /// Where post goes when `hooks` lacks `.mlpPost` (shared by the kept blocks of one pass).
    let sharedPost: SharedBuffer?
    var scratch: [Float] = []
    /// The independent sequences packed in these rows, each from position 0 (the LRP backward's causal attention
    /// and RoPE work within each); one span of all rows unless a packed LRP pass sets them.
    var spans: [Range<Int>]

    public convenience init(config c: ModelConfig, rows n: Int) {
        self.init(config: c, rows: n, hooks: .all, sharedPost: nil)
    }

    init(config c: ModelConfig, rows n: Int, hooks: Hooks, sharedPost: SharedBuffer?) {
        precondition(hooks.contains(.mlpPost) || sharedPost != nil, "a block without post needs a shared buffer")
        rows = n
        spans = [0..<n]
        self.hooks = hooks
        self.sharedPost = hooks.contains(.mlpPost) ? nil : sharedPost
        // Every buffer is written in full by the block forward before it is read.
        func buffer(_ count: Int, if kept: Bool = true) -> Buffer { Buffer(uninitialized: kept ? count : 0) }
        let nd = n * c.dModel
        normed1 = buffer(nd); normed2 = buffer(nd)
        resid = buffer(nd, if: hooks.contains(.residuals)); mid = buffer(nd, if: hooks.contains(.residuals))
        attnOut = buffer(nd, if: hooks.contains(.sublayerOutputs)); mlpOut = buffer(nd, if: hooks.contains(.sublayerOutputs))
        inv1 = buffer(n); inv2 = buffer(n)
        q = buffer(n * c.qDim); z = buffer(n * c.qDim)
        k = buffer(n * c.kvDim); v = buffer(n * c.kvDim)
        pre = buffer(n * c.dFF)
        post = buffer(n * c.dFF, if: hooks.contains(.mlpPost))
        up = buffer(n * c.dFF, if: c.definition.gatedMLP)
    }

    /// The MLP activation buffer [N, dFF]: own, or the shared one.
    var postPointer: UnsafeMutablePointer<Float> { sharedPost?.p ?? post.p }
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
                    let offset = config.definition.positionOffset
                    positions.withUnsafeBufferPointer { pp in
                        for s in segments {
                            for i in 0..<s.count {
                                let row = (s.pos0 + i + offset) * d
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
        x.ptr { config.definition.block(self, blocks[l], $0, segments: segments, b) }
    }

    /// Final norm of the residual stream: [N, d] → [N, d].
    public func finalNormRows(_ x: [Float], rows: Int, inv: UnsafeMutablePointer<Float>? = nil) -> [Float] {
        var y = zeros(x.count)
        x.cptr { xp in y.ptr { finalNorm.forward(xp, $0, inv: inv, rows: rows, d: config.dModel, eps: config.normEps) } }
        return y
    }

    /// The unembedding matrix [vocab, d] (lm_head, or the tied embedding).
    public var unembedding: [Float] { lmHead ?? embed }

    /// logits[rows, vocab] for `rows` final-normed hidden rows starting at `h`.
    public func logits(_ h: UnsafePointer<Float>, rows: Int) -> [Float] {
        if rows == 1 {
            var out = zeros(config.vocabSize)
            if let wt = unembeddingT {   // decode layout: [dModel, vocab]
                out.ptr { BLAS.gemvTRows(n: config.dModel, k: config.vocabSize, wt.pointer, lda: config.vocabSize, h, $0) }
            } else {
                out.ptr { logits(h, rows: 1, into: $0) }
            }
            return out
        }
        // Not zero-filled first: the GEMM (β = 0) writes every element, and at T = 512 the
        // fill alone was a single-threaded 100 MB memset ahead of it. The pages are first
        // touched inside the GEMM, by both halves of the column split at once.
        var out = uninitialized(rows * config.vocabSize)
        out.ptr { logits(h, rows: rows, into: $0) }
        return out
    }

    /// logits[rows, vocab] into `out` (every element written; nothing read).
    public func logits(_ h: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        (lmHead ?? embed).cptr { BLAS.linear(h, $0, out, m: rows, k: config.dModel, n: config.vocabSize) }
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
    func addSublayer(_ lin: Linear, input: UnsafePointer<Float>, to x: UnsafeMutablePointer<Float>, keep out: Buffer, rows n: Int) {
        if out.isEmpty {
            lin.forward(input, x, rows: n, accumulate: true)
        } else {
            lin.forward(input, out.p, rows: n)
            addParallel(x, out.p, n * config.dModel)
        }
    }

    /// Shared attention sub-step: rope (RoPE families), write k/v to each segment's cache,
    /// causal attention into b.z.
    func attend(_ b: BlockBuffers, layer: Int, segments: [Segment], rope: RopeTable?) {
        let c = config
        if segments.count > 1, segments.allSatisfy({ $0.count == 1 }), b.lastRowPattern == nil {
            attendDecodeBatch(b, layer: layer, segments: segments, rope: rope)
            return
        }
        for (si, s) in segments.enumerated() {
            let qs = b.q.p + s.rowStart * c.qDim, ks = b.k.p + s.rowStart * c.kvDim, vs = b.v.p + s.rowStart * c.kvDim
            if let rope {
                rope.apply(qs, rows: s.count, nHeads: c.nHeads, pos0: s.pos0)
                rope.apply(ks, rows: s.count, nHeads: c.nKVHeads, pos0: s.pos0)
            }
            let at = s.cache.offset(layer: layer, pos: s.pos0)
            s.cache.k.ptr { copyParallel($0 + at, ks, s.count * c.kvDim) }
            s.cache.v.ptr { copyParallel($0 + at, vs, s.count * c.kvDim) }
            causalAttention(q: qs, cache: s.cache, layer: layer, out: b.z.p + s.rowStart * c.qDim,
                            tq: s.count, pos0: s.pos0, config: c, scratch: &b.scratch,
                            lastRowPattern: b.lastRowPattern.map { $0 + si * c.nHeads * b.lastRowPatternStride },
                            patternStride: b.lastRowPatternStride)
        }
    }
}

extension Model {
    /// Batched decode: one new row per sequence (row i belongs to segment i), as in
    /// `generateBatch`. Each row is small (nHeads single-query products over its own
    /// cache), so rows, not heads, are spread over the cores, and the products are
    /// SIMD loops: a BLAS call per head and row (27,000 per step for 100 streams of
    /// SmolLM2) would cost more than the arithmetic.
    func attendDecodeBatch(_ b: BlockBuffers, layer: Int, segments: [Segment], rope: RopeTable?) {
        let c = config
        let work = segments.reduce(0) { $0 + ($1.pos0 + 1) } * c.qDim * 2
        parallelRows(segments.count, work: work) { range in
            for i in range {
                let s = segments[i]
                let qs = b.q.p + i * c.qDim, ks = b.k.p + i * c.kvDim, vs = b.v.p + i * c.kvDim
                if let rope {
                    rope.apply(qs, rows: 1, nHeads: c.nHeads, pos0: s.pos0)
                    rope.apply(ks, rows: 1, nHeads: c.nKVHeads, pos0: s.pos0)
                }
                let at = s.cache.offset(layer: layer, pos: s.pos0)
                s.cache.k.ptr { ($0 + at).update(from: ks, count: c.kvDim) }
                s.cache.v.ptr { ($0 + at).update(from: vs, count: c.kvDim) }
                singleQueryAttention(q: qs, cache: s.cache, layer: layer, keys: s.pos0 + 1,
                                     out: b.z.p + i * c.qDim, config: c)
            }
        }
    }
}
