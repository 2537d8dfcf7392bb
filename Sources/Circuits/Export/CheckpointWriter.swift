#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Tokenize
import Transformer

// MARK: - Writing a complete HF checkpoint directory
//
// Any model the workbench can load can be written back as an HF directory
// (config.json, tokenizer files, model.safetensors F32) that every other
// command accepts as `--model`. The directory appears atomically: everything
// is written into a hidden temp directory next to the target, then renamed.

public enum WeightFormat: String, Sendable, CaseIterable {
    /// Dense F32 with exact zeros (loads everywhere: transformers, vLLM, lm-eval). A
    /// model.safetensors.index.json names model.safetensors as the only weight file: without it vLLM
    /// globs `*.safetensors` in a local folder and would also load mask.safetensors (U8 keep flags under
    /// the weights' own names) into the weights (vLLM 0.34.0 `default_loader.py` / `filter_duplicate_safetensors_files`).
    case dense
    /// compressed-tensors `sparse-bitmask` (legacy) for the pruned matrices, in `model.sparse-bitmask.safetensors`.
    /// No current loader decompresses it (compressed-tensors ≥ 0.15 dropped sparse compressors and would
    /// randomly initialise the weights it cannot find; vLLM 0.34.0 refuses any sparsity_config with
    /// targets), so the file deliberately is not `model.safetensors`: `from_pretrained` stops with "no file
    /// named model.safetensors" instead of loading a half-random model. compressed-tensors 0.12.2–0.14.0.1
    /// read it through `ModelCompressor.decompress(file, model)` (tools/compressed_tensors_check.py).
    case sparseBitmask = "sparse-bitmask"

    /// The weight file this format writes (beside config.json).
    public var weightsFileName: String {
        switch self {
        case .dense: return "model.safetensors"
        case .sparseBitmask: return ModelLoader.sparseBitmaskWeightsFile
        }
    }
}

/// What the writer needs to know about the input besides the model weights.
public struct CheckpointSourceInfo: Sendable {
    public var path: String
    public var format: String            // "hf-safetensors", "gguf", "llama2c"
    public var sourceDType: String
    public var config: ModelConfig
    public var tokenizer: TokenizerSource?
    public var addBOS: Bool?
    /// Where the config came from (file and key names), for errors about the tokenizer.
    public var configSource: ConfigSource?
    /// Files loading the model read or looked for (`Checkpoint.inputFiles`).
    public var inputFiles: [String]

    public init(_ ck: Checkpoint) {
        path = ck.path; format = ck.format; sourceDType = ck.sourceDType; config = ck.config
        tokenizer = ck.tokenizer; addBOS = ck.addBOS; configSource = ck.configSource; inputFiles = ck.inputFiles
    }

    public var isHFDirectory: Bool { format == "hf-safetensors" }

    /// Loads any supported checkpoint and builds its model. The checkpoint's tensor table is
    /// released on return, so later in-place pruning does not copy every weight (copy-on-write).
    public static func load(_ path: String) throws -> (Model, CheckpointSourceInfo) {
        let ck = try ModelLoader.checkpoint(path)
        let info = CheckpointSourceInfo(ck)
        return (try Model.build(from: ck), info)
    }
}

/// The compressed-tensors `sparsity_config` block written with `sparse-bitmask`.
public struct SparsityConfigInfo: Sendable {
    public var structure: String          // "unstructured", "2:4", …
    public var targets: [String]          // module names (weight name without ".weight")
    public var ignore: [String]?          // nil: the model's output projection (`FamilyNames.lmHeadModule`)
    public var globalSparsity: Double     // fraction of zero parameters in the whole model
    public init(structure: String, targets: [String], ignore: [String]? = nil, globalSparsity: Double) {
        self.structure = structure; self.targets = targets; self.ignore = ignore; self.globalSparsity = globalSparsity
    }
}

public struct CheckpointWriteSummary: Sendable {
    public var directory: String
    public var modelBytes: Int            // the weight file (`WeightFormat.weightsFileName`)
    public var totalBytes: Int            // every file in the directory
}

