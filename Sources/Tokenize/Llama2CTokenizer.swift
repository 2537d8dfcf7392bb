import Foundation

// MARK: - Llama2CTokenizer

/// The tokenizer of Karpathy's llama2.c (`tokenizer.bin`), re-implemented exactly.
///
/// File format (little-endian): `int32 max_token_length`, then for every token
/// `f32 score, int32 len, len bytes`. The vocabulary size is not stored: tokens are
/// read until the end of the file (or exactly `vocabSize` tokens when given).
///
/// Encoding follows `run.c`'s `encode()`: optional BOS, the dummy-prefix `" "` token,
/// one lookup per UTF-8 code point with byte fallback (`id = byte + 3`), then repeated
/// merging of the adjacent pair whose concatenation has the highest score (first pair
/// wins ties). Ids 1 and 2 are BOS and EOS.
public final class Llama2CTokenizer: Tokenizer {
    /// The file the vocabulary was read from.
    public let path: String
    /// `max_token_length` from the file header.
    public let maxTokenLength: Int
    /// Raw token bytes, indexed by id (spaces are real spaces, not `▁`).
    public let pieces: [[UInt8]]
    /// Merge scores, indexed by id.
    public let scores: [Float]
    public var vocabSize: Int { pieces.count }
    public var bosId: Int?
    public var eosId: Int?
    public var addsBOS: Bool
    public var kind: String { "llama2.c (\(vocabSize) tokens)" }

    private let lookup: [[UInt8]: Int]
    /// For byte tokens `<0xXX>`: the byte value; -1 otherwise.
    private let byteValue: [Int16]

    // MARK: - Loading

    /// Reads a llama2.c `tokenizer.bin`.
    /// - Parameters:
    ///   - vocabSize: read exactly this many tokens (the model's vocab size); nil = until EOF.
    /// - Throws: `TokenizerError.fileNotFound` / `.invalidFile(path:reason:)`.
    public convenience init(path: String, vocabSize: Int? = nil) throws {
        try self.init(data: try TokenizerFiles.read(path), name: path, vocabSize: vocabSize)
    }

    /// Parses `tokenizer.bin` bytes; `name` is used in errors and as `path`.
    public init(data: Data, name: String, vocabSize: Int? = nil) throws {
        var r = ByteReader(data, path: name)
        let maxLen = try r.int32()
        guard maxLen > 0, maxLen < 1 << 20 else {
            throw TokenizerError.invalidFile(path: name, reason: "bad max_token_length \(maxLen)")
        }
        var pieces: [[UInt8]] = [], scores: [Float] = []
        while vocabSize.map({ pieces.count < $0 }) ?? !r.isAtEnd {
            let score = try r.float32()
            let len = try r.int32()
            guard len >= 0, len <= maxLen else {
                throw TokenizerError.invalidFile(path: name, reason: "token \(pieces.count): bad length \(len)")
            }
            pieces.append(try r.take(Int(len)))
            scores.append(score)
        }
        guard pieces.count > 2 else {
            throw TokenizerError.invalidFile(path: name, reason: "only \(pieces.count) tokens")
        }
        var lookup: [[UInt8]: Int] = [:]
        lookup.reserveCapacity(pieces.count)
        var byteValue = [Int16](repeating: -1, count: pieces.count)
        for (id, p) in pieces.enumerated() {
            if lookup[p] == nil { lookup[p] = id }
            if let b = Self.parseBytePiece(p) { byteValue[id] = Int16(b) }
        }
        self.path = name
        self.maxTokenLength = Int(maxLen)
        self.pieces = pieces
        self.scores = scores
        self.lookup = lookup
        self.byteValue = byteValue
        self.bosId = 1
        self.eosId = 2
        self.addsBOS = true
    }

    // MARK: - Encode (llama2.c algorithm)

    /// Encodes exactly like llama2.c `encode(t, text, bos, eos=0, …)`.
    public func encode(_ text: String, addBOS: Bool? = nil) throws -> [Int] {
        var tokens: [Int] = []
        let bytes = Array(text.utf8)
        tokens.reserveCapacity(bytes.count + 2)
        if addBOS ?? addsBOS {
            guard let bos = bosId else { throw TokenizerError.unknownToken("BOS (no BOS id configured)") }
            tokens.append(bos)
        }
        if !bytes.isEmpty {
            guard let space = lookup[[0x20]] else { throw TokenizerError.invalidFile(path: path, reason: "no token for ' ' (needed to encode any text)") }
            tokens.append(space)
        }
        // One lookup per code point (at most 4 bytes), byte fallback otherwise.
        var buf: [UInt8] = []
        for (i, c) in bytes.enumerated() {
            if c & 0xC0 != 0x80 { buf.removeAll(keepingCapacity: true) }
            buf.append(c)
            let next: UInt8 = i + 1 < bytes.count ? bytes[i + 1] : 0
            if next & 0xC0 == 0x80 && buf.count < 4 { continue }
            if let id = lookup[buf] {
                tokens.append(id)
            } else {
                for b in buf {
                    let id = Int(b) + 3
                    guard id < vocabSize else {
                        throw TokenizerError.invalidFile(path: path, reason: "no token for the byte \(String(format: "<0x%02X>", b)) (byte fallback needs ids 3…258)")
                    }
                    tokens.append(id)
                }
            }
            buf.removeAll(keepingCapacity: true)
        }
        mergePairs(&tokens)
        return tokens
    }

