import Foundation
import Transformer

// MARK: - `mpirun -np N workbench attribute …`
//
// Every rank loads the model (mmap) and draws the same samples, runs shard rank/N of them with
// its own checkpoint `<out>.shard-K-of-N.partial` (so a killed rank resumes with --resume, and a
// finished rank's sums survive another rank's failure), then one reduction at the end: rank r > 0
// sends its totals and each sum tensor once to rank 0, which adds them in rank order 1, 2, …, N−1
// to its own — the order `workbench merge` adds N parts in, so the file is bit-identical to
// merging the same N shards (and to a single run while the F64 sums are exact). Rank 0 writes
// `out` atomically; after a barrier every rank removes its checkpoint.

public enum MPIAttribution {
    /// The checkpoint of one rank.
    public static func checkpointPath(out: String, shard: Shard) -> String {
        AttributionRunner.checkpointPath(for: "\(out).shard-\(shard.index)-of-\(shard.count)")
    }

    /// Cheap checks before any heavy work (as `AttributionRunner.preflight`, for this rank's checkpoint).
    public static func preflight(out: String, resume: Bool, mpi: MPI) throws {
        let shard = try Shard(index: mpi.rank, count: mpi.size)
        _ = try OutputDestination.of(out)
        let cp = checkpointPath(out: out, shard: shard)
        _ = try OutputDestination.of(cp, allowStreams: false)
        var st = stat()
        if !resume, lstat(cp, &st) == 0 { throw AttributionError.checkpointExists(path: cp) }
    }

    /// Runs this rank's shard and the reduction; rank 0 writes `out` and gets the summary, other ranks nil.
    public static func run(model: Model, samples: [AttributionSample], settings s: AttributionSettings, out: String, mpi: MPI,
                           options o: AttributionRunOptions = AttributionRunOptions()) throws -> AttributionSummary? {
        precondition(s.shard == nil, "MPI picks the shard")
        try preflight(out: out, resume: o.resume, mpi: mpi)
        var mine = s
        mine.shard = try Shard(index: mpi.rank, count: mpi.size)
        let cp = checkpointPath(out: out, shard: mine.shard!)
        let r = try AttributionRunner.stream(model: model, samples: samples, settings: mine, checkpoint: cp, stoppable: out, options: o)
        // This rank's finished sums stay on disk until the output exists (another rank may still fail).
        try StreamingSafetensors.write(r.scorer.checkpointTensors(), metadata: mine.metadata(
            samplesDone: r.done, tokens: r.tokens, conservationSum: r.consSum, conservationCount: r.consCount, kind: .checkpoint),
            checksum: true, allowStreams: false, to: cp)
        let reduceStart = Date()
        var totals = [Double(r.done), Double(r.tokens), r.consSum, Double(r.consCount)]
        var sums = r.scorer.takeSums()
        var summary: AttributionSummary? = nil
        if mpi.rank == 0 {
            var buffer: [Double] = []
            for source in 1..<mpi.size {
                // Totals first, then every tensor in the scorer's fixed order.
                try totals.withUnsafeMutableBufferPointer { try mpi.receiveAdding(into: $0, from: source, buffer: &buffer) }
                for i in sums.indices {
                    try sums[i].values.withUnsafeMutableBufferPointer { try mpi.receiveAdding(into: $0, from: source, buffer: &buffer) }
                }
            }
            let done = Int(totals[0]), tokens = Int(totals[1]), consCount = Int(totals[3])
            guard done == samples.count else {
                throw DistributedError.badPart(path: "rank reduction", reason: "ranks report \(done) samples in total, the run has \(samples.count)")
            }
            let reduceSeconds = Date().timeIntervalSince(reduceStart)
            var whole = s
            whole.shard = nil
            let scorer = AttributionRunner.makeScorer(model, whole)
            var table = SumTable(values: [:], origin: "the ranks' sums")
            for (name, v) in sums { table.values[name] = v }
            sums = []
            try scorer.restore(table, samplesDone: done)
            table.values = [:]
            let tensors = scorer.finalTensors(samples: done, tokens: tokens)
            try StreamingSafetensors.write(tensors, metadata: whole.metadata(samplesDone: done, tokens: tokens, conservationSum: totals[2],
                                                                            conservationCount: consCount, kind: .final),
                                           checksum: true, to: out)
            o.log(String(format: "MPI: %d ranks reduced into rank 0 in %.2f s (%@)", mpi.size, reduceSeconds, mpi.library))
            summary = AttributionSummary(samples: done, tokens: tokens, resumedAt: r.resumedAt, seconds: r.seconds,
                                         sessionTokens: r.sessionTokens,
                                         conservationMean: consCount > 0 ? totals[2] / Double(consCount) : nil, out: out,
                                         tensorCount: tensors.count)
        } else {
            try totals.withUnsafeBufferPointer { try mpi.send($0, to: 0) }
            for t in sums { try t.values.withUnsafeBufferPointer { try mpi.send($0, to: 0) } }
            sums = []
        }
        try mpi.barrierAll()                      // the output exists: the checkpoints are no longer needed
        try? FileManager.default.removeItem(atPath: cp)
        return summary
    }
}
