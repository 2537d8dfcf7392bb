import Foundation
import Tokenize
import Transformer

// MARK: - Scores computed on the fly (`prune --method`)
//
// magnitude needs no data and is computed here. wanda / gradient / lrp go
// through the attribution engine (AttributionRunner with the settings
// `workbench attribute` uses by default: AttnLRP, target auto, seed value
// logit; the aggregation is the pruning default, see `ScoreSource`). The
// runner hands the final tensors over in memory: the same numbers, bit for
// bit, that `attribute` writes to a relevance file, and the same metadata,
// which ends up in pruning.json.

public enum OnTheFlyScores {
    /// Checks a method and its calibration without any I/O (usage errors).
    public static func validate(_ method: AttributionMethod, _ calibration: Calibration?) throws {
        guard method != .activation else {
            throw PruneError.invalidArgument(option: "method", reason: "activation scores units only; use magnitude, wanda, gradient or lrp")
        }
        let problem: CalibrationError?
        switch (method.needsData, calibration) {
        case (false, _?): problem = .noDataNeeded(method: method.rawValue)
        case (true, nil): problem = .missingData(method: method.rawValue)
        default: problem = nil
        }
        if let problem { throw PruneError.invalidArgument(option: "method", reason: problem.localizedDescription) }
    }

    public static func compute(method: AttributionMethod, calibration: Calibration?, aggregation: RelevanceAccumulator.Aggregation,
                        model: Model, source: CheckpointSourceInfo, log: (String) -> Void) throws -> ScoreMap {
        try validate(method, calibration)
        guard let calibration else { return ScoreMap.magnitude(model) }
        let (samples, settings) = try prepare(method: method, calibration: calibration, aggregation: aggregation,
                                              model: model, source: source)
        let r = try AttributionRunner.scores(model: model, samples: samples, settings: settings)
        log(String(format: "%@ scores over %d samples (%d tokens) in %.2f s", method.rawValue, r.summary.samples, r.summary.tokens,
                   r.summary.seconds))
        return ScoreMap(tensors: r.tensors, source: "\(method.rawValue) (computed on the fly from --model \(QuotedName.path(source.path)) over \(settings.dataPath))",
                        metadata: r.metadata)
    }

    /// The calibration samples and the settings `attribute` would record for them (hashes included).
    static func prepare(method: AttributionMethod, calibration: Calibration, aggregation: RelevanceAccumulator.Aggregation,
                        model: Model, source: CheckpointSourceInfo) throws -> ([AttributionSample], AttributionSettings) {
        // Only text prompts and corpora need the tokenizer; pre-tokenized prompts do not.
        let tokenizer = try source.tokenizer.map {
            try ModelLoader.makeCheckedTokenizer($0, hints: hints(source), config: source.config,
                                                 configSource: source.configSource, modelPath: source.path)
        }
        var settings = AttributionSettings()
        settings.method = method
        if method.explains {
            settings.absPerSample = aggregation == .absPerSample
            settings.absPerToken = aggregation == .absPerToken
        }
        settings.modelPath = source.path
        let samples = try calibration.samples(model: model, tokenizer: tokenizer, modelPath: source.path, target: .auto)
        calibration.record(into: &settings)
        settings.samples = samples.count
        let h = try SHA256.model(path: source.path)
        settings.modelSHA256 = h.sha256
        settings.modelFiles = h.files
        settings.dataSHA256 = try SHA256.hex(file: settings.dataPath)
        return (samples, settings)
    }

    static func hints(_ s: CheckpointSourceInfo) -> TokenizerHints {
        ModelLoader.tokenizerHints(config: s.config, tokenizer: s.tokenizer, addBOS: s.addBOS)
    }
}