public enum CheckpointWriteError: LocalizedError, Equatable {
    case outputExists(path: String)
    case outputIsInput(path: String)
    case outputInsideInput(output: String, input: String)
    case inputInsideOutput(output: String, input: String)
    case refusingToReplace(path: String, reason: String)
    case cannotWrite(path: String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .outputExists(let p): return "\(QuotedName.path(p)) already exists (pass --force to replace it)"
        case .outputIsInput(let p): return "--out \(QuotedName.path(p)) is the input model itself"
        case .outputInsideInput(let o, let i): return "--out \(QuotedName.path(o)) is inside the input directory \(QuotedName.path(i)); choose a directory outside it"
        case .inputInsideOutput(let o, let i): return "--out \(QuotedName.path(o)) contains the input \(QuotedName.path(i)); replacing it would delete the input"
        case .refusingToReplace(let p, let r): return "refusing to replace \(QuotedName.path(p)): \(r)"
        case .cannotWrite(let p, let r): return "cannot write \(QuotedName.path(p)): \(r)"
        }
    }
}

public struct CheckpointWriter {
    public var source: CheckpointSourceInfo
    public var format: WeightFormat = .dense
    /// Weight names stored as sparse-bitmask (with `.sparseBitmask`); other tensors stay dense.
    public var compress: Set<String> = []
    /// The `sparsity_config` for config.json (required with `.sparseBitmask`).
    public var sparsity: SparsityConfigInfo?
    /// Extra files (name → bytes), e.g. pruning.json.
    public var extraFiles: [String: Data] = [:]
    /// Extra safetensors files (name → records), e.g. mask.safetensors.
    public var extraSafetensors: [String: [SafetensorsRecord]] = [:]

    public init(source: CheckpointSourceInfo, format: WeightFormat = .dense) {
        self.source = source; self.format = format
    }

    // MARK: - Output path checks

    /// Checks `output` before any work: not the input, not inside an input directory, not
    /// containing the input, and not existing unless `force`. Even with `force` only an empty
    /// directory or one this tool wrote is replaced: every entry must be a file `prune` writes
    /// (`writtenFileNames`) and `pruning.json` must be there. Anything else — another model's
    /// folder, a folder with the user's own files — is refused, never deleted.
    public static func preflight(output: String, input: String, force: Bool) throws {
        guard !output.isEmpty else { throw OutputError.emptyPath }   // "" would resolve to the working directory
        let out = resolved(output), inp = resolved(input)
        let fm = FileManager.default
        if out == inp { throw CheckpointWriteError.outputIsInput(path: output) }
        var inputIsDir: ObjCBool = false
        if fm.fileExists(atPath: inp, isDirectory: &inputIsDir), inputIsDir.boolValue, out.hasPrefix(inp + "/") {
            throw CheckpointWriteError.outputInsideInput(output: output, input: input)
        }
        if inp.hasPrefix(out + "/") { throw CheckpointWriteError.inputInsideOutput(output: output, input: input) }
        var st = stat()
        guard lstat(out, &st) == 0 else { return }   // `out`: what `write` replaces (a dangling link counts as existing)
        guard force else { throw CheckpointWriteError.outputExists(path: output) }
        var outIsDir: ObjCBool = false
        guard fm.fileExists(atPath: out, isDirectory: &outIsDir), outIsDir.boolValue else {
            throw CheckpointWriteError.refusingToReplace(path: output, reason: "it is not a directory")
        }
        let contents = ((try? fm.contentsOfDirectory(atPath: out)) ?? []).sorted()
        if contents.isEmpty { return }
        guard contents.contains("pruning.json") else {
            throw CheckpointWriteError.refusingToReplace(path: output, reason: "it has no pruning.json, so `workbench prune` did not write it "
                + "(another model's folder?)")
        }
        let foreign = contents.filter { name in
            var e = stat()
            // A link is fine (removing it leaves its target alone); a directory or device is not what prune writes.
            return !writtenFileNames.contains(name) || lstat(out + "/" + name, &e) != 0
                || (e.st_mode & S_IFMT != S_IFREG && e.st_mode & S_IFMT != S_IFLNK)
        }
        guard foreign.isEmpty else {
            let shown = foreign.prefix(5).joined(separator: ", ") + (foreign.count > 5 ? ", …" : "")
            throw CheckpointWriteError.refusingToReplace(path: output, reason: "it holds files `workbench prune` does not write (\(shown)); "
                + "move them away or choose another --out")
        }
    }

    /// Names of the files a checkpoint directory written by `prune` can hold.
    public static let writtenFileNames: Set<String> = Set(["config.json", "model.safetensors", "model.safetensors.index.json", ModelLoader.sparseBitmaskWeightsFile,
                                                                     "pruning.json", "mask.safetensors"] + hfTokenizerFiles)

    /// Absolute, standardized path with symlinks resolved in its longest existing prefix.
    static func resolved(_ path: String) -> String { OutputGuard.canonicalPath(path) }

    // MARK: - Writing

