import Foundation

// MARK: - ByteLevelBPETokenizer

/// GPT-2 style byte-level BPE (GPT-2, OPT, SmolLM2, …), written by hand.
///
/// Pipeline: special/added tokens are matched atomically (leftmost, longest) → the rest
/// is split by the GPT-2 pre-tokenizer (or the SmolLM digit-splitting variant) → each
/// word's UTF-8 bytes are mapped through GPT-2's byte↔unicode table and merged by rank.
/// Results per word are cached. `decode` maps tokens back to bytes, then UTF-8 (lossy).
///
/// Loading constructors live in `ByteLevelBPELoading.swift`.
public final class ByteLevelBPETokenizer: Tokenizer {
    /// Which pre-tokenizer splits text into words before BPE.
    public enum PreTokenizer: String, Sendable {
        /// The GPT-2 regex.
        case gpt2
        /// llama.cpp `LLAMA_VOCAB_PRE_TYPE_SMOLLM` / HF `Digits(individual_digits)` + ByteLevel:
        /// every `\p{N}` scalar is its own word, then the GPT-2 regex.
        case smollm

        /// Maps GGUF `tokenizer.ggml.pre`; unknown or nil values fall back to `.gpt2`.
        public init(ggufPre: String?) {
            self = ggufPre?.lowercased() == "smollm" ? .smollm : .gpt2
        }
    }

    /// A token matched atomically before pre-tokenization (HF `added_tokens`, GGUF types 3/4).
    public struct AddedToken: Sendable, Equatable {
        public var content: String
        public var id: Int
        /// Control/special tokens are dropped by `decode`; user-defined ones are kept.
        public var isControl: Bool
        public init(content: String, id: Int, isControl: Bool) {
            self.content = content; self.id = id; self.isControl = isControl
        }
    }

    /// Source description used in errors and `kind`.
    public let name: String
    public let preTokenizer: PreTokenizer
    public let vocabSize: Int
    public var bosId: Int?
    public var eosId: Int?
    public var addsBOS: Bool
    /// The added/special tokens, in match-priority order (longest first).
    public let addedTokens: [AddedToken]
    public var kind: String { "byte-level BPE (\(vocabSize) tokens, \(preTokenizer.rawValue))" }

    private let tokenToId: [String: Int]
    let idToToken: [String?]
    private let idBytes: [[UInt8]]
    let isControlId: [Bool]
    private let byteToId: [Int32]
    /// (left << 32 | right) -> (rank << 32 | merged id)
    let merges: [UInt64: UInt64]
    /// For each first byte: indices into `addedTokens` (longest first).
    private let addedByFirstByte: [[Int]]
    private let addedBytes: [[UInt8]]
    private let scanner: PreTokenizerScanner
    private var cache: [[UInt8]: [Int32]] = [:]
    private let cacheLock = NSLock()
    private static let cacheLimit = 200_000

    // MARK: - Designated initialiser

