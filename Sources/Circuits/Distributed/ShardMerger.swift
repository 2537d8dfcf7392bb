import Foundation
import Transformer

// MARK: - Adding shard parts up into the file one run writes
//
// A part (`workbench attribute --shard K/N`) holds the raw F64 sums of its samples (the
// tensors a checkpoint holds), its sample count, tokens and conservation sums, and every
// setting with the model's and data's sha256. Merging checks that the parts come from one run
// (every setting, hash and tool version agree), that shards 0..<N are each there once and
// hold exactly the samples their shard takes, then adds the sums in shard order — 0, 1, …,
// N−1 whatever order the files are given in, so the result for a given N is always the same
// bits — and hands them to the method's own scorer, which writes the final tensors exactly as
// a single run does from its sums. An MPI run (MPIAttribution) reduces in the same order, so
// it writes the same bits as merging the same N parts.

/// One shard part, opened and checked on its own.
public struct ShardPart {
    public let path: String
    public let file: SafetensorsFile
    public let shard: Shard
    /// Samples of the whole run (all shards).
    public let totalSamples: Int
    public let tokens: Int
    public let conservationSum: Double
    public let conservationCount: Int

    /// Opens `path` and reads its shard fields (no tensor data is read).
    public init(path: String) throws {
        let f = try SafetensorsFile(path: path)
        let m = f.metadata
        guard m["format"] == AttributionRunner.partFormat else { throw DistributedError.notAPart(path: path, format: m["format"] ?? "missing") }
        func field(_ k: String) throws -> String {
            guard let v = m[k] else { throw DistributedError.badPart(path: path, reason: "metadata '\(k)' is missing") }
            return v
        }
        func int(_ k: String) throws -> Int {
            guard let v = Int(try field(k)), v >= 0 else { throw DistributedError.badPart(path: path, reason: "metadata '\(k)' is not a count") }
            return v
        }
        let shard: Shard
        do { shard = try Shard(parsing: try field("shard")) } catch let e as DistributedError {
            throw DistributedError.badPart(path: path, reason: "metadata 'shard': \(e.localizedDescription)")
        }
        let total = try int("samples"), done = try int("samples_done")
        guard total <= Int(Int32.max) else { throw DistributedError.badPart(path: path, reason: "metadata 'samples' is \(total)") }
        let mine = shard.range(of: total), recorded = m["shard_samples"] ?? "missing"
        guard recorded == Shard.text(mine), done == mine.count else {
            throw DistributedError.wrongSamples(path: path, recorded: "\(recorded) (\(done) done)", expected: "\(Shard.text(mine)) (\(mine.count))")
        }
        guard let cs = Double(try field("conservation_sum")) else {
            throw DistributedError.badPart(path: path, reason: "metadata 'conservation_sum' is not a number")
        }
        self.path = path; file = f; self.shard = shard; totalSamples = total
        tokens = try int("tokens"); conservationSum = cs; conservationCount = try int("conservation_count")
    }
}

/// What a merge did.
public struct MergeSummary: Sendable {
    public var parts: Int
    public var samples: Int
    public var tokens: Int
    public var tensorCount: Int
    /// Bytes of sums read from the parts.
    public var bytesRead: Int
    public var seconds: Double
    /// Of which: adding the sums up, and writing the output (with its sha256).
    public var addSeconds: Double
    public var writeSeconds: Double
    public var out: String
}

public enum ShardMerger {
    /// Metadata that differs from part to part by design (everything else must agree).
    static let perPartKeys: Set<String> = ["shard", "shard_samples", "samples_done", "tokens", "conservation_sum",
                                           "conservation_count", "conservation_mean", "fingerprint", Safetensors.dataChecksumKey]