    /// Greedy best-score pair merging, selecting exactly what llama2.c's full rescan selects
    /// (max score, strict `>` so the leftmost pair wins ties, floor -1e10), but in
    /// O(n log n): candidate pairs live in a heap ordered by (score desc, position asc) over a
    /// doubly linked list; stale candidates are detected by per-node version counters.
    private func mergePairs(_ tokens: inout [Int]) {
        let n = tokens.count
        guard n > 1 else { return }
        var next = Array(1...n), prev = Array(-1..<(n - 1)), version = [Int](repeating: 0, count: n)
        next[n - 1] = -1
        var alive = [Bool](repeating: true, count: n)
        var heap = PairHeap()
        func push(_ left: Int) {
            let right = next[left]
            guard right >= 0 else { return }
            let id = merged(tokens[left], tokens[right])
            guard id >= 0, scores[id] > -1e10 else { return }
            heap.push(.init(score: scores[id], left: left, right: right, merged: id,
                            leftVersion: version[left], rightVersion: version[right]))
        }
        for i in 0..<(n - 1) { push(i) }
        while let c = heap.pop() {
            guard alive[c.left], alive[c.right], next[c.left] == c.right,
                  version[c.left] == c.leftVersion, version[c.right] == c.rightVersion else { continue }
            tokens[c.left] = c.merged
            alive[c.right] = false
            let after = next[c.right]
            next[c.left] = after
            if after >= 0 { prev[after] = c.left }
            version[c.left] += 1
            if prev[c.left] >= 0 { push(prev[c.left]) }
            push(c.left)
        }
        var out: [Int] = []
        out.reserveCapacity(n)
        var i = 0
        while i >= 0 { out.append(tokens[i]); i = next[i] }
        tokens = out
    }

    private func merged(_ a: Int, _ b: Int) -> Int {
        guard a >= 0, a < pieces.count, b >= 0, b < pieces.count else { return -1 }
        return lookup[pieces[a] + pieces[b]] ?? -1
    }

    // MARK: - Decode

    /// Decodes like llama2.c: BOS/EOS are dropped, the leading space of the first piece
    /// (at the start, or right after BOS) is stripped, `<0xXX>` pieces become raw bytes.
    /// Invalid UTF-8 is replaced (lossy).
    public func decode(_ ids: [Int]) -> String {
        var out: [UInt8] = []
        var prev: Int? = nil
        for id in ids {
            defer { prev = id }
            guard id >= 0, id < pieces.count, id != bosId, id != eosId else { continue }
            if byteValue[id] >= 0 {
                out.append(UInt8(byteValue[id]))
                continue
            }
            var piece = pieces[id][...]
            if (prev == nil || prev == bosId), piece.first == 0x20 { piece = piece.dropFirst() }
            out.append(contentsOf: piece)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The piece text for display: BOS/EOS without their surrounding newlines (`<s>`, `</s>`), byte tokens as `<0xXX>`,
    /// other pieces verbatim (spaces included; invalid UTF-8 replaced).
    public func tokenText(_ id: Int) -> String {
        guard id >= 0, id < pieces.count else { return "" }
        let text = String(decoding: pieces[id], as: UTF8.self)
        return id == bosId || id == eosId ? text.trimmingCharacters(in: .newlines) : text
    }

    /// Parses `<0xXX>` (llama2.c's `sscanf(piece, "<0x%02hhX>")`).
    static func parseBytePiece(_ p: [UInt8]) -> UInt8? {
        guard p.count == 6, p[0] == 0x3C, p[1] == 0x30, p[2] == 0x78, p[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        guard let h = hex(p[3]), let l = hex(p[4]) else { return nil }
        return h << 4 | l
    }
}

// MARK: - Merge candidate heap

/// Binary max-heap of merge candidates: higher score first, then smaller (leftmost) position.
private struct PairHeap {
    struct Candidate {
        var score: Float
        var left: Int, right: Int, merged: Int
        var leftVersion: Int, rightVersion: Int
    }

    private var items: [Candidate] = []

    private static func before(_ a: Candidate, _ b: Candidate) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }

    mutating func push(_ c: Candidate) {
        items.append(c)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.before(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < items.count && Self.before(items[l], items[best]) { best = l }
                if r < items.count && Self.before(items[r], items[best]) { best = r }
                if best == i { break }
                items.swapAt(i, best)
                i = best
            }
        }
        return top
    }
}
