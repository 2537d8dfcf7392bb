import Foundation

// MARK: - ByteLevelBPETokenizer loaders

extension ByteLevelBPETokenizer {
    /// Vocabulary entries treated as control tokens when loading `vocab.json` + `merges.txt`
    /// (GPT-2's `<|endoftext|>`; OPT/RoBERTa's fairseq specials).
    static let knownSpecialTokens = ["<|endoftext|>", "<s>", "</s>", "<pad>", "<unk>", "<mask>"]

    // MARK: - vocab.json + merges.txt

    /// Loads GPT-2 style `vocab.json` (a.k.a. `encoder.json`) + `merges.txt` (a.k.a. `vocab.bpe`).
    ///
    /// Vocabulary entries named `<|endoftext|>`, `<s>`, `</s>`, `<pad>`, `<unk>`, `<mask>` become
    /// atomic control tokens. BOS rules: fairseq layout (`<s>` = 0, `</s>` = 2, i.e. OPT) →
    /// BOS = EOS = 2 and `addsBOS`; otherwise BOS = EOS = `<|endoftext|>` if present, no BOS added.
    /// - Throws: `TokenizerError.fileNotFound` / `.invalidFile(path:reason:)` naming the bad file.
    public convenience init(vocabPath: String, mergesPath: String, preTokenizer: PreTokenizer = .gpt2) throws {
        let vocabData = try TokenizerFiles.read(vocabPath)
        let mergesData = try TokenizerFiles.read(mergesPath)
        let vocab: [String: Int]
        do {
            vocab = try JSONDecoder().decode([String: Int].self, from: vocabData)
        } catch {
            throw TokenizerError.invalidFile(path: vocabPath, reason: "expected a JSON object {token: id}")
        }
        let merges = try Self.parseMergesFile(mergesData, path: mergesPath)
        let added = Self.knownSpecialTokens.compactMap { t in
            vocab[t].map { AddedToken(content: t, id: $0, isControl: true) }
        }
        let d = Self.defaultSpecialIds { vocab[$0] }
        try self.init(vocab: vocab, merges: merges, addedTokens: added, preTokenizer: preTokenizer,
                      name: vocabPath, bosId: d.bos, eosId: d.eos, addsBOS: d.addsBOS)
    }

    // MARK: - tokenizer.json

    /// Loads a Hugging Face `tokenizer.json` with a byte-level BPE model.
    ///
    /// Reads `model.vocab`, `model.merges` (`"a b"` strings or `[a, b]` pairs) and `added_tokens`
    /// (`special: true` → control). A `Digits(individual_digits)` pre-tokenizer selects `.smollm`.
    /// BOS: fairseq layout → `</s>` added; a `TemplateProcessing` post-processor starting with a
    /// special token → that token added; otherwise none.
    /// - Throws: `TokenizerError.fileNotFound` / `.invalidFile(path:reason:)`.
    public convenience init(tokenizerJSONPath path: String) throws {
        let data = try TokenizerFiles.read(path)
        func bad(_ reason: String) -> TokenizerError { .invalidFile(path: path, reason: reason) }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw bad("not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw bad("missing \"model\"") }
        if let type = model["type"] as? String, type != "BPE" { throw bad("unsupported model type \(type)") }
        guard Self.containsType("ByteLevel", root["pre_tokenizer"]) || Self.containsType("ByteLevel", root["decoder"]) else {
            throw bad("not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer/decoder)")
        }
        guard let vocabAny = model["vocab"] as? [String: Any] else { throw bad("missing model.vocab") }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(vocabAny.count)
        for (tok, v) in vocabAny {
            guard let id = Self.int(v) else { throw bad("model.vocab[\(tok)] is not an integer") }
            vocab[tok] = id
        }
        var merges: [(String, String)] = []
        let mergesAny = model["merges"] as? [Any] ?? []
        merges.reserveCapacity(mergesAny.count)
        for (n, m) in mergesAny.enumerated() {
            if let s = m as? String, let pair = Self.splitMerge(s) {
                merges.append(pair)
            } else if let arr = m as? [Any], arr.count == 2, let a = arr[0] as? String, let b = arr[1] as? String {
                merges.append((a, b))
            } else {
                throw bad("model.merges[\(n)] is neither \"a b\" nor [a, b]")
            }
        }
        var added: [AddedToken] = []
        for (n, t) in ((root["added_tokens"] as? [Any]) ?? []).enumerated() {
            guard let t = t as? [String: Any], let content = t["content"] as? String, let idAny = t["id"],
                  let id = Self.int(idAny) else { throw bad("added_tokens[\(n)] lacks content/id") }
            added.append(AddedToken(content: content, id: id, isControl: (t["special"] as? Bool) ?? false))
        }
        let addedIds = Dictionary(added.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
        let lookup: (String) -> Int? = { addedIds[$0] ?? vocab[$0] }
        var d = Self.defaultSpecialIds(lookup)
        if !d.addsBOS, let bosName = Self.templateBOS(root["post_processor"]), let bos = lookup(bosName) {
            d.bos = bos; d.addsBOS = true
        }
        let pre: PreTokenizer = Self.hasIndividualDigits(root["pre_tokenizer"]) ? .smollm : .gpt2
        try self.init(vocab: vocab, merges: merges, addedTokens: added, preTokenizer: pre,
                      name: path, bosId: d.bos, eosId: d.eos, addsBOS: d.addsBOS)
    }

