import Foundation

// MARK: - Sampling

/// SplitMix64: tiny, seedable, identical on every platform (reproducible runs).
public struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

public struct Sampler {
    public var temperature: Float
    public var topP: Float
    var rng: SeededRNG

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topP = topP; self.rng = SeededRNG(seed: seed)
    }

    /// Greedy when temperature is 0, else softmax(logits / T) restricted to the
    /// smallest top-p nucleus (llama2.c `sample_topp` semantics).
    public mutating func sample(_ logits: [Float]) -> Int {
        logits.withUnsafeBufferPointer { sample($0) }
    }

    /// The same draw from a row of a [rows, vocab] logit matrix (batched decode samples every
    /// stream's row in place). The probabilities, their order and the sums are exactly those of
    /// the plain definition — softmax over the whole vocabulary in Double, tokens ordered by
    /// probability (ties by id), the nucleus cut where the running sum first reaches p — so a
    /// draw does not depend on how it is computed. What is cheaper: only candidates that can lie
    /// in the nucleus are sorted. Every token outside S = {i : pᵢ ≥ (1 − p)/V} has pᵢ < (1 − p)/V,
    /// so together they hold less than 1 − p and the cut falls inside S, which is a prefix of the
    /// full order (SmolLM2 at T = 1: a few hundred of 49,152 ids instead of a 5 ms full sort).
    /// Should rounding leave S's sum short of p, the full order is sorted as before.
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int {
        let n = logits.count
        if temperature <= 0 || n < 2 { return argmax(logits) }
        let base = logits.baseAddress!
        let m = maxSIMD(base, n)
        let t = temperature
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { e in
            // Eight lanes at a time: each lane is exactly fastExp((l − m) / T); pᵢ = Double(eᵢ) / total.
            var total = 0.0, j = 0
            let raw = UnsafeRawPointer(base)
            let mv = SIMD8<Float>(repeating: m), tv = SIMD8<Float>(repeating: t)
            while j + 8 <= n {
                let v = expSIMD((raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self) - mv) / tv)
                for lane in 0..<8 { e[j + lane] = v[lane]; total += Double(v[lane]) }
                j += 8
            }
            while j < n { let v = fastExp((base[j] - m) / t); e[j] = v; total += Double(v); j += 1 }
            if topP >= 1 {
                // The whole vocabulary in id order.
                var mass = 0.0
                for i in 0..<n { mass += Double(e[i]) / total }
                let r = rng.uniform() * mass
                var acc = 0.0
                for i in 0..<n {
                    acc += Double(e[i]) / total
                    if r < acc { return i }
                }
                return n - 1
            }
            let nucleus = self.nucleus(e, total: total)
            var mass = 0.0
            for c in nucleus { mass += c.p }
            let r = rng.uniform() * mass
            var acc = 0.0
            for c in nucleus {
                acc += c.p
                if r < acc { return c.id }
            }
            return nucleus[nucleus.count - 1].id
        }
    }

    /// A token and its probability, ordered most probable first, ties by id.
    struct Candidate: Comparable {
        let p: Double
        let id: Int
        static func < (a: Candidate, b: Candidate) -> Bool { a.p > b.p || (a.p == b.p && a.id < b.id) }
    }

    /// The nucleus in draw order: the smallest prefix of the order whose running sum reaches p.
    /// Tries S = {i : pᵢ ≥ τ} for τ = 1/V (above uniform: usually a few dozen ids), then
    /// τ = (1 − p)/V (which must hold the cut), then every id. A prefix found inside S is the
    /// prefix of the full order, since S is itself a prefix of it.
    private func nucleus(_ e: UnsafeMutableBufferPointer<Float>, total: Double) -> [Candidate] {
        let n = e.count
        for tau in [1 / Double(n), (1 - Double(topP)) / Double(n), 0] {
            // Prefilter in Float with a margin; the exact test is on pᵢ = Double(eᵢ) / total.
            let loose = Float(tau * total * (1 - 1e-6))
            var s: [Candidate] = []
            for i in 0..<n where e[i] >= loose {
                let p = Double(e[i]) / total
                if p >= tau { s.append(Candidate(p: p, id: i)) }
            }
            s.sort()
            var cum = 0.0
            for k in s.indices {
                cum += s[k].p
                if cum >= Double(topP) { return Array(s[...k]) }
            }
            if tau == 0 { return s }                      // rounding never reached p: everything
        }
        return []
    }
}

