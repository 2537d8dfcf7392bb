import Foundation

// MARK: - KV cache

/// Keys and values of one sequence for every layer: [nLayers, capacity, kvDim] each.
/// Capacity is what the caller needs, not the model's maximum context
/// (SmolLM2 advertises 8192; a full cache would be 377 MB).
public final class KVCache {
    public let capacity: Int
    public let kvDim: Int
    public let nLayers: Int
    /// Layer slots held: nLayers, or 1 for a single forward pass that never
    /// reads an earlier layer's keys again (the LRP pass keeps k/v in its
    /// block buffers; a full cache would duplicate them, 94 MB at T=2048).
    let slots: Int
    public internal(set) var length = 0
    var k: [Float]
    var v: [Float]

    public convenience init(config: ModelConfig, capacity: Int) {
        self.init(config: config, capacity: capacity, singleLayer: false)
    }

    init(config: ModelConfig, capacity: Int, singleLayer: Bool) {
        self.capacity = capacity; self.kvDim = config.kvDim; self.nLayers = config.nLayers
        slots = singleLayer ? 1 : config.nLayers
        k = zeros(slots * capacity * config.kvDim)
        v = k
    }

    public func reset() { length = 0 }

    private init(kvDim: Int, nLayers: Int, slots: Int, capacity: Int) {
        self.capacity = capacity; self.kvDim = kvDim; self.nLayers = nLayers; self.slots = slots
        k = zeros(slots * capacity * kvDim)
        v = k
    }

    /// A cache of `newCapacity` positions holding this one's keys and values, so generation can
    /// size the cache by the tokens it actually produces rather than by the whole request
    /// (which a large declared context lets reach billions of positions). Also an independent
    /// copy: several continuations of one prompt share its prefill by starting from copies.
    func grown(to newCapacity: Int) -> KVCache {
        let g = KVCache(kvDim: kvDim, nLayers: nLayers, slots: slots, capacity: max(newCapacity, capacity))
        g.length = length
        let n = length * kvDim
        for l in 0..<slots where n > 0 {
            let from = offset(layer: l, pos: 0), to = g.offset(layer: l, pos: 0)
            k.withUnsafeBufferPointer { s in g.k.withUnsafeMutableBufferPointer { d in
                (d.baseAddress! + to).update(from: s.baseAddress! + from, count: n) } }
            v.withUnsafeBufferPointer { s in g.v.withUnsafeMutableBufferPointer { d in
                (d.baseAddress! + to).update(from: s.baseAddress! + from, count: n) } }
        }
        return g
    }

    @inline(__always) func offset(layer: Int, pos: Int) -> Int { ((slots == 1 ? 0 : layer) * capacity + pos) * kvDim }
}

// MARK: - Causal attention

/// Query rows per block: the score block is [queryBlock, keys] for one head at a
/// time, so no T×T matrix is ever held for all heads (T=2048: 1 MB, not 150 MB).
let queryBlock = 128