    // MARK: - GGUF metadata

    /// Builds the tokenizer from GGUF `tokenizer.ggml.*` arrays (model `gpt2`).
    ///
    /// Token types 3 (control) and 4 (user-defined) are matched atomically; control tokens
    /// are dropped by `decode`. `pre` selects the pre-tokenizer (`"smollm"`; anything else → GPT-2).
    /// BOS is not added by default; pass `TokenizerHints(addBOS:)` through `makeTokenizer`.
    /// - Throws: `TokenizerError.invalidFile(path: "FILE (tokenizer.ggml.*)", …)`; `file` is the .gguf
    ///   (also the tokenizer's name, so an encoding error — a missing byte token — names it and the key).
    public convenience init(ggufTokens tokens: [String], merges: [String], tokenTypes: [Int32], pre: String?,
                            file: String = "gguf") throws {
        let key = { (k: String) in "\(file) (tokenizer.ggml.\(k))" }
        guard !tokens.isEmpty else {
            throw TokenizerError.invalidFile(path: key("tokens"), reason: "empty token list")
        }
        guard tokenTypes.isEmpty || tokenTypes.count == tokens.count else {
            throw TokenizerError.invalidFile(path: key("token_type"),
                                             reason: "\(tokenTypes.count) types for \(tokens.count) tokens")
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = id }
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(merges.count)
        for (n, m) in merges.enumerated() {
            guard let pair = Self.splitMerge(m) else {
                throw TokenizerError.invalidFile(path: key("merges"), reason: "entry \(n) is not \"a b\"")
            }
            pairs.append(pair)
        }
        var added: [AddedToken] = []
        for (id, type) in tokenTypes.enumerated() where type == 3 || type == 4 {
            added.append(AddedToken(content: tokens[id], id: id, isControl: type == 3))
        }
        let d = Self.defaultSpecialIds { vocab[$0] }
        try self.init(vocab: vocab, merges: pairs, addedTokens: added, preTokenizer: PreTokenizer(ggufPre: pre),
                      name: key("tokens"), bosId: d.bos, eosId: d.eos, addsBOS: false)
    }

    // MARK: - Parsing helpers

    /// Parses `merges.txt`: an optional `#version` header, then one `a b` pair per line.
    static func parseMergesFile(_ data: Data, path: String) throws -> [(String, String)] {
        var out: [(String, String)] = []
        for (n, line) in TokenizerFiles.lines(data).enumerated() {
            if line.isEmpty { continue }
            if n == 0 && line.starts(with: Array("#version".utf8)) { continue }
            guard let pair = splitMerge(String(decoding: line, as: UTF8.self)) else {
                throw TokenizerError.invalidFile(path: path, reason: "line \(n + 1): expected \"a b\"")
            }
            out.append(pair)
        }
        return out
    }

    /// Splits `"a b"` at its single space (both parts non-empty).
    static func splitMerge(_ s: String) -> (String, String)? {
        let parts = s.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        return (String(parts[0]), String(parts[1]))
    }

    /// BOS/EOS defaults from well-known token names (see the initialisers' docs).
    static func defaultSpecialIds(_ lookup: (String) -> Int?) -> (bos: Int?, eos: Int?, addsBOS: Bool) {
        if lookup("<s>") == 0, lookup("</s>") == 2 { return (2, 2, true) }
        let bos = ["<|endoftext|>", "<|begin_of_text|>", "<s>"].lazy.compactMap(lookup).first
        let eos = ["<|endoftext|>", "<|end_of_text|>", "</s>"].lazy.compactMap(lookup).first
        return (bos, eos, false)
    }

    static func int(_ v: Any) -> Int? {
        JSONInteger.exact(v)
    }

    /// Whether a (possibly nested `Sequence`) component has `"type": type`.
    static func containsType(_ type: String, _ node: Any?) -> Bool {
        if let d = node as? [String: Any] {
            if d["type"] as? String == type { return true }
            return d.values.contains { containsType(type, $0) }
        }
        if let a = node as? [Any] { return a.contains { containsType(type, $0) } }
        return false
    }

    static func hasIndividualDigits(_ node: Any?) -> Bool {
        if let d = node as? [String: Any] {
            if d["type"] as? String == "Digits", d["individual_digits"] as? Bool == true { return true }
            return d.values.contains { hasIndividualDigits($0) }
        }
        if let a = node as? [Any] { return a.contains { hasIndividualDigits($0) } }
        return false
    }

    /// The special token a `TemplateProcessing` post-processor puts before `$A`, if any.
    static func templateBOS(_ node: Any?) -> String? {
        guard let d = node as? [String: Any] else { return nil }
        if d["type"] as? String == "TemplateProcessing" {
            guard let single = d["single"] as? [Any], let first = single.first as? [String: Any],
                  let special = first["SpecialToken"] as? [String: Any], let id = special["id"] as? String else { return nil }
            return id
        }
        for p in (d["processors"] as? [Any]) ?? [] {
            if let bos = templateBOS(p) { return bos }
        }
        return nil
    }
}