@inline(__always)
public func argmax(_ x: [Float]) -> Int { x.withUnsafeBufferPointer { argmax($0) } }

/// The first index of the largest value.
@inline(__always)
public func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    for i in x.indices where x[i] > x[best] { best = i }
    return best
}

// MARK: - Generation

public struct GenerationStats {
    public var promptTokens = 0
    public var newTokens = 0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(max(newTokens - 1, 0)) / decodeSeconds : 0 }
}

extension Model {
    /// Generates up to `maxNewTokens` after `prompt` with a KV cache. Stops at
    /// `stop` ids (EOS). `onToken` receives each new id as it is produced.
    /// Decode reads the transposed copies when the caller made them first
    /// (`prepareDecodeLayout`, worth it from `decodeLayoutMinTokens` tokens in all).
    /// Decode positions the KV cache holds beyond the prompt before it first grows (doubling).
    static let initialDecodeRoom = 2048

    public func generate(prompt: [Int], maxNewTokens: Int, sampler: inout Sampler, stop: Set<Int> = [],
                         onToken: (Int) -> Void = { _ in }) throws -> (tokens: [Int], stats: GenerationStats) {
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        for t in prompt where t < 0 || t >= config.vocabSize { throw ModelError.invalidToken(id: t, vocabSize: config.vocabSize) }
        let limit = config.maxSeqLen
        guard prompt.count < limit else { throw ModelError.promptTooLong(tokens: prompt.count, limit: limit, origin: contextOrigin) }
        guard maxNewTokens >= 0 else {
            throw ModelError.badConfig(file: "generate", key: "max-new-tokens", reason: "must not be negative")
        }
        // Clamp before adding: a huge request must not overflow (it stops at the context).
        let total = prompt.count + min(maxNewTokens, limit - prompt.count)
        // Sized by what is produced, not by the request: `--max-new-tokens` up to a large declared
        // context would otherwise allocate for all of it up front (2^27 positions: 170 GB).
        var cache = KVCache(config: config, capacity: min(total, prompt.count + Self.initialDecodeRoom))
        var stats = GenerationStats(promptTokens: prompt.count)
        var out: [Int] = []
        let t0 = Date()
        var logits = step(prompt, cache: cache)
        stats.prefillSeconds = Date().timeIntervalSince(t0)
        let t1 = Date()
        // Decode: ~240 small gemv calls per token, each split over both cores by
        // the spinning WorkerTeam (measured as fast as OpenBLAS's own pool).
        while prompt.count + out.count < total {
            let next = sampler.sample(logits)
            if stop.contains(next) { break }
            out.append(next)
            onToken(next)
            if prompt.count + out.count >= total { break }
            if cache.length == cache.capacity { cache = cache.grown(to: min(total, 2 * cache.capacity)) }
            logits = step([next], cache: cache)
        }
        stats.newTokens = out.count
        stats.decodeSeconds = Date().timeIntervalSince(t1)
        return (out, stats)
    }
}

// MARK: - Decode layout
//
// Decode is one matrix–vector product per weight and bandwidth-bound. OpenBLAS
// 0.3.21 reads W [out, in] with its dot-product kernel, which on this machine
// streams only ~11–12 GB/s per core when rows are 576 floats long (SmolLM2),
// against ~20 GB/s for 8192-float rows. Stored transposed, Wᵀ [in, out], the
// same product runs on the axpy kernel at 15–23 GB/s whenever out ≥ in (q, o,
// gate, up, lm_head); for out < in (k, v, down) the dot kernel stays faster.
// Measured with a C loop over OpenBLAS sgemv, one thread, matrices ≫ cache:
//   [576, 576] 12.3 → 14.8 · [1536, 576] 11.5 → 19.8 · [49152, 576] 12.2 → 22.8
//   [192, 576] 12.9 → 10.5 · [576, 1536] 15.6 → 13.7 GB/s (dot → axpy).
// So decode keeps transposed copies of those weights. They are a cache: any
// write to a weight (a mask, a pruning step) drops its copy, and prefill,
// batched forward and LRP never read them.

extension Model {
    /// Extra bytes the decode layout may take by default (copies beyond this are not made).
    public static let defaultDecodeLayoutBudget = 1 << 30

    /// Decoded tokens (in all, over the calls that share the copies) from which
    /// making the layout pays: it costs 0.2–0.9 s for SmolLM2 and saves ≈ 7 ms per token.
    public static let decodeLayoutMinTokens = 128