/// out[Tq, nHeads·hd] = softmax(Q Kᵀ/√hd + causal mask) V for one sequence.
/// `q` [Tq, qDim] is post-RoPE; keys/values for positions [0, pos0 + Tq) are in the
/// cache for `layer`. GQA: query head h reads kv head h / (nHeads / nKVHeads).
/// `lastRowPattern` (hook_pattern of the final query row, see `BlockBuffers.lastRowPattern`): head h's
/// probabilities over keys 0..<pos0 + tq are written at `lastRowPattern + h · patternStride`.
func causalAttention(q: UnsafePointer<Float>, cache: KVCache, layer: Int, out: UnsafeMutablePointer<Float>,
                     tq: Int, pos0: Int, config c: ModelConfig, scratch: inout [Float],
                     lastRowPattern: UnsafeMutablePointer<Float>? = nil, patternStride: Int = 0) {
    let hd = c.headDim, qDim = c.qDim, kvDim = c.kvDim
    let group = c.nHeads / c.nKVHeads
    let scale = 1 / Float(hd).squareRoot()
    cache.k.withUnsafeBufferPointer { kbuf in
        cache.v.withUnsafeBufferPointer { vbuf in
            let kBase = kbuf.baseAddress! + cache.offset(layer: layer, pos: 0)
            let vBase = vbuf.baseAddress! + cache.offset(layer: layer, pos: 0)
            if tq == 1 {
                // Decode: one query row; sgemv, since sgemm with M=1 is 3–4× slower.
                let keys = pos0 + 1
                if scratch.count < keys { scratch = zeros(keys) }
                scratch.ptr { s in
                    for h in 0..<c.nHeads {
                        let g = h / group
                        BLAS.gemv(n: keys, k: hd, alpha: scale, kBase + g * hd, lda: kvDim, q + h * hd, s)
                        softmaxRow(s, keys)
                        if let p = lastRowPattern { (p + h * patternStride).update(from: s, count: keys) }
                        BLAS.gemvT(n: keys, k: hd, vBase + g * hd, lda: kvDim, s, out + h * hd)
                    }
                }
                return
            }
            // Prefill: (query block × head) work items spread over the cores,
            // each with single-threaded BLAS and its own score buffer; items
            // write disjoint slices of `out`, so they are dealt out dynamically.
            let blocks = (tq + queryBlock - 1) / queryBlock
            let ways = max(BLAS.ways, 1)
            let need = min(queryBlock, tq) * (pos0 + tq)
            if scratch.count < need * ways { scratch = zeros(need * ways) }
            let parallel = ways > 1
            scratch.ptr { sAll in
                let costs = (0..<(blocks * c.nHeads)).map { item in pos0 + min((item / c.nHeads + 1) * queryBlock, tq) }
                let run: (Int, Int) -> Void = { worker, item in
                    let s = sAll + worker * need
                    let h = item % c.nHeads, i0 = (item / c.nHeads) * queryBlock
                    let i1 = min(i0 + queryBlock, tq), rows = i1 - i0
                    let keys = pos0 + i1                       // keys visible to the last row of the block
                    let g = h / group
                    let gemm = parallel ? BLAS.gemmSerial : BLAS.gemm
                    // S[rows, keys] = scale · Q_h[i0..<i1] · K_g[0..<keys]ᵀ, in row strips that
                    // stop at their own last key (the block's diagonal square is half masked).
                    diagonalStrips(rows: rows, keys: keys, height: scoreStripRows) { r0, r1, kEnd in
                        gemm(false, true, r1 - r0, kEnd, hd, scale, q + (i0 + r0) * qDim + h * hd, qDim, kBase + g * hd, kvDim,
                             0, s + r0 * keys, keys)
                    }
                    // E = exp(S − rowmax) under the causal mask; out[i0..<i1, h] = (E · V_g) / rowsum(E).
                    var sums = [Float](repeating: 0, count: rows)
                    sums.ptr { maskedExp(s, rows: rows, keys: keys, firstPos: pos0 + i0, stripRows: valueStripRows, sums: $0) }
                    if let p = lastRowPattern, i1 == tq {
                        // The block's last row is the sequence's final position; it sees every key.
                        let e = s + (rows - 1) * keys, inv = 1 / sums[rows - 1], dst = p + h * patternStride
                        for j in 0..<keys { dst[j] = e[j] * inv }
                    }
                    let o = out + i0 * qDim + h * hd
                    diagonalStrips(rows: rows, keys: keys, height: valueStripRows) { r0, r1, kEnd in
                        gemm(false, false, r1 - r0, hd, kEnd, 1, s + r0 * keys, keys, vBase + g * hd, kvDim, 0, o + r0 * qDim, qDim)
                    }
                    for r in 0..<rows {
                        let inv = 1 / sums[r]
                        for e in 0..<hd { o[r * qDim + e] *= inv }
                    }
                }
                BLAS.dynamicWorkers(costs: costs, run)
            }
        }
    }
}

/// Calls `body(r0, r1, keyEnd)` for strips of at most `height` rows of a query
/// block of `rows` rows whose last row sees `keys` keys: each strip's product
/// stops at its own last visible key, so the masked upper half of the block's
/// diagonal square is mostly skipped (a strip wastes only its own small triangle).
/// Measured at T=512 (one core, C model of SmolLM2's heads): QKᵀ (K = 64) in
/// 64-row strips 4% faster than whole blocks, 32-row strips slower again; E·V in
/// 16-row strips 30% faster (the saved products, and no loss at small M there).
@inline(__always)
func diagonalStrips(rows: Int, keys: Int, height: Int, _ body: (Int, Int, Int) -> Void) {
    var r0 = 0
    while r0 < rows {
        let r1 = min(r0 + height, rows)
        body(r0, r1, keys - (rows - r1))
        r0 = r1
    }
}

