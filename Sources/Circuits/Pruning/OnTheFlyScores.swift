import Foundation
import Tokenize
import Transformer

// MARK: - Scores computed on the fly (`prune --method`)
//
// magnitude needs no data and is computed here. wanda / gradient / lrp go
// through the attribution engine's public API (AttributionRunner with the same
// settings `workbench attribute` uses by default: AttnLRP, target auto, seed
// value logit, signed mean over samples) into a temporary relevance file, which
// is then read like any `--scores` file. Same code path, same numbers, and the
// file's provenance metadata ends up in pruning.json.

extension PruneCalibration {
    /// Checks the calibration options for `method` without any I/O (usage errors).
    public func validate(for method: String) throws {
        guard method != "magnitude" else {
            if prompts != nil || text != nil || seqlen != nil || samples != nil || seed != nil {
                throw PruneError.invalidArgument(option: "method", reason: "magnitude reads no calibration data; drop --prompts/--text/--seqlen/--samples/--seed")
            }
            return
        }
        guard (prompts == nil) != (text == nil) else {
            throw PruneError.invalidArgument(option: "method", reason: "\(method) needs exactly one of --prompts <file> or --text <file>")
        }
        if text != nil, seqlen == nil || samples == nil {
            throw PruneError.invalidArgument(option: "text", reason: "--text needs --seqlen <n> and --samples <k>")
        }
        if prompts != nil, seqlen != nil || seed != nil {
            throw PruneError.invalidArgument(option: "prompts", reason: "--seqlen and --seed apply to --text corpora only")
        }
    }
}

enum OnTheFlyScores {
    static func compute(method m: String, calibration c: PruneCalibration, model: Model, source: CheckpointSourceInfo,
                        log: (String) -> Void) throws -> ScoreMap {
        guard let method = AttributionMethod(rawValue: m), [.magnitude, .wanda, .gradient, .lrp].contains(method) else {
            throw PruneError.invalidArgument(option: "method", reason: "'\(m)' is not one of magnitude, wanda, gradient, lrp")
        }
        try c.validate(for: m)
        if method == .magnitude { return ScoreMap.magnitude(model) }
        guard let tokSource = source.tokenizer else { throw ModelError.missingTokenizer(path: source.path) }
        let tokenizer = try makeTokenizer(tokSource, hints: hints(source))
        var settings = AttributionSettings()
        settings.method = method
        if method.explains {
            settings.absPerSample = c.aggregation == .absPerSample
            settings.absPerToken = c.aggregation == .absPerToken
        }
        settings.modelPath = source.path
        var samples: [AttributionSample]
        if let p = c.prompts {
            var set = try PromptSet.load(p)
            if let k = c.samples {
                guard k <= set.entries.count else {
                    throw PruneError.invalidArgument(option: "samples", reason: "\(k) but \(p) has \(set.entries.count) prompts")
                }
                set.entries = Array(set.entries.prefix(k))
            }
            samples = try PromptSamples.prepare(set, model: model, tokenizer: tokenizer, target: .auto)
            settings.dataKind = .prompts
            settings.dataPath = p
        } else if let t = c.text, let n = c.seqlen, let k = c.samples {
            samples = try TextCorpus.load(t).windows(tokenizer: tokenizer, seqlen: n, count: k, seed: c.seed ?? 0,
                                                     vocab: model.config.vocabSize, target: .auto)
            settings.dataKind = .corpus
            settings.dataPath = t
            settings.seqlen = n
            settings.corpusSeed = c.seed ?? 0
        } else {
            samples = []
        }
        settings.samples = samples.count
        let h = try SHA256.model(path: source.path)
        settings.modelSHA256 = h.sha256
        settings.modelFiles = h.files
        settings.dataSHA256 = try SHA256.hex(file: settings.dataPath)
        let tmp = FileManager.default.temporaryDirectory
            .appendingPathComponent("workbench-prune-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max)).safetensors").path
        defer {
            try? FileManager.default.removeItem(atPath: tmp)
            try? FileManager.default.removeItem(atPath: AttributionRunner.checkpointPath(for: tmp))
        }
        var options = AttributionRunOptions()
        options.checkpointEvery = 0
        let s = try AttributionRunner.run(model: model, samples: samples, settings: settings, out: tmp, options: options)
        log(String(format: "%@ scores over %d samples (%d tokens) in %.2f s", m, s.samples, s.tokens, s.seconds))
        var map = try ScoreMap.load(path: tmp)
        map.source = "\(m) (computed on the fly over \(settings.dataPath))"
        return map
    }

    static func hints(_ s: CheckpointSourceInfo) -> TokenizerHints {
        ModelLoader.tokenizerHints(config: s.config, tokenizer: s.tokenizer, addBOS: s.addBOS)
    }
}
