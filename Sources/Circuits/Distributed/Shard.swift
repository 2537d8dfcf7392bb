import Foundation

// MARK: - A deterministic partition of the sample set
//
// Shard K of N takes the contiguous samples [⌊K·S/N⌋, ⌊(K+1)·S/N⌋) of the S samples the run
// draws (prompt lines in file order, corpus windows in draw order). The samples themselves
// do not depend on N (the corpus windows are drawn from the seed for all S, then cut), so the
// N shards together hold each sample exactly once, and shard sizes differ by at most one.

/// Shard `index` of `count` (`--shard K/N`, or MPI rank/size).
public struct Shard: Equatable, Sendable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    /// 0 ≤ index < count.
    public init(index: Int, count: Int) throws {
        guard count >= 1 else { throw DistributedError.badShard(spec: "\(index)/\(count)", reason: "N must be at least 1") }
        guard index >= 0, index < count else {
            throw DistributedError.badShard(spec: "\(index)/\(count)", reason: "K must be in 0..<N (shards are numbered from 0)")
        }
        self.index = index; self.count = count
    }

    /// Parses "K/N".
    public init(parsing spec: String) throws {
        let parts = spec.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            throw DistributedError.badShard(spec: spec, reason: "expected K/N, two integers, e.g. 0/4")
        }
        try self.init(index: k, count: n)
    }

    /// "K/N".
    public var description: String { "\(index)/\(count)" }

    /// The sample indices this shard takes out of `total`. Overflow-checked: `index · total` fits
    /// whenever `total` fits in 32 bits, which sample counts do.
    public func range(of total: Int) -> Range<Int> {
        precondition(total >= 0 && total <= Int(Int32.max), "sample count \(total)")
        return (index * total / count)..<((index + 1) * total / count)
    }

    /// "lo-hi" (inclusive, as recorded in a part's metadata), or "none" for an empty shard.
    public static func text(_ r: Range<Int>) -> String { r.isEmpty ? "none" : "\(r.lowerBound)-\(r.upperBound - 1)" }
}

/// The parts of one sharded job checked as a set (attribute parts, evaluation parts): every field agrees,
/// one shard count N, shards 0..<N each exactly once.
public enum ShardSet {
    /// Returns the parts in shard order. `keys` are compared first, in that order, then every other field
    /// (sorted), so the first disagreement reported is the most telling one; `missing` makes the error for
    /// shards not given (naming what they hold).
    public static func ordered<P>(_ parts: [P], path: (P) -> String, shard: (P) throws -> Shard,
                                  fields: (P) throws -> [String: String], keys: [String] = [],
                                  missing: ([Shard]) throws -> Error) throws -> [P] {
        precondition(!parts.isEmpty)
        let f = try parts.map(fields), s = try parts.map(shard)
        let all = keys + Set(f.flatMap(\.keys)).subtracting(keys).sorted()
        for i in parts.indices.dropFirst() {
            for k in all where f[0][k] != f[i][k] {
                throw DistributedError.partsDisagree(field: k, first: path(parts[0]), firstValue: f[0][k] ?? "(missing)",
                                                     other: path(parts[i]), otherValue: f[i][k] ?? "(missing)")
            }
            if s[i].count != s[0].count {
                throw DistributedError.partsDisagree(field: "shard count N", first: path(parts[0]), firstValue: "\(s[0])",
                                                     other: path(parts[i]), otherValue: "\(s[i])")
            }
        }
        let n = s[0].count
        var byIndex: [Int: Int] = [:]          // shard index → part (a dictionary: N comes from a file)
        for i in parts.indices {
            if let q = byIndex[s[i].index] { throw DistributedError.duplicateShard(shard: "\(s[i])", first: path(parts[q]), second: path(parts[i])) }
            byIndex[s[i].index] = i
        }
        // At most 20 missing shards are named (N comes from a file and may be huge).
        let absent = try (0..<n).lazy.filter { byIndex[$0] == nil }.prefix(20).map { try Shard(index: $0, count: n) }
        if !absent.isEmpty { throw try missing(Array(absent)) }
        return (0..<n).map { parts[byIndex[$0]!] }
    }
}

/// JSON parts (`evaluate --shard`, `circuit --shard`): reading, writing, and the fields parts must agree on.
public enum JSONPart {
    static func encoder(_ pretty: Bool) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    public static func json<T: Encodable>(_ value: T) throws -> Data { try encoder(true).encode(value) }

    /// Decodes a part, first checking its "format" (a report, another command's part or any other JSON is named as such).
    public static func read<T: Decodable>(_ path: String, format: String, as: T.Type) throws -> T {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw DistributedError.badPart(path: path, reason: error.localizedDescription)
        }
        let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        guard let o, (o["format"] as? String) == format else {
            throw DistributedError.notAJSONPart(path: path, format: (o?["format"] as? String) ?? "missing", expected: format)
        }
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return try d.decode(T.self, from: data) } catch {
            throw DistributedError.badPart(path: path, reason: "not a complete \(format) (\(error.localizedDescription))")
        }
    }

    /// Every top-level field (and every field of the object `flattening`, as "name.field") as canonical JSON text,
    /// except `excluding`: what two parts of one job must hold alike.
    public static func fields<T: Encodable>(_ value: T, flattening: String? = nil, excluding: Set<String>) throws -> [String: String] {
        guard var o = try JSONSerialization.jsonObject(with: try encoder(false).encode(value)) as? [String: Any] else { return [:] }
        if let name = flattening { for (k, v) in (o.removeValue(forKey: name) as? [String: Any]) ?? [:] { o[name + "." + k] = v } }
        var f: [String: String] = [:]
        for (k, v) in o where !excluding.contains(k) {
            let d = try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
            f[k] = String(decoding: d, as: UTF8.self)
        }
        return f
    }
}

/// A JSON part of a sharded command: its format name and its "K/N".
public protocol JSONShardPart: Codable {
    static var formatName: String { get }
    var shard: String { get }
}

extension JSONShardPart {
    func parsedShard(_ path: String) throws -> Shard {
        do { return try Shard(parsing: shard) } catch let e as DistributedError {
            throw DistributedError.badPart(path: path, reason: "'shard': \(e.localizedDescription)")
        }
    }

    /// The part at `path` (its format checked) and its shard.
    static func readPart(_ path: String) throws -> (Self, Shard) {
        let p = try JSONPart.read(path, format: formatName, as: Self.self)
        return (p, try p.parsedShard(path))
    }
}