    /// Opens and cross-checks the parts; returns them in shard order (0..<N). Reads no tensor data
    /// unless `verify`, which checks each part's data against its recorded sha256.
    public static func plan(_ paths: [String], verify: Bool = true) throws -> [ShardPart] {
        precondition(!paths.isEmpty)
        let parts = try paths.map { try ShardPart(path: $0) }
        // Settings, hashes, tool version (the unsharded fingerprint fields first, in their order), one N, each shard once.
        let first = parts[0]
        let ordered = AttributionSettings().fingerprintFields.map(\.key) + ["version"]
        let sorted = try ShardSet.ordered(parts, path: \.path, shard: \.shard,
                                          fields: { $0.file.metadata.filter { !perPartKeys.contains($0.key) } }, keys: ordered) { missing in
            DistributedError.missingShards(shards: missing.map(\.description),
                                           samples: missing.map { Shard.text($0.range(of: first.totalSamples)) }.joined(separator: ", "),
                                           of: first.totalSamples)
        }
        // Same tensors everywhere.
        for p in sorted.dropFirst() {
            for (name, e) in first.file.entries {
                guard let o = p.file.entries[name] else { throw DistributedError.tensorMismatch(path: p.path, tensor: name, reason: "is missing") }
                guard o.dtype == .F64, o.shape == e.shape else {
                    throw DistributedError.tensorMismatch(path: p.path, tensor: name,
                                                          reason: "is \(o.dtype.rawValue) \(o.shape), \(first.path) has \(e.dtype.rawValue) \(e.shape)")
                }
            }
            if let extra = p.file.entries.keys.first(where: { first.file.entries[$0] == nil }) {
                throw DistributedError.tensorMismatch(path: p.path, tensor: extra, reason: "is not in \(first.path)")
            }
        }
        if let bad = first.file.entries.values.first(where: { $0.dtype != .F64 }) {
            throw DistributedError.tensorMismatch(path: first.path, tensor: bad.name, reason: "is \(bad.dtype.rawValue), a part holds F64 sums")
        }
        if verify { try verifyChecksums(sorted) }
        return sorted
    }

    /// Each part's data against its recorded sha256. Hashing is most of a merge's time (8 × 850 MB
    /// for SmolLM2) and one sha256 stream cannot be split, so whole parts are hashed side by side,
    /// one per worker (parts i, i + w, i + 2w, … on worker i). The first failure in shard order is
    /// reported, as a one-at-a-time loop would.
    static func verifyChecksums(_ parts: [ShardPart]) throws {
        func check(_ p: ShardPart) throws {
            do {
                if try p.file.verifyDataChecksum() == .absent {
                    throw DistributedError.badPart(path: p.path, reason: "records no \(Safetensors.dataChecksumKey): its sums cannot be verified")
                }
            } catch let e as SafetensorsChecksumError {
                throw DistributedError.badPart(path: p.path, reason: "\(e.localizedDescription); rerun its shard")
            }
        }
        let workers = min(parts.count, WorkerTeam.shared.helpers + 1)
        var failures = [Error?](repeating: nil, count: parts.count)
        failures.withUnsafeMutableBufferPointer { f in
            let slots = f   // each index written by exactly one worker
            WorkerTeam.shared.run(parts: workers) { w in
                for i in stride(from: w, to: parts.count, by: workers) {
                    do { try check(parts[i]) } catch { slots[i] = error }
                }
            }
        }
        if let first = failures.lazy.compactMap({ $0 }).first { throw first }
    }

    /// The settings that pick a method's scorer, read back from a part's metadata.
    static func scorerSettings(_ m: [String: String], path: String) throws -> AttributionSettings {
        var s = AttributionSettings()
        guard let method = AttributionMethod(rawValue: m["method"] ?? "") else {
            throw DistributedError.badPart(path: path, reason: "metadata 'method' is \(m["method"] ?? "missing")")
        }
        s.method = method
        s.absPerSample = m["abs_per_sample"] == "true"
        s.absPerToken = m["abs_per_token"] == "true"
        return s
    }