    /// Whether the decode layout transposes this [out, in] weight.
    static func prefersTransposedDecode(out: Int, in inDim: Int) -> Bool { out >= inDim }

    /// The decoder linears the layout covers.
    private var layoutLinears: [Linear] { linears.filter { Model.prefersTransposedDecode(out: $0.outDim, in: $0.inDim) } }
    /// Whether the layout covers the unembedding (lm_head or the tied embedding).
    private var layoutCoversHead: Bool { Model.prefersTransposedDecode(out: config.vocabSize, in: config.dModel) }

    /// Bytes the decode layout takes (or would take) for this model.
    public var decodeLayoutBytes: Int {
        4 * layoutLinears.reduce(layoutCoversHead ? unembedding.count : 0) { $0 + $1.weight.count }
    }

    /// Whether every weight the layout covers currently has its transposed copy.
    public var hasDecodeLayout: Bool {
        (!layoutCoversHead || unembeddingT != nil) && layoutLinears.allSatisfy { $0.decodeT != nil }
    }

    /// Builds the transposed copies single-token steps use, unless they would
    /// take more than `budget` bytes. Returns whether the layout is in place.
    /// Cheap when already built (copies survive until a weight changes).
    @discardableResult
    public func prepareDecodeLayout(budget: Int = Model.defaultDecodeLayoutBudget) -> Bool {
        guard decodeLayoutBytes <= budget else { return false }
        let c = config
        let missing = layoutLinears.filter { $0.decodeT == nil }
        let head = layoutCoversHead && unembeddingT == nil
        let count = missing.reduce(head ? c.vocabSize * c.dModel : 0) { $0 + $1.weight.count }
        guard count > 0 else { return true }
        guard let store = PageBuffer(count: count) else { return false }   // no memory: decode from W as before
        var offset = 0
        for l in missing {
            l.weight.cptr { transpose($0, rows: l.outDim, cols: l.inDim, into: store.base + offset) }
            l.decodeT = DecodeCopy(store: store, offset: offset)
            offset += l.weight.count
        }
        if head {
            unembedding.cptr { transpose($0, rows: c.vocabSize, cols: c.dModel, into: store.base + offset) }
            unembeddingT = DecodeCopy(store: store, offset: offset)
        }
        return true
    }

    /// Drops the transposed copies (e.g. before a memory-hungry LRP pass); the
    /// mapping is returned to the kernel once no copy in it is left.
    public func releaseDecodeLayout() {
        for l in linears { l.decodeT = nil }
        unembeddingT = nil
    }
}

/// One transposed weight inside a `PageBuffer`.
struct DecodeCopy {
    let store: PageBuffer
    let offset: Int
    var pointer: UnsafePointer<Float> { UnsafePointer(store.base + offset) }
    subscript(i: Int) -> Float { store.base[offset + i] }
}

/// An anonymous mapping of `count` floats holding every copy one
/// `prepareDecodeLayout` call makes. Unmapped when the last copy inside it
/// goes, so RSS drops at once (glibc keeps freed heap blocks under 32 MB, see
/// `Allocator`, which would have left most copies resident). Making SmolLM2's
/// layout takes 0.2–0.9 s here, mostly first-touch page faults on this VM;
/// asking for 2 MB pages (MADV_HUGEPAGE) measured no better.
final class PageBuffer {
    let base: UnsafeMutablePointer<Float>
    let bytes: Int

    init?(count: Int) {
        bytes = count * MemoryLayout<Float>.stride
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            return nil
        }
        base = p.bindMemory(to: Float.self, capacity: count)
    }

    deinit { munmap(base, bytes) }
}

/// dst = aᵀ [cols, rows] of a row-major [rows, cols] matrix, in 16×16 tiles so
/// the reads and the writes stay within a few cache lines per tile (measured
/// best of 8–64 on [1536, 576]: 13 GB/s against 7–9).
func transpose(_ a: UnsafePointer<Float>, rows: Int, cols: Int, into t: UnsafeMutablePointer<Float>) {
    let tile = 16
    let tileRows = (rows + tile - 1) / tile
    parallelRows(tileRows, work: rows * cols) { r in
        for ti in r {
            let i0 = ti * tile, i1 = min(i0 + tile, rows)
            var j0 = 0
            while j0 < cols {
                let j1 = min(j0 + tile, cols)
                for i in i0..<i1 {
                    let src = a + i * cols
                    for j in j0..<j1 { t[j * rows + i] = src[j] }
                }
                j0 = j1
            }
        }
    }
}
