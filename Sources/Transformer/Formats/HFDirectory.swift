import Foundation
import Tokenize

// MARK: - HF directory (config.json + safetensors, single or sharded)

extension ModelLoader {
    /// Where `prune --format sparse-bitmask` puts its weights: not model.safetensors, so that
    /// transformers without a sparse decompressor stops instead of randomising the missing weights.
    public static let sparseBitmaskWeightsFile = "model.sparse-bitmask.safetensors"

    static func loadHFDirectory(_ dir: String) throws -> Checkpoint {
        let configPath = dir + "/config.json"
        guard InputFile.kind(configPath) != nil else { throw ModelError.unknownFormat(path: dir) }
        let data = try readSmallFile(configPath)
        let (config, source) = try decodeConfig(data, file: configPath)
        // Weights: sharded index first, then model.safetensors.
        var tensors: [String: Tensor] = [:]
        var dtypes: [String: Int] = [:]
        let index = dir + "/model.safetensors.index.json"
        var files: [String] = []
        if InputFile.kind(index) != nil {
            guard let obj = try? JSONSerialization.jsonObject(with: try readSmallFile(index)) as? [String: Any],
                  let map = obj["weight_map"] as? [String: String]
            else { throw ModelError.badConfig(file: index, key: "weight_map", reason: "missing or not an object of strings") }
            files = try Set(map.values).sorted().map { try shardPath($0, in: dir, index: index) }
        } else if InputFile.kind(dir + "/model.safetensors") != nil {
            files = [dir + "/model.safetensors"]
        } else if InputFile.kind(dir + "/" + sparseBitmaskWeightsFile) != nil {
            files = [dir + "/" + sparseBitmaskWeightsFile]
        } else {
            throw ModelError.fileNotFound(path: dir + "/model.safetensors")
        }
        var tensorFiles: [String: String] = [:]
        for f in files {
            let st = try SafetensorsFile(path: f)
            for name in st.names {
                guard let e = st.entries[name] else { continue }
                if name.hasSuffix(".weight") || name.hasSuffix(".bias") {
                    // The same tensor in two shards: which one is meant is unknowable.
                    guard tensors[name] == nil else {
                        throw ModelError.unsupported(file: f, feature: "tensor '\(QuotedName.safe(name))' also appears in another shard")
                    }
                    // An integer `.weight`/`.bias` is a wrong dtype: tensor() reports it by name.
                    tensors[name] = try st.tensor(name)
                    dtypes[e.dtype.rawValue, default: 0] += 1
                }
            }
            try SparseBitmask.decodeAll(st, into: &tensors, file: f)
            for name in tensors.keys where tensorFiles[name] == nil { tensorFiles[name] = f }
        }
        var ck = Checkpoint(config: config, tensors: tensors, tokenizer: findTokenizer(dir), format: "hf-safetensors",
                            sourceDType: dtypes.max { $0.value < $1.value }?.key ?? "F32", path: dir)
        ck.addBOS = readAddBOS(dir)
        ck.configSource = source
        ck.inputFiles = hfInputFiles(dir, weights: files)
        ck.tensorFiles = tensorFiles
        return ck
    }

    /// A JSON side file of the model folder (config, index, tokenizer_config): regular file
    /// required (a FIFO would block), at most 64 MB (real ones are a few KB; an index ~100 KB).
    static func readSmallFile(_ path: String) throws -> Data {
        do { return try InputFile.read(path, limit: 64 << 20) } catch let e as InputFileError { throw ModelError(e) }
    }

    /// The path of a shard named in `weight_map`, refused when it leaves the model folder:
    /// absolute, with a `..` component, or (after resolving symlinks) outside the folder.
    /// Otherwise an index could make the loader read any file on the machine.
    static func shardPath(_ name: String, in dir: String, index: String) throws -> String {
        let bad = { (why: String) in
            ModelError.badConfig(file: index, key: "weight_map", reason: "shard '\(QuotedName.safe(name))' \(why)")
        }
        guard !name.isEmpty else { throw bad("is an empty path") }
        guard !name.hasPrefix("/") else { throw bad("is an absolute path; shards must be inside the model folder") }
        guard !name.split(separator: "/").contains("..") else { throw bad("leaves the model folder ('..')") }
        let path = dir + "/" + name
        let root = URL(fileURLWithPath: dir).resolvingSymlinksInPath().path
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw bad("resolves to \(resolved), outside the model folder \(root)")
        }
        return path
    }

    /// The family-neutral config of a config.json, validated (ModelConfig.validate), and
    /// the key names its values came from.
    static func decodeConfig(_ data: Data, file: String) throws -> (ModelConfig, ConfigSource) {
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
        guard let family = ModelFamily(rawValue: type) else { throw ModelError.unknownModelType(file: file, modelType: type) }
        // Integer keys must hold exact integers: Foundation's decoder reports 1.5 or 1e30 for an
        // Int without naming the key.
        let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        for key in family.definition.integerKeys {
            if let v = obj?[key], !(v is NSNull), JSONInteger.exact(v) == nil {
                throw ModelError.badConfig(file: file, key: key, reason: "expected an integer, found \(QuotedName.safe("\(v)"))")
            }
        }
        let config: ModelConfig
        do {
            config = try family.definition.decodeConfig(data, file: file)
        } catch let e as DecodingError {
            throw ModelError.badConfig(file: file, key: decodingKey(e), reason: decodingReason(e))
        }
        let explicitHeadDim = family.definition.headDimKey.map { obj?[$0] != nil && !(obj?[$0] is NSNull) } ?? false
        let source = ConfigSource.hf(file: file, family: config.family, explicitHeadDim: explicitHeadDim)
        try config.validate(source: source)
        return (config, source)
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
        guard InputFile.isRegular(dir + "/tokenizer_config.json"),
              let d = try? readSmallFile(dir + "/tokenizer_config.json"),
              let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return nil }
        return obj["add_bos_token"] as? Bool
    }
}