/// The transposed products (Pᵀ·δz, δSᵀ·Q; key rows out): `body(k0, k1, rStart)`
/// for key strips of at most `height` keys. Keys before the block's diagonal
/// square are seen by every row; a diagonal key strip only by the rows from
/// `rStart` on, so its product sums over rows rStart..<rows.
@inline(__always)
func diagonalKeyStrips(rows: Int, keys: Int, height: Int, _ body: (Int, Int, Int) -> Void) {
    let first = keys - rows                          // the diagonal square's first key
    if first > 0 { body(0, first, 0) }
    var k0 = first
    while k0 < keys {
        let k1 = min(k0 + height, keys)
        body(k0, k1, k0 - first)
        k0 = k1
    }
}

/// Strip heights of the two attention products (see `diagonalStrips`).
let scoreStripRows = 64, valueStripRows = 16

/// Unnormalised masked softmax: row r gets exp(s − max) over keys 0...firstPos + r
/// and `sums[r]` their sum. The masked entries are set to exact zeros up to the
/// last key the row's E·V strip reads (`diagonalStrips` with `stripRows`);
/// entries past that are never read and left as they are.
@inline(__always)
func maskedExp(_ s: UnsafeMutablePointer<Float>, rows: Int, keys: Int, firstPos: Int, stripRows: Int,
               sums: UnsafeMutablePointer<Float>) {
    diagonalStrips(rows: rows, keys: keys, height: stripRows) { r0, r1, stripEnd in
        for r in r0..<r1 {
            let row = s + r * keys
            let visible = firstPos + r + 1
            sums[r] = expRow(row, visible)
            if visible < stripEnd { (row + visible).update(repeating: 0, count: stripEnd - visible) }
        }
    }
}

/// Row r of the block sits at absolute position firstPos + r and may see keys
/// 0...firstPos + r: softmax over those, exact zeros after (the causal mask).
@inline(__always)
func maskedSoftmax(_ s: UnsafeMutablePointer<Float>, rows: Int, keys: Int, firstPos: Int, parallel: Bool = true) {
    parallelRows(rows, work: parallel ? rows * keys : 0) { range in
        for r in range {
            let row = s + r * keys
            let visible = firstPos + r + 1
            softmaxRow(row, visible)
            for j in visible..<keys { row[j] = 0 }
        }
    }
}

/// out[nHeads·hd] = softmax(q Kᵀ/√hd) V for one query row over the first `keys` cached
/// positions of `layer` (all visible: the row is the newest position). Same result as the
/// decode branch of `causalAttention` up to summation order; used by batched decode.
func singleQueryAttention(q: UnsafePointer<Float>, cache: KVCache, layer: Int, keys: Int,
                          out: UnsafeMutablePointer<Float>, config c: ModelConfig) {
    let hd = c.headDim, kvDim = c.kvDim, group = c.nHeads / c.nKVHeads
    let scale = 1 / Float(hd).squareRoot()
    withUnsafeTemporaryAllocation(of: Float.self, capacity: keys) { scores in
        let s = scores.baseAddress!
        cache.k.withUnsafeBufferPointer { kbuf in
            cache.v.withUnsafeBufferPointer { vbuf in
                let kBase = kbuf.baseAddress! + cache.offset(layer: layer, pos: 0)
                let vBase = vbuf.baseAddress! + cache.offset(layer: layer, pos: 0)
                for h in 0..<c.nHeads {
                    let g = h / group, qh = q + h * hd
                    for j in 0..<keys { s[j] = scale * dotSIMD(qh, kBase + j * kvDim + g * hd, hd) }
                    let inv = 1 / expRow(s, keys)
                    let o = out + h * hd
                    for e in 0..<hd { o[e] = 0 }
                    for j in 0..<keys {
                        let w = s[j] * inv, vj = vBase + j * kvDim + g * hd
                        for e in 0..<hd { o[e] += w * vj[e] }
                    }
                }
            }
        }
    }
}
