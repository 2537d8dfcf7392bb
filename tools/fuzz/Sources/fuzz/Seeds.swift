import Foundation

/// A model the workbench loads cleanly, as files relative to the run folder.
struct Seed {
    let id: String
    var files: [String: Data]
    let model: String            // the --model argument
    let hasTokenizer: Bool
    let family: String           // llama | opt
}

/// Everything a campaign mutates: the synthetic seeds (always), the tiny fixtures from
/// Tests/Fixtures, stories260K from the shared assets when present, and files made by
/// the binary under test (a sparse-bitmask checkpoint and a relevance file).
final class SeedCorpus {
    let synthetic = SyntheticModel()
    var models: [Seed] = []                  // HF directories (safetensors + config.json)
    var gguf: GGUFBuilder
    var llama2c: [Seed] = []
    var sentencePiece: Seed?
    var sparse: Seed?
    var scores: Data?                        // relevance.safetensors for synthetic/hf
    var notes: [String] = []

    static let prompts = Data("Once upon a time there was\nThe little girl went to the forest\n".utf8)
    static let idsPrompts = Data("{\"ids\": [1, 5, 9, 17, 33]}\n{\"ids\": [3, 4, 5]}\n".utf8)
    static let corpus = Data((0..<4).map { _ in SyntheticModel.text }.joined(separator: "\n\n").utf8)

    init(fixtures: String?, assets: String?, workbench: String, scratch: String) {
        gguf = synthetic.gguf
        let s = synthetic
        models.append(Seed(id: "synthetic/hf", files: ["m/config.json": s.configJSON, "m/model.safetensors": s.safetensors,
                                                      "m/tokenizer.json": s.tokenizerJSON], model: "m", hasTokenizer: true, family: "llama"))
        models.append(Seed(id: "synthetic/hf-vocab-merges", files: ["m/config.json": s.configJSON, "m/model.safetensors": s.safetensors,
                                                                   "m/vocab.json": s.vocabJSON, "m/merges.txt": s.mergesTxt],
                           model: "m", hasTokenizer: true, family: "llama"))
        llama2c.append(Seed(id: "synthetic/llama2c", files: ["l2c/model.bin": s.llama2cBin, "l2c/tokenizer.bin": s.llama2cTokenizer],
                            model: "l2c/model.bin", hasTokenizer: true, family: "llama"))
        if let fixtures {
            for (name, family) in [("tiny-llama-bias", "llama"), ("tiny-llama-bias-bf16", "llama"), ("tiny-opt", "opt")] {
                let dir = fixtures + "/" + name
                guard let c = FileManager.default.contents(atPath: dir + "/config.json"),
                      let m = FileManager.default.contents(atPath: dir + "/model.safetensors") else { notes.append("no fixture \(dir)"); continue }
                models.append(Seed(id: "fixture/" + name, files: ["m/config.json": c, "m/model.safetensors": m], model: "m",
                                   hasTokenizer: false, family: family))
            }
        }
        if let assets {
            let st = assets + "/stories260K"
            var hf: [String: Data] = [:]
            for f in ["config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"] {
                if let d = FileManager.default.contents(atPath: st + "/hf/" + f) { hf["m/" + f] = d }
            }
            if hf.count == 4 {
                let seed = Seed(id: "stories260K/hf", files: hf, model: "m", hasTokenizer: true, family: "llama")
                models.append(seed)
                sentencePiece = seed
            } else { notes.append("stories260K/hf not found under \(assets)") }
            if let b = FileManager.default.contents(atPath: st + "/stories260K.bin"), let t = FileManager.default.contents(atPath: st + "/tok512.bin") {
                llama2c.append(Seed(id: "stories260K/llama2c", files: ["l2c/stories260K.bin": b, "l2c/tok512.bin": t],
                                    model: "l2c/stories260K.bin", hasTokenizer: true, family: "llama"))
            }
        }
        makeGenerated(workbench: workbench, scratch: scratch)
    }

    /// Seeds only the tool can write: made once per campaign with the binary under test.
    private func makeGenerated(workbench: String, scratch: String) {
        let dir = scratch + "/generated"
        try? FileManager.default.removeItem(atPath: dir)
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let seed = models[0]
        for (rel, d) in seed.files {
            try? FileManager.default.createDirectory(atPath: dir + "/" + (rel as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: dir + "/" + rel, contents: d)
        }
        FileManager.default.createFile(atPath: dir + "/prompts.txt", contents: SeedCorpus.prompts)
        let prune = Runner.runQuiet(workbench, ["prune", "--model", "m", "--method", "magnitude", "--scheme", "row", "--sparsity", "0.5",
                                                "--format", "sparse-bitmask", "--out", "sb"], cwd: dir)
        var sb: [String: Data] = [:]
        if prune == 0, let names = try? FileManager.default.contentsOfDirectory(atPath: dir + "/sb") {
            for n in names where !n.hasPrefix(".") { sb["sb/" + n] = FileManager.default.contents(atPath: dir + "/sb/" + n) }
            sparse = Seed(id: "generated/sparse-bitmask", files: sb, model: "sb", hasTokenizer: true, family: "llama")
        } else { notes.append("could not make a sparse-bitmask seed (prune rc \(prune)); format skipped") }
        let attr = Runner.runQuiet(workbench, ["attribute", "--model", "m", "--prompts", "prompts.txt", "--method", "lrp",
                                               "--out", "rel.safetensors", "--quiet"], cwd: dir)
        if attr == 0 { scores = FileManager.default.contents(atPath: dir + "/rel.safetensors") } else {
            notes.append("could not make a relevance seed (attribute rc \(attr)); scores format skipped")
        }
    }

    var formats: [String] {
        var f = ["safetensors", "config.json", "gguf", "tokenizer.json", "vocab+merges", "llama2c-bin", "llama2c-tokenizer",
                 "prompts", "corpus", "target", "cli"]
        if sparse != nil { f.append("sparse-bitmask") }
        if sentencePiece != nil { f.append("sentencepiece") }
        if scores != nil { f.append("scores") }
        return f
    }

    /// A seed by id, for replaying saved fixtures.
    func seed(_ id: String) -> Seed? {
        if id == "synthetic/gguf" { return Seed(id: id, files: ["model.gguf": gguf.build().0], model: "model.gguf", hasTokenizer: true, family: "llama") }
        return (models + llama2c + [sparse].compactMap { $0 }).first { $0.id == id }
    }
}
