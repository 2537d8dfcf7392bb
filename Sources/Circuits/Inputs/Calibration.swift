import Foundation
import Tokenize
import Transformer

// MARK: - Calibration data: one type for every command that reads a reference set
//
// `attribute`, `prune --method` and every later command that scores weights
// over data take either a prompt file or random windows of a corpus. The flag
// rules (exactly one source; windows need a length and a count; a seed only
// for windows), the sample building and the provenance record live here once,
// so the commands cannot drift apart.

/// Where calibration samples come from.
public enum Calibration: Equatable, Sendable {
    /// A prompt file (.txt one per line, or .jsonl); `first` = use only its first k prompts.
    case prompts(path: String, first: Int?)
    /// `samples` reproducible windows of `seqlen` tokens from a corpus. `seed` is kept as given
    /// (nil = not given, 0 used) so provenance records what the user asked for.
    case corpus(path: String, seqlen: Int, samples: Int, seed: UInt64?)

    /// The data file.
    public var path: String {
        switch self { case .prompts(let p, _), .corpus(let p, _, _, _): return p }
    }

    /// The corpus sampling seed actually used (0 when not given).
    public var seed: UInt64? {
        if case .corpus(_, _, _, let s) = self { return s ?? 0 }
        return nil
    }

    /// Validates the data flags of a command and builds the calibration, without any I/O.
    ///
    /// - Parameters:
    ///   - needsData: whether the method reads data; when it does not, giving any data flag is an error
    ///     (silently ignoring a file the user named hides a mistake).
    ///   - method: the method's name, for error messages.
    /// - Returns: nil when no data is needed (and none was given).
    public static func parse(prompts: String?, text: String?, seqlen: Int?, samples: Int?, seed: UInt64?,
                             needsData: Bool, method: String) throws -> Calibration? {
        guard needsData else {
            if prompts != nil || text != nil || seqlen != nil || samples != nil || seed != nil {
                throw CalibrationError.noDataNeeded(method: method)
            }
            return nil
        }
        switch (prompts, text) {
        case (nil, nil): throw CalibrationError.missingData(method: method)
        case (_?, _?): throw CalibrationError.bothSources
        case (let p?, nil):
            if seqlen != nil || seed != nil { throw CalibrationError.corpusOnly }
            if let samples { try checkPositive(samples, flag: "samples", min: 1) }
            return .prompts(path: p, first: samples)
        case (nil, let t?):
            guard let seqlen, let samples else { throw CalibrationError.windowsNeedSize }
            try checkPositive(seqlen, flag: "seqlen", min: 2)
            try checkPositive(samples, flag: "samples", min: 1)
            return .corpus(path: t, seqlen: seqlen, samples: samples, seed: seed)
        }
    }

    static func checkPositive(_ v: Int, flag: String, min: Int) throws {
        if v < min { throw CalibrationError.outOfRange(flag: flag, value: v, min: min) }
    }

    /// Checks that `target` can be explained on this data (corpus windows have no continuation).
    public func check(target: TargetMode) throws {
        if case .corpus = self, target == .continuation { throw CalibrationError.continuationNeedsPrompts }
    }

    /// Loads the data and builds the samples, each validated against `model` (vocabulary, context).
    /// Text prompts and corpora need `tokenizer`; pre-tokenized prompts do not.
    /// `modelPath` names the model in the missing-tokenizer error.
    public func samples(model: Model, tokenizer: Tokenizer?, modelPath: String, target: TargetMode,
                        maxNewTokens: Int = 20, progress: Bool = false) throws -> [AttributionSample] {
        switch self {
        case .prompts(let p, let first):
            var set = try PromptSet.load(p)
            if let k = first {
                guard k <= set.entries.count else {
                    throw CalibrationError.tooFewPrompts(path: p, requested: k, available: set.entries.count)
                }
                set.entries = Array(set.entries.prefix(k))
            }
            return try PromptSamples.prepare(set, model: model, tokenizer: tokenizer, target: target,
                                             maxNewTokens: maxNewTokens, progress: progress)
        case .corpus(let t, let n, let k, let seed):
            guard let tokenizer else { throw ModelError.missingTokenizer(path: modelPath) }
            return try TextCorpus.load(t).windows(tokenizer: tokenizer, seqlen: n, count: k, seed: seed ?? 0,
                                                  vocab: model.config.vocabSize, target: target)
        }
    }

    /// Writes where the data came from into the settings (kind, path, window length and seed);
    /// the sample count and the data's sha256 are recorded by the caller once known.
    public func record(into s: inout AttributionSettings) {
        s.dataPath = path
        switch self {
        case .prompts:
            s.dataKind = .prompts
        case .corpus(_, let n, _, let seed):
            s.dataKind = .corpus
            s.seqlen = n
            s.corpusSeed = seed ?? 0
        }
    }

    /// The flags as given, for `pruning.json` (absent flags are null).
    public var flags: CalibrationFlags {
        switch self {
        case .prompts(let p, let first): return CalibrationFlags(prompts: p, samples: first)
        case .corpus(let t, let n, let k, let seed): return CalibrationFlags(text: t, seqlen: n, samples: k, seed: seed)
        }
    }
}

/// The calibration flags as given on the command line; every key is written, null when absent.
public struct CalibrationFlags: Codable, Equatable, Sendable {
    @ExplicitNull public var prompts: String?
    @ExplicitNull public var text: String?
    @ExplicitNull public var seqlen: Int?
    @ExplicitNull public var samples: Int?
    @ExplicitNull public var seed: UInt64?

    public init(prompts: String? = nil, text: String? = nil, seqlen: Int? = nil, samples: Int? = nil, seed: UInt64? = nil) {
        self.prompts = prompts; self.text = text; self.seqlen = seqlen; self.samples = samples; self.seed = seed
    }

    enum CodingKeys: String, CodingKey { case prompts, text, seqlen, samples, seed }
}

/// A calibration flag combination or value that cannot work, named by its flags.
public enum CalibrationError: LocalizedError, Equatable {
    /// The method reads data but neither `--prompts` nor `--text` was given.
    case missingData(method: String)
    /// Both `--prompts` and `--text` were given.
    case bothSources
    /// `--text` without `--seqlen` and `--samples`.
    case windowsNeedSize
    /// `--seqlen` or `--seed` with `--prompts`.
    case corpusOnly
    /// A data flag for a method that reads no data.
    case noDataNeeded(method: String)
    /// A count below its minimum.
    case outOfRange(flag: String, value: Int, min: Int)
    /// `--target continuation` with corpus windows.
    case continuationNeedsPrompts
    /// `--samples k` asks for more prompts than the file has.
    case tooFewPrompts(path: String, requested: Int, available: Int)

    public var errorDescription: String? {
        switch self {
        case .missingData(let m): return "\(m) needs exactly one of '--prompts <file>' or '--text <file>'"
        case .bothSources: return "'--prompts' and '--text' cannot both be given"
        case .windowsNeedSize: return "'--text' needs '--seqlen <n>' and '--samples <k>'"
        case .corpusOnly: return "'--seqlen' and '--seed' apply to '--text' corpora only"
        case .noDataNeeded(let m): return "\(m) reads no calibration data; drop --prompts/--text/--seqlen/--samples/--seed"
        case .outOfRange(let f, let v, let lo): return "The value '\(v)' is invalid for '--\(f)': must be at least \(lo)"
        case .continuationNeedsPrompts: return "'--target continuation' needs a prompt file"
        case .tooFewPrompts(let p, let k, let n): return "'--samples \(k)' but \(p) has \(n) prompts"
        }
    }
}
