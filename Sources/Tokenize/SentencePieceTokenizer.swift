import CSentencePiece
import Foundation

// MARK: - SentencePieceTokenizer

/// A SentencePiece `.model` tokenizer (Llama, TinyStories) backed by libsentencepiece
/// through the `CSentencePiece` C-ABI shim.
///
/// * `encode` prepends BOS by default (the Llama rule); pass `addBOS: false` to skip it.
/// * `decode` drops control tokens (`<s>`, `</s>`, …) and ids out of range.
/// * `tokenText` shows the piece with `▁` (U+2581) rendered as a space.
///
/// Normalisation is whatever the model's NormalizerSpec says, so `decode(encode(x)) == x`
/// only holds when that spec is identity-like (e.g. Llama 2). Models trained with
/// `remove_extra_whitespaces` (e.g. `tok512.model`) collapse space runs and trim ends.
public final class SentencePieceTokenizer: Tokenizer {
    /// The file the model was loaded from (or a caller-supplied name for in-memory models).
    public let path: String
    public let vocabSize: Int
    public var bosId: Int?
    public var eosId: Int?
    /// The `<unk>` id, if the model has one.
    public let unkId: Int?
    public var addsBOS: Bool
    public var kind: String { "sentencepiece (\(vocabSize) pieces)" }

    private let handle: OpaquePointer
    private let pieces: [String]
    private let controlFlags: [Bool]
    private let byteFlags: [Bool]

    // MARK: - Loading

    /// Loads a SentencePiece `.model` file.
    /// - Throws: `TokenizerError.fileNotFound` if the file is missing,
    ///   `TokenizerError.sentencePiece(path:message:)` if libsentencepiece rejects it.
    public convenience init(path: String, addsBOS: Bool = true) throws {
        // Read here (not by libsentencepiece from the path) so a FIFO or device is refused
        // instead of blocking, and the size is bounded (TokenizerFiles.read).
        let data = try TokenizerFiles.read(path)
        try self.init(modelData: data, name: path, addsBOS: addsBOS)
    }

    /// Loads a serialized SentencePiece ModelProto from memory (e.g. embedded in a checkpoint).
    /// - Parameter name: used in error messages and `path`.
    public convenience init(modelData: Data, name: String = "<memory>", addsBOS: Bool = true) throws {
        var err = [CChar](repeating: 0, count: 1024)
        let cap = err.count
        let h: OpaquePointer? = modelData.withUnsafeBytes { raw in
            spm_load_from_bytes(raw.baseAddress, raw.count, &err, cap)
        }
        guard let h else {
            throw TokenizerError.sentencePiece(path: name, message: Self.message(err))
        }
        self.init(handle: h, path: name, addsBOS: addsBOS)
    }

    /// Takes ownership of a loaded handle. Non-throwing, so `deinit` is the only place that frees it.
    private init(handle: OpaquePointer, path: String, addsBOS: Bool) {
        let n = Int(max(0, spm_piece_count(handle)))
        var pieces: [String] = []
        var control: [Bool] = []
        var bytes: [Bool] = []
        pieces.reserveCapacity(n)
        var buf = [CChar](repeating: 0, count: 256)
        for id in 0..<n {
            pieces.append(Self.piece(handle, Int32(id), &buf) ?? "")
            control.append(spm_is_control(handle, Int32(id)))
            bytes.append(spm_is_byte(handle, Int32(id)))
        }
        self.handle = handle
        self.path = path
        self.vocabSize = n
        self.pieces = pieces
        self.controlFlags = control
        self.byteFlags = bytes
        let bos = Int(spm_bos_id(handle)), eos = Int(spm_eos_id(handle)), unk = Int(spm_unk_id(handle))
        self.bosId = (0..<n).contains(bos) ? bos : nil
        self.eosId = (0..<n).contains(eos) ? eos : nil
        self.unkId = (0..<n).contains(unk) ? unk : nil
        self.addsBOS = addsBOS
    }

    deinit { spm_free(handle) }

    // MARK: - Tokenizer

