import Foundation
import Tokenize
import Transformer

// The pruned checkpoint carries the tokenizer of its source model; a GGUF source
// has its vocabulary in metadata, exported here as an HF tokenizer.json.
extension CheckpointWriter {

    func writeTokenizerFiles(into dir: String) throws {
        let fm = FileManager.default
        func copy(_ from: String, _ to: String) throws {
            // Inputs are regular files (a FIFO would block the copy, a device never end).
            do { try InputFile.requireRegular(from) } catch let e as InputFileError { throw ModelError(e) }
            do { try fm.copyItem(atPath: from, toPath: dir + "/" + to) } catch {
                throw CheckpointWriteError.cannotWrite(path: dir + "/" + to, reason: error.localizedDescription)
            }
        }
        if source.isHFDirectory {
            for f in Self.hfTokenizerFiles where fm.fileExists(atPath: source.path + "/" + f) { try copy(source.path + "/" + f, f) }
            return
        }
        switch source.tokenizer {
        case .ggufBPE(let tokens, let merges, let types, let pre, _)?:
            try writeFile(try Self.tokenizerJSON(tokens: tokens, merges: merges, tokenTypes: types, pre: pre), dir + "/tokenizer.json")
            var cfg: [String: Any] = ["add_bos_token": source.addBOS ?? false, "add_eos_token": false,
                                      "model_max_length": source.config.maxSeqLen, "tokenizer_class": "GPT2Tokenizer",
                                      "clean_up_tokenization_spaces": false]
            if let b = source.config.bosTokenId, tokens.indices.contains(b) { cfg["bos_token"] = tokens[b] }
            if let e = source.config.eosTokenId, tokens.indices.contains(e) { cfg["eos_token"] = tokens[e] }
            try writeFile(try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys]),
                          dir + "/tokenizer_config.json")
        case .sentencePiece(let path)?:
            try copy(path, "tokenizer.model")
            let cfg: [String: Any] = ["tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                      "add_bos_token": source.addBOS ?? true, "add_eos_token": false,
                                      "model_max_length": source.config.maxSeqLen, "clean_up_tokenization_spaces": false]
            try writeFile(try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys]),
                          dir + "/tokenizer_config.json")
        case .llama2c(let path)?:
            // Only the tokenizer the input actually used: copying a tokenizer.model as well would make
            // the HF loader prefer it (SentencePiece) and could change tokenization.
            try copy(path, "tokenizer.bin")
        case .tokenizerJSON(let path)?:
            try copy(path, "tokenizer.json")
        case .vocabMerges(let vocab, let merges)?:
            try copy(vocab, "vocab.json"); try copy(merges, "merges.txt")
        case nil:
            break
        }
    }

    /// A byte-level BPE `tokenizer.json` from GGUF `tokenizer.ggml.*` arrays: model.vocab /
    /// model.merges, added_tokens for control (type 3, special) and user-defined (type 4) tokens,
    /// pre-tokenizer Sequence[Digits(individual_digits), ByteLevel] for pre = "smollm" (SmolLM2's
    /// own tokenizer.json) else ByteLevel, ByteLevel decoder and post-processor.
    /// The ~100k-entry vocab and merges are emitted by hand (vocab in id order, as HF writes it):
    /// JSONSerialization takes seconds on them on Linux.
    public static func tokenizerJSON(tokens: [String], merges: [String], tokenTypes: [Int32], pre: String?) throws -> Data {
        var added: [[String: Any]] = []
        for (id, type) in tokenTypes.enumerated() where (type == 3 || type == 4) && id < tokens.count {
            added.append(["id": id, "content": tokens[id], "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": type == 4, "special": type == 3])
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let preTok: [String: Any] = pre?.lowercased() == "smollm"
            ? ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
            : byteLevel
        func small(_ v: Any) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
        }
        var out = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
        out += "\"added_tokens\":\(try small(added)),\"normalizer\":null,\"pre_tokenizer\":\(try small(preTok)),"
        out += "\"post_processor\":\(try small(["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true])),"
        out += "\"decoder\":\(try small(["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true])),"
        out += "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
        out += "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{"
        var seen = Set<String>()
        var first = true
        for (id, t) in tokens.enumerated() where seen.insert(t).inserted {      // first id wins, as the GGUF loader does
            if !first { out += "," }
            first = false
            out += JSONText.quote(t) + ":" + String(id)
        }
        out += "},\"merges\":[" + merges.map(JSONText.quote).joined(separator: ",") + "]}}"
        return Data(out.utf8)
    }
}