    /// Writes the whole directory atomically. Runs `preflight` again (the world may have changed).
    @discardableResult
    public func write(_ model: Model, to dir: String, force: Bool) throws -> CheckpointWriteSummary {
        try Self.preflight(output: dir, input: source.path, force: force)
        let fm = FileManager.default
        let target = URL(fileURLWithPath: Self.resolved(dir))
        let parent = target.deletingLastPathComponent()
        do { try fm.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw CheckpointWriteError.cannotWrite(path: parent.path, reason: error.localizedDescription)
        }
        // Leftovers of killed runs (`.NAME.tmp-PID-N`, `.NAME.old-PID-N`) whose process is gone.
        StaleTemporaries.sweepOnce(directory: parent.path)
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let tmp = parent.appendingPathComponent(".\(target.lastPathComponent).tmp-\(tag)")
        do {
            try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
            try writeContents(model, into: tmp.path)
        } catch {
            try? fm.removeItem(at: tmp)
            if let e = error as? CheckpointWriteError { throw e }
            throw CheckpointWriteError.cannotWrite(path: dir, reason: error.localizedDescription)
        }
        // Swap in. POSIX rename cannot replace a non-empty directory, so an old output is moved
        // aside first and deleted only after the new one is in place.
        var old: URL? = nil
        if fm.fileExists(atPath: target.path) {
            let aside = parent.appendingPathComponent(".\(target.lastPathComponent).old-\(tag)")
            guard rename(target.path, aside.path) == 0 else {
                let reason = String(cString: strerror(errno))
                try? fm.removeItem(at: tmp)
                throw CheckpointWriteError.cannotWrite(path: dir, reason: reason)
            }
            old = aside
        }
        guard rename(tmp.path, target.path) == 0 else {
            let reason = String(cString: strerror(errno))
            if let old { _ = rename(old.path, target.path) }
            try? fm.removeItem(at: tmp)
            throw CheckpointWriteError.cannotWrite(path: dir, reason: reason)
        }
        if let old { try? fm.removeItem(at: old) }
        return CheckpointWriteSummary(directory: target.path, modelBytes: DiskUsage.bytes(target.path + "/" + format.weightsFileName),
                                      totalBytes: DiskUsage.bytes(target.path))
    }

    func writeContents(_ model: Model, into dir: String) throws {
        try writeFile(try configJSON(), dir + "/config.json")
        try writeTokenizerFiles(into: dir)
        try writeWeights(model, to: dir + "/" + format.weightsFileName)
        if format == .dense { try writeFile(try Self.singleFileIndex(model), dir + "/model.safetensors.index.json") }
        for (name, data) in extraFiles.sorted(by: { $0.key < $1.key }) { try writeFile(data, dir + "/" + name) }
        for (name, records) in extraSafetensors.sorted(by: { $0.key < $1.key }) {
            try Safetensors.writeStreaming(records.map { StreamedTensor(record: $0) }, metadata: ["format": "pt"], to: dir + "/" + name)
        }
    }

    func writeFile(_ data: Data, _ path: String) throws {
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw CheckpointWriteError.cannotWrite(path: path, reason: error.localizedDescription)
        }
    }

    /// The HF shard index for one model.safetensors (what `save_pretrained` writes for shards; total_size =
    /// tensor bytes): loaders that glob `*.safetensors` (vLLM) then read only the files it names.
    static func singleFileIndex(_ model: Model) throws -> Data {
        var map: [String: String] = [:]
        var bytes = 0
        for (name, t) in model.namedTensors() { map[name] = "model.safetensors"; bytes += 4 * t.data.count }   // F32
        return try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": bytes], "weight_map": map] as [String: Any],
                                          options: [.prettyPrinted, .sortedKeys])
    }

    /// The weight file (`format.weightsFileName`): every parameter F32 (`__metadata__ {"format":"pt"}`); with sparse-bitmask,
    /// the `compress` weights as `.shape/.compressed/.bitmask/.row_offsets`.
    func writeWeights(_ model: Model, to path: String) throws {
        var items: [StreamedTensor] = []
        for (name, t) in model.namedTensors() {
            if format == .sparseBitmask, compress.contains(name), t.shape.count == 2 {
                items += SparseBitmask.encode(name: name, weight: t.data, rows: t.shape[0], cols: t.shape[1])
                    .map { StreamedTensor(record: $0) }
            } else {
                items.append(StreamedTensor(name: name, floats: t.data, shape: t.shape))
            }
        }
        try Safetensors.writeStreaming(items, metadata: ["format": "pt"], to: path)
    }
}