    /// Encodes with libsentencepiece, then prepends BOS if requested (`addBOS ?? addsBOS`).
    public func encode(_ text: String, addBOS: Bool? = nil) throws -> [Int] {
        var utf8 = Array(text.utf8)
        var ids = [Int32](repeating: 0, count: utf8.count + 8)
        var err = [CChar](repeating: 0, count: 512)
        var total: Int64 = 0
        for _ in 0..<2 {
            let cap = ids.count, errCap = err.count
            total = utf8.withUnsafeMutableBytes { raw in
                spm_encode(handle, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count,
                           &ids, cap, &err, errCap)
            }
            if total < 0 { throw TokenizerError.sentencePiece(path: path, message: Self.message(err)) }
            if Int(total) <= ids.count { break }
            ids = [Int32](repeating: 0, count: Int(total))
        }
        var out: [Int] = []
        out.reserveCapacity(Int(total) + 1)
        if addBOS ?? addsBOS {
            guard let bos = bosId else { throw TokenizerError.unknownToken("BOS (no BOS id configured)") }
            out.append(bos)
        }
        for i in 0..<min(Int(total), ids.count) { out.append(Int(ids[i])) }
        return out
    }

    /// Decodes with libsentencepiece after dropping control tokens and out-of-range ids.
    public func decode(_ ids: [Int]) -> String {
        let kept = ids.compactMap { id -> Int32? in
            guard id >= 0, id < vocabSize, !controlFlags[id] else { return nil }
            return Int32(id)
        }
        if kept.isEmpty { return "" }
        var out = [CChar](repeating: 0, count: kept.count * 8 + 16)
        var err = [CChar](repeating: 0, count: 512)
        for _ in 0..<2 {
            let cap = out.count, errCap = err.count
            let total = spm_decode(handle, kept, kept.count, &out, cap, &err, errCap)
            if total < 0 { break }
            if Int(total) <= out.count {
                return String(decoding: out.prefix(Int(total)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            out = [CChar](repeating: 0, count: Int(total))
        }
        // Fallback (should not happen): concatenate display pieces.
        return kept.map { tokenText(Int($0)) }.joined()
    }

    /// The piece of `id` with `▁` shown as a space; `""` for ids out of range.
    public func tokenText(_ id: Int) -> String {
        guard let p = piece(id) else { return "" }
        return p.replacingOccurrences(of: "\u{2581}", with: " ")
    }

    // MARK: - Piece queries

    /// The raw piece string of `id` (with `▁`), or nil if out of range.
    public func piece(_ id: Int) -> String? {
        guard id >= 0, id < pieces.count else { return nil }
        return pieces[id]
    }

    /// The id of a raw piece (with `▁`), or nil if the piece is not in the vocabulary.
    public func pieceToId(_ piece: String) -> Int? {
        var bytes = Array(piece.utf8)
        let id = bytes.withUnsafeMutableBytes { raw in
            spm_piece_to_id(handle, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
        }
        guard id >= 0, Int(id) < vocabSize else { return nil }
        if let unk = unkId, Int(id) == unk, piece != pieces[unk] { return nil }
        return Int(id)
    }

    /// The model score (log-probability for unigram, merge priority for BPE) of `id`.
    public func score(_ id: Int) -> Float {
        guard id >= 0, id < vocabSize else { return 0 }
        return spm_score(handle, Int32(id))
    }

    /// Whether `id` is a control token (`<s>`, `</s>`, …).
    public func isControl(_ id: Int) -> Bool { id >= 0 && id < vocabSize && controlFlags[id] }

    /// Whether `id` is a byte-fallback token (`<0xXX>`).
    public func isByte(_ id: Int) -> Bool { id >= 0 && id < vocabSize && byteFlags[id] }

    // MARK: - Helpers

    static func message(_ buf: [CChar]) -> String {
        let s = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // libsentencepiece echoes raw bytes from the model (e.g. "byte piece <\\xff\\x7f"):
        // escape and bound them so a corrupt model cannot write control bytes to the terminal.
        return s.isEmpty ? "unknown error" : QuotedName.safe(s, limit: 200)
    }

    private static func piece(_ h: OpaquePointer, _ id: Int32, _ buf: inout [CChar]) -> String? {
        var n = spm_id_to_piece(h, id, &buf, buf.count)
        if n < 0 { return nil }
        if Int(n) > buf.count {
            buf = [CChar](repeating: 0, count: Int(n))
            n = spm_id_to_piece(h, id, &buf, buf.count)
            if n < 0 { return nil }
        }
        return String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