    /// Builds a tokenizer from a byte-level vocabulary (token strings use GPT-2's
    /// byte↔unicode alphabet, e.g. `Ġthe`) and merges in rank order.
    /// Merges whose parts or result are not in the vocabulary are ignored.
    /// - Throws: `TokenizerError.invalidFile(path: name, …)` if the vocabulary is empty or ids are negative.
    public init(vocab: [String: Int], merges: [(String, String)], addedTokens: [AddedToken] = [],
                preTokenizer: PreTokenizer = .gpt2, name: String = "<memory>",
                bosId: Int? = nil, eosId: Int? = nil, addsBOS: Bool = false) throws {
        guard !vocab.isEmpty else { throw TokenizerError.invalidFile(path: name, reason: "empty vocabulary") }
        var maxId = -1
        for (_, id) in vocab {
            guard id >= 0 else { throw TokenizerError.invalidFile(path: name, reason: "negative token id \(id)") }
            maxId = max(maxId, id)
        }
        for t in addedTokens {
            guard t.id >= 0 else { throw TokenizerError.invalidFile(path: name, reason: "negative added token id \(t.id)") }
            maxId = max(maxId, t.id)
        }
        // Tables below are sized by the largest id, which is file data: bound it by what the file
        // holds (ids of a real vocabulary are dense) and by the model-side vocabulary limit, so a
        // stray id of 2^30 is an error rather than a 30 GB allocation.
        let entries = vocab.count + addedTokens.count
        guard maxId < 1 << 24, maxId < 4 * entries + 1024 else {
            throw TokenizerError.invalidFile(path: name, reason: "token id \(maxId) is implausible for a vocabulary of \(entries) entries")
        }
        let size = maxId + 1

        var tokenToId = vocab
        var idToToken = [String?](repeating: nil, count: size)
        for (tok, id) in vocab {
            if let current = idToToken[id], current <= tok { continue }  // duplicate ids: keep the smallest spelling
            idToToken[id] = tok
        }
        var isControl = [Bool](repeating: false, count: size)
        var isAdded = [Bool](repeating: false, count: size)
        for t in addedTokens {
            tokenToId[t.content] = t.id
            idToToken[t.id] = t.content
            isControl[t.id] = t.isControl
            isAdded[t.id] = true
        }
        var idBytes = [[UInt8]](repeating: [], count: size)
        for id in 0..<size {
            guard let tok = idToToken[id] else { continue }
            idBytes[id] = isAdded[id] ? Array(tok.utf8) : ByteUnicode.decode(tok)
        }
        var byteToId = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let s = ByteUnicode.encode([UInt8(b)])
            if let id = vocab[s] { byteToId[b] = Int32(id) }
        }
        var mergeTable: [UInt64: UInt64] = [:]
        mergeTable.reserveCapacity(merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b], let im = vocab[a + b] else { continue }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if mergeTable[key] == nil { mergeTable[key] = UInt64(rank) << 32 | UInt64(im) }
        }
        let sortedAdded = addedTokens.filter { !$0.content.isEmpty }
            .sorted { $0.content.utf8.count > $1.content.utf8.count }
        var byFirst = [[Int]](repeating: [], count: 256)
        for (k, t) in sortedAdded.enumerated() {
            if let f = t.content.utf8.first { byFirst[Int(f)].append(k) }
        }

        self.name = name
        self.preTokenizer = preTokenizer
        self.vocabSize = size
        self.tokenToId = tokenToId
        self.idToToken = idToToken
        self.idBytes = idBytes
        self.isControlId = isControl
        self.byteToId = byteToId
        self.merges = mergeTable
        self.addedTokens = sortedAdded
        self.addedBytes = sortedAdded.map { Array($0.content.utf8) }
        self.addedByFirstByte = byFirst
        self.scanner = PreTokenizerScanner(smollm: preTokenizer == .smollm)
        self.bosId = bosId
        self.eosId = eosId
        self.addsBOS = addsBOS
    }

    // MARK: - Encode

    /// Encodes `text`; BOS is prepended when `addBOS ?? addsBOS`.
    /// - Throws: `TokenizerError.unknownToken` if a byte has no token or BOS is requested but unknown.
    public func encode(_ text: String, addBOS: Bool? = nil) throws -> [Int] {
        var out: [Int] = []
        if addBOS ?? addsBOS {
            guard let bos = bosId else { throw TokenizerError.unknownToken("BOS (no BOS id configured)") }
            out.append(bos)
        }
        let bytes = Array(text.utf8)
        out.reserveCapacity(out.count + bytes.count / 3 + 4)
        var failure: TokenizerError? = nil
        bytes.withUnsafeBufferPointer { buf in
            var segStart = 0, i = 0
            let n = buf.count
            func flush(_ end: Int) {
                guard segStart < end, failure == nil else { return }
                scanner.split(buf, segStart..<end) { a, b in
                    guard failure == nil else { return }
                    do { try appendWord(UnsafeBufferPointer(rebasing: buf[a..<b]), to: &out) } catch {
                        failure = error as? TokenizerError ?? .unknownToken("?")
                    }
                }
            }
            while i < n {
                let candidates = addedByFirstByte[Int(buf[i])]
                if !candidates.isEmpty, let k = matchAdded(buf, i, candidates) {
                    flush(i)
                    out.append(addedTokens[k].id)
                    i += addedBytes[k].count
                    segStart = i
                } else {
                    i += 1
                }
            }
            flush(n)
        }
        if let failure { throw failure }
        return out
    }

    private func matchAdded(_ buf: UnsafeBufferPointer<UInt8>, _ i: Int, _ candidates: [Int]) -> Int? {
        outer: for k in candidates {
            let t = addedBytes[k]
            guard i + t.count <= buf.count else { continue }
            for j in 1..<t.count where buf[i + j] != t[j] { continue outer }
            return k
        }
        return nil
    }

    private func appendWord(_ word: UnsafeBufferPointer<UInt8>, to out: inout [Int]) throws {
        let key = Array(word)
        cacheLock.lock()
        let hit = cache[key]
        cacheLock.unlock()
        if let hit {
            for id in hit { out.append(Int(id)) }
            return
        }
        let ids = try bpe(key)
        cacheLock.lock()
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = ids
        cacheLock.unlock()
        for id in ids { out.append(Int(id)) }
    }

    /// Rank-ordered BPE over one word: repeatedly merge every occurrence of the
    /// lowest-rank adjacent pair (GPT-2 `bpe()`; equivalent to HF's merge queue).
    private func bpe(_ word: [UInt8]) throws -> [Int32] {
        var ids = [Int32]()
        ids.reserveCapacity(word.count)
        for b in word {
            let id = byteToId[Int(b)]
            guard id >= 0 else {
                throw TokenizerError.invalidFile(path: name, reason: "no token for the byte \(String(format: "<0x%02X>", b)) ('\(ByteUnicode.encode([b]))'); a byte-level vocabulary needs all 256")
            }
            ids.append(id)
        }
        while ids.count > 1 {
            var bestRank = UInt64.max, bestKey: UInt64 = 0, bestMerged: Int32 = 0
            for i in 0..<(ids.count - 1) {
                let key = UInt64(UInt32(bitPattern: ids[i])) << 32 | UInt64(UInt32(bitPattern: ids[i + 1]))
                if let v = merges[key], v >> 32 < bestRank {
                    bestRank = v >> 32; bestKey = key; bestMerged = Int32(truncatingIfNeeded: v & 0xFFFF_FFFF)
                }
            }
            if bestRank == UInt64.max { break }
            let a = Int32(truncatingIfNeeded: bestKey >> 32), b = Int32(truncatingIfNeeded: bestKey & 0xFFFF_FFFF)
            var merged = [Int32]()
            merged.reserveCapacity(ids.count)
            var i = 0
            while i < ids.count {
                if i + 1 < ids.count && ids[i] == a && ids[i + 1] == b {
                    merged.append(bestMerged); i += 2
                } else {
                    merged.append(ids[i]); i += 1
                }
            }
            ids = merged
        }
        return ids
    }

    // MARK: - Decode

    /// Maps tokens back to bytes and decodes UTF-8 (invalid sequences become U+FFFD).
    /// Control tokens and ids out of range are dropped; user-defined added tokens are kept.
    public func decode(_ ids: [Int]) -> String {
        var out: [UInt8] = []
        for id in ids where id >= 0 && id < vocabSize && !isControlId[id] {
            out.append(contentsOf: idBytes[id])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The token's text: its bytes as UTF-8 (lossy for partial characters), or the added token's content.
    public func tokenText(_ id: Int) -> String {
        guard id >= 0, id < vocabSize else { return "" }
        return String(decoding: idBytes[id], as: UTF8.self)
    }

    // MARK: - Vocabulary queries

    /// The id of a vocabulary entry (byte-level spelling, e.g. `Ġthe`) or added token.
    public func tokenId(_ token: String) -> Int? { tokenToId[token] }

    /// The vocabulary spelling of `id` (e.g. `Ġthe`), or nil.
    public func token(_ id: Int) -> String? { id >= 0 && id < vocabSize ? idToToken[id] : nil }

    /// The raw bytes `id` stands for.
    public func tokenBytes(_ id: Int) -> [UInt8] { id >= 0 && id < vocabSize ? idBytes[id] : [] }

    /// Whether `id` is a control token (dropped by `decode`).
    public func isControl(_ id: Int) -> Bool { id >= 0 && id < vocabSize && isControlId[id] }
}
