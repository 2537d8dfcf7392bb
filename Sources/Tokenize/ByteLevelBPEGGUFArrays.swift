import Foundation

// The `tokenizer.ggml.*` arrays llama.cpp's convert_hf_to_gguf.py writes for a byte-level BPE
// (`get_vocab_base`, model "gpt2"), from a tokenizer loaded from HF files — so a GGUF made from an
// HF directory (`workbench quantize`) carries a tokenizer llama.cpp and our GGUF loader can build.
//   tokens      by id; ids the files do not define (up to the model's vocabulary) → "[PAD<id>]"
//   token_type  1 normal, 3 control (special added token), 4 user-defined (other added token),
//               5 unused (the padding)
//   merges      "a b" in rank order (merges whose parts or result are not in the vocabulary are
//               not kept by the tokenizer, so not written: they can never apply)
//   pre         "smollm" for HF Digits(individual_digits) + ByteLevel, else "gpt-2" — the two
//               pre-tokenizers this tokenizer implements (llama.cpp's names).

extension ByteLevelBPETokenizer {
    public struct GGUFArrays: Equatable {
        public var tokens: [String]
        public var tokenTypes: [Int32]
        public var merges: [String]
        public var pre: String
    }

    /// The arrays, padded to `vocabularySize` entries (the model's; at least the tokenizer's own size).
    public func ggufArrays(vocabularySize: Int) -> GGUFArrays {
        let n = Swift.max(vocabularySize, idToToken.count)
        var tokens = [String](), types = [Int32]()
        tokens.reserveCapacity(n); types.reserveCapacity(n)
        let added = Dictionary(addedTokens.map { ($0.id, $0.isControl) }, uniquingKeysWith: { a, _ in a })
        for id in 0..<n {
            if id < idToToken.count, let t = idToToken[id] {
                tokens.append(t)
                types.append(added[id].map { $0 ? 3 : 4 } ?? 1)
            } else {
                tokens.append("[PAD\(id)]"); types.append(5)
            }
        }
        let merges = self.merges.sorted { $0.value >> 32 < $1.value >> 32 }.compactMap { kv -> String? in
            let a = Int(kv.key >> 32), b = Int(kv.key & 0xFFFF_FFFF)
            guard let ta = idToToken[a], let tb = idToToken[b] else { return nil }
            return ta + " " + tb
        }
        return GGUFArrays(tokens: tokens, tokenTypes: types, merges: merges, pre: preTokenizer == .smollm ? "smollm" : "gpt-2")
    }
}
