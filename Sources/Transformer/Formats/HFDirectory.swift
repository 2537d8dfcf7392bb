import Foundation
import Tokenize

// MARK: - HF directory (config.json + safetensors, single or sharded)

extension ModelLoader {

    static func loadHFDirectory(_ dir: String) throws -> Checkpoint {
        let configPath = dir + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw ModelError.unknownFormat(path: dir)
        }
        let config = try decodeConfig(data, file: configPath)
        // Weights: sharded index first, then model.safetensors.
        var tensors: [String: Tensor] = [:]
        var dtypes: [String: Int] = [:]
        let index = dir + "/model.safetensors.index.json"
        var files: [String] = []
        if FileManager.default.fileExists(atPath: index) {
            guard let d = FileManager.default.contents(atPath: index),
                  let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String]
            else { throw ModelError.badConfig(file: index, key: "weight_map", reason: "missing or not an object of strings") }
            files = Array(Set(map.values)).sorted().map { dir + "/" + $0 }
        } else if FileManager.default.fileExists(atPath: dir + "/model.safetensors") {
            files = [dir + "/model.safetensors"]
        } else {
            throw ModelError.fileNotFound(path: dir + "/model.safetensors")
        }
        for f in files {
            let st = try SafetensorsFile(path: f)
            for name in st.names {
                guard let e = st.entries[name] else { continue }
                if name == "model.decoder.embed_positions.weight" || name.hasSuffix(".weight") || name.hasSuffix(".bias") {
                    // An integer `.weight`/`.bias` is a wrong dtype: tensor() reports it by name.
                    tensors[name] = try st.tensor(name)
                    dtypes[e.dtype.rawValue, default: 0] += 1
                }
            }
            try SparseBitmask.decodeAll(st, into: &tensors, file: f)
        }
        var ck = Checkpoint(config: config, tensors: tensors, tokenizer: findTokenizer(dir), format: "hf-safetensors",
                            sourceDType: dtypes.max { $0.value < $1.value }?.key ?? "F32", path: dir)
        ck.addBOS = readAddBOS(dir)
        return ck
    }

    static func decodeConfig(_ data: Data, file: String) throws -> ModelConfig {
        struct TypeOnly: Decodable { var model_type: String? }
        let type: String
        do {
            guard let t = try JSONDecoder().decode(TypeOnly.self, from: data).model_type else {
                throw ModelError.badConfig(file: file, key: "model_type", reason: "missing")
            }
            type = t
        } catch let e as ModelError { throw e } catch {
            throw ModelError.badConfig(file: file, key: "(root)", reason: "not valid JSON")
        }
        do {
            switch type {
            case "llama": return try JSONDecoder().decode(LlamaHFConfig.self, from: data).modelConfig(file: file)
            case "opt": return try JSONDecoder().decode(OPTHFConfig.self, from: data).modelConfig(file: file)
            default: throw ModelError.unknownModelType(file: file, modelType: type)
            }
        } catch let e as DecodingError {
            throw ModelError.badConfig(file: file, key: decodingKey(e), reason: decodingReason(e))
        }
    }

    static func decodingKey(_ e: DecodingError) -> String {
        switch e {
        case .keyNotFound(let k, let ctx): return (ctx.codingPath + [k]).map(\.stringValue).joined(separator: ".")
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
            return ctx.codingPath.map(\.stringValue).joined(separator: ".")
        @unknown default: return "?"
        }
    }

    static func decodingReason(_ e: DecodingError) -> String {
        switch e {
        case .keyNotFound: return "missing"
        case .typeMismatch(let t, _): return "expected \(t)"
        case .valueNotFound(let t, _): return "expected \(t), found null"
        case .dataCorrupted(let ctx): return ctx.debugDescription
        @unknown default: return "invalid"
        }
    }

    /// Tokenizer files in an HF directory, in order of preference.
    static func findTokenizer(_ dir: String) -> TokenizerSource? {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/tokenizer.json") { return .tokenizerJSON(path: dir + "/tokenizer.json") }
        if fm.fileExists(atPath: dir + "/tokenizer.model") { return .sentencePiece(path: dir + "/tokenizer.model") }
        if fm.fileExists(atPath: dir + "/vocab.json"), fm.fileExists(atPath: dir + "/merges.txt") {
            return .vocabMerges(vocab: dir + "/vocab.json", merges: dir + "/merges.txt")
        }
        if fm.fileExists(atPath: dir + "/tokenizer.bin") { return .llama2c(path: dir + "/tokenizer.bin") }
        return nil
    }

    /// `add_bos_token` from tokenizer_config.json, when stated.
    static func readAddBOS(_ dir: String) -> Bool? {
        guard let d = FileManager.default.contents(atPath: dir + "/tokenizer_config.json"),
              let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return nil }
        return obj["add_bos_token"] as? Bool
    }
}
