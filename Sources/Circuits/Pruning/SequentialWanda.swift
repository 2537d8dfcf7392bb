import Foundation
import Transformer

// MARK: - Sequential Wanda (`prune --method wanda --sequential`)
//
// The Wanda reference code (locuslab/wanda, `prune_wanda`) does not score every
// layer on the dense model. It walks the decoder layers in order, and for layer l:
//   1. runs layer l — still dense — on the calibration inputs of layer l, which
//      were computed through the already-pruned layers 0..<l, collecting Σ_t x_tj²
//      at the input of every linear (q/k/v ← ln1 out, o ← z, gate/up ← ln2 out,
//      down ← post);
//   2. prunes layer l's linears with |W_ij| · ‖X_j‖₂ (per output row);
//   3. runs the pruned layer l again on the same inputs: the outputs are layer
//      l+1's inputs.
// Non-sequential Wanda (`WandaScorer`) measures every layer on the dense model;
// on the same text the two differ by about 1 % in perplexity at 50 % (issue 18).
//
// Memory: the layer inputs of all calibration samples ([T, d] each) are kept
// while they fit in `cacheBytes`; the samples beyond that are recomputed from
// the embedding through the pruned layers below whenever they are needed (the
// same arithmetic on the same weights, so the masks are identical either way —
// a test checks it). Only per-matrix schemes (row, layer, N:M) can be decided a
// layer at a time; a ranking across layers cannot, and is refused.

public enum SequentialWanda {
    /// What a run did (for the log and pruning.json).
    public struct Summary: Sendable {
        public var samples: Int, tokens: Int
        /// Samples whose layer inputs were kept; the rest were recomputed per layer.
        public var cachedSamples: Int
        public var seconds: Double
    }

    /// Refuses a scheme whose selection spans several matrices (usage error: no model needed).
    public static func validate(_ spec: PruneSpec) throws {
        guard Pruner.isPerMatrix(spec.scheme) else {
            throw PruneError.invalidArgument(option: "sequential", reason: "scheme \(spec.scheme) ranks across layers; "
                + "sequential pruning decides one layer at a time (use row, layer or nm:N:M)")
        }
    }

    /// Prunes `model` in place layer by layer and returns the mask it applied (model order).
    public static func prune(_ model: Model, samples: [AttributionSample], spec: PruneSpec, cacheBytes: Int,
                             progress: Bool = false) throws -> (mask: PruneMask, summary: Summary) {
        try validate(spec)
        let start = Date()
        let c = model.config
        let targets = try Pruner.targets(model, layers: spec.layersRegex)
        try Pruner.checkColumns(targets, spec.scheme)
        let fraction = try Pruner.fraction(spec, total: targets.reduce(0) { $0 + $1.weight.count })
        let picked = Set(targets.map { ObjectIdentifier($0) })

        // Which samples keep their layer input: a prefix, in order, while the bytes fit.
        var cachedCount = 0, bytes = 0
        for s in samples {
            let (b, o) = s.tokens.count.multipliedReportingOverflow(by: c.dModel * MemoryLayout<Float>.stride)
            guard !o, bytes <= cacheBytes - b else { break }
            bytes += b; cachedCount += 1
        }
        var cache: [[Float]] = []                                         // [T_i, d] per cached sample
        cache.reserveCapacity(cachedCount)
        // One KV cache and one set of block buffers per sequence length, reused for every call.
        var kv: [Int: KVCache] = [:], buffers: [Int: BlockBuffers] = [:]
        func segments(_ n: Int) -> [Segment] {
            let cache = kv[n] ?? KVCache(config: c, capacity: n)
            kv[n] = cache
            return [Segment(rowStart: 0, count: n, pos0: 0, cache: cache)]
        }
        func blockBuffers(_ n: Int) -> BlockBuffers {
            let b = buffers[n] ?? BlockBuffers(config: c, rows: n)
            buffers[n] = b
            return b
        }
        /// The input of layer `l` for sample `i`: kept, or recomputed through layers 0..<l.
        func input(_ i: Int, layer l: Int) -> [Float] {
            if i < cache.count { return cache[i] }
            let t = samples[i].tokens, seg = segments(t.count)
            var x = model.embedRows(t, segments: seg)                    // [T, d]
            for j in 0..<l { model.runBlock(j, &x, segments: seg, buffers: blockBuffers(t.count)) }
            return x
        }
        for i in 0..<cachedCount {
            let t = samples[i].tokens
            cache.append(model.embedRows(t, segments: segments(t.count)))
        }

        let tokens = samples.reduce(0) { $0 + $1.tokens.count }
        let line = ProgressLine("sequential wanda", total: c.nLayers, unit: "layers", enabled: progress)
        var masks: [TensorMask] = []
        for blk in model.blocks {
            let l = blk.index
            let lins = blk.linears.filter { picked.contains(ObjectIdentifier($0)) }
            if !lins.isEmpty {
                // 1. Statistics of the dense layer l on inputs from the pruned layers below.
                let stats = WandaScorer(model: model)
                for i in samples.indices {
                    var x = input(i, layer: l)
                    let n = samples[i].tokens.count, bb = blockBuffers(n)
                    model.runBlock(l, &x, segments: segments(n), buffers: bb)
                    stats.accumulate(layer: l, bb)
                }
                // 2. Prune layer l.
                let layerMasks = lins.map {
                    Pruner.matrixMask($0, stats.weightScores($0, in: blk), scheme: spec.scheme, fraction: fraction, rank: spec.rank)
                }
                try PruneMask(tensors: layerMasks).apply(to: model)
                masks += layerMasks
            }
            // 3. The kept inputs move through the (pruned) layer l.
            if l + 1 < c.nLayers {
                for i in cache.indices {
                    let n = cache[i].count / c.dModel
                    model.runBlock(l, &cache[i], segments: segments(n), buffers: blockBuffers(n))
                }
            }
            line.update(l + 1, tokens: tokens * (l + 1))
        }
        return (PruneMask(tensors: masks), Summary(samples: samples.count, tokens: tokens, cachedSamples: cachedCount,
                                                   seconds: Date().timeIntervalSince(start)))
    }
}