    /// Σ over parts in shard order of each tensor, in F64: part 0's values, + part 1's, …
    static func addUp(_ parts: [ShardPart]) throws -> (sums: [String: [Double]], bytes: Int) {
        var sums: [String: [Double]] = [:], bytes = 0
        for (name, e) in parts[0].file.entries {
            let n = e.shape.reduce(1, *)
            var acc = try parts[0].file.sums(name, count: n)
            bytes += 8 * n
            for p in parts.dropFirst() {
                let raw = try p.file.rawBytes(name)
                bytes += raw.count
                acc.withUnsafeMutableBufferPointer { a in
                    let dst = a.baseAddress!
                    parallelRows(2, work: n) { half in
                        let lo = n * half.lowerBound / 2, hi = n * half.upperBound / 2
                        for i in lo..<hi {
                            dst[i] += Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                        }
                    }
                }
            }
            sums[name] = acc
        }
        return (sums, bytes)
    }

    /// The final file's metadata: the parts' shared fields, the totals, and the fingerprint an
    /// unsharded run has — the metadata a single run over all samples writes.
    static func finalMetadata(_ parts: [ShardPart], samples: Int, tokens: Int, consSum: Double, consCount: Int) -> [String: String] {
        var m = parts[0].file.metadata
        for k in perPartKeys { m[k] = nil }
        m["format"] = AttributionRunner.finalFormat
        m["samples_done"] = "\(samples)"
        m["tokens"] = "\(tokens)"
        m["conservation_sum"] = String(format: "%.17g", consSum)
        m["conservation_count"] = "\(consCount)"
        if consCount > 0 { m["conservation_mean"] = String(format: "%.6g", consSum / Double(consCount)) }
        let keys = AttributionSettings().fingerprintFields.map(\.key)
        m["fingerprint"] = AttributionSettings.fingerprint(keys.map { ($0, m[$0] ?? "") })
        return m
    }

    /// Merges checked parts (from `plan`) into `out` with the model they were made with (names
    /// and shapes; for wanda also its weights, so its sha256 is checked against the parts').
    /// Writes atomically; removes the parts afterwards unless `keepParts`.
    public static func merge(_ parts: [ShardPart], model: Model, modelPath: String, out: String,
                             keepParts: Bool = false) throws -> MergeSummary {
        let start = Date()
        let meta = parts[0].file.metadata
        var settings = try scorerSettings(meta, path: parts[0].path)
        settings.samples = parts[0].totalSamples
        if settings.method == .wanda || settings.method == .magnitude {
            // The final scores multiply the model's weights: they must be the weights the parts saw.
            let h = try SHA256.model(path: modelPath).sha256
            if h != meta["model_sha256"] {
                throw DistributedError.partsDisagree(field: "model_sha256", first: parts[0].path, firstValue: meta["model_sha256"] ?? "(missing)",
                                                     other: modelPath, otherValue: h)
            }
        }
        // Totals in shard order (integers exact; the conservation sum in the same order as the tensors).
        var tokens = 0, consSum = 0.0, consCount = 0
        for p in parts {
            let (t, overflow) = tokens.addingReportingOverflow(p.tokens)
            if overflow { throw DistributedError.badPart(path: p.path, reason: "metadata 'tokens' overflows the total") }
            tokens = t
            consSum += p.conservationSum; consCount += p.conservationCount
        }
        let samples = parts[0].totalSamples
        let addStart = Date()
        let (sums, bytes) = try addUp(parts)
        let addSeconds = Date().timeIntervalSince(addStart), writeStart = Date()
        let scorer = AttributionRunner.makeScorer(model, settings)
        try scorer.restore(SumTable(values: sums, origin: parts.map(\.path).joined(separator: " + ")), samplesDone: samples)
        let tensors = scorer.finalTensors(samples: samples, tokens: tokens)
        try StreamingSafetensors.write(tensors, metadata: finalMetadata(parts, samples: samples, tokens: tokens, consSum: consSum,
                                                                        consCount: consCount),
                                       checksum: true, to: out)
        let writeSeconds = Date().timeIntervalSince(writeStart)
        if !keepParts { for p in parts { try? FileManager.default.removeItem(atPath: p.path) } }
        return MergeSummary(parts: parts.count, samples: samples, tokens: tokens, tensorCount: tensors.count, bytesRead: bytes,
                            seconds: Date().timeIntervalSince(start), addSeconds: addSeconds, writeSeconds: writeSeconds, out: out)
    }
}
