import Foundation
import Tokenize
import Transformer

// MARK: - Samples

/// One sequence to attribute: its tokens and what is explained on it.
public struct AttributionSample: Equatable, Sendable {
    /// Where it came from ("prompts.jsonl:3", "c4.jsonl window 2 (doc 17+1 @ 40)").
    public var label: String
    /// Prompt (+ continuation) token ids, BOS included when the tokenizer adds one.
    public var tokens: [Int]
    /// Tokens of the prompt alone (== tokens.count when there is no continuation).
    public var promptLength: Int
    /// What is explained on this sequence.
    public var explain: ExplainSpec

    public init(label: String, tokens: [Int], promptLength: Int, explain: ExplainSpec) {
        self.label = label; self.tokens = tokens; self.promptLength = promptLength; self.explain = explain
    }
}

// MARK: - From a prompt file

public enum PromptSamples {
    /// Tokenizes and validates every entry, then (only when `target` is
    /// `.continuation` and an entry has none) generates continuations greedily.
    /// All validation happens before any generation, so a bad line fails fast.
    ///
    /// Rules: the explained sequence needs ≥ 2 tokens (prompt + given
    /// continuation; a prompt whose continuation will be generated needs ≥ 1);
    /// every id must be in the vocabulary; every target position inside the
    /// sequence; the sequence must fit the model's context.
    public static func prepare(_ set: PromptSet, model: Model, tokenizer: Tokenizer?, target: TargetMode,
                               maxNewTokens: Int = 20, progress: Bool = false) throws -> [AttributionSample] {
        let c = model.config
        var samples: [AttributionSample] = []
        var toGenerate: [Int] = []
        for e in set.entries {
            let loc = e.location
            // Prompt tokens.
            var prompt: [Int]
            if let ids = e.ids {
                for (k, id) in ids.enumerated() where id < 0 || id >= c.vocabSize {
                    throw AttributionError.tokenOutOfVocabulary(loc, field: "ids[\(k)]", id: id, vocabSize: c.vocabSize)
                }
                prompt = ids
            } else {
                guard let tokenizer else { throw AttributionError.needsTokenizer(loc) }
                prompt = try tokenizer.encode(e.text ?? "")
                if let bad = prompt.first(where: { $0 >= c.vocabSize }) {
                    throw AttributionError.tokenOutOfVocabulary(loc, field: "text", id: bad, vocabSize: c.vocabSize)
                }
            }
            // Given continuation tokens (appended; tokenized separately without BOS).
            var cont: [Int] = []
            if let ids = e.continuationIds {
                for (k, id) in ids.enumerated() where id < 0 || id >= c.vocabSize {
                    throw AttributionError.tokenOutOfVocabulary(loc, field: "continuation_ids[\(k)]", id: id, vocabSize: c.vocabSize)
                }
                cont = ids
            } else if let text = e.continuationText {
                guard let tokenizer else { throw AttributionError.needsTokenizer(loc) }
                cont = try tokenizer.encode(text, addBOS: false)
            }
            if e.hasContinuation, cont.isEmpty {
                throw AttributionError.badField(loc, field: e.continuationIds != nil ? "continuation_ids" : "continuation",
                                                reason: "the continuation is empty")
            }
            let generate = target == .continuation && !e.hasContinuation
            let tokens = prompt + cont
            if generate {
                guard !prompt.isEmpty else { throw AttributionError.tooFewTokens(loc, count: 0) }
                guard maxNewTokens > 0 else {
                    throw AttributionError.badField(loc, field: "continuation", reason: "none given and --max-new-tokens is 0")
                }
                guard prompt.count < c.maxSeqLen else { throw AttributionError.tooLong(loc, tokens: prompt.count + 1, limit: c.maxSeqLen, origin: model.contextOrigin) }
            } else {
                guard tokens.count >= 2 else { throw AttributionError.tooFewTokens(loc, count: tokens.count) }
                guard tokens.count <= c.maxSeqLen else { throw AttributionError.tooLong(loc, tokens: tokens.count, limit: c.maxSeqLen, origin: model.contextOrigin) }
            }
            // What is explained.
            let explain: ExplainSpec
            switch target {
            case .auto:
                if !e.targets.isEmpty {
                    explain = .groups(try TargetResolver.groups(e.targets, fieldPrefix: e.targets.count > 1 ? "targets" : "target",
                                                                length: tokens.count, promptLength: prompt.count, at: loc,
                                                                tokenizer: tokenizer, vocab: c.vocabSize))
                } else if !cont.isEmpty {
                    explain = .nextToken(from: prompt.count - 1)
                } else {
                    explain = .nextToken(from: 0)
                }
            case .nextToken: explain = .nextToken(from: 0)
            case .lastMax: explain = .lastMax
            case .continuation:
                guard !prompt.isEmpty else { throw AttributionError.tooFewTokens(loc, count: 0) }
                explain = .nextToken(from: prompt.count - 1)
            case .terms(let terms):
                explain = .groups(try TargetResolver.groups(terms, fieldPrefix: "--target", length: tokens.count,
                                                            promptLength: prompt.count, at: loc, tokenizer: tokenizer,
                                                            vocab: c.vocabSize))
            }
            if generate { toGenerate.append(samples.count) }
            samples.append(AttributionSample(label: loc.description, tokens: tokens, promptLength: prompt.count, explain: explain))
        }
        // Heavy part, after everything validated: greedy continuations.
        if !toGenerate.isEmpty {
            let eos = tokenizer?.eosId ?? c.eosTokenId
            let line = ProgressLine("generating continuations", total: toGenerate.count, unit: "prompts", enabled: progress)
            // All prompts decoded together (one matrix product per step; greedy streams are token-for-token those of
            // `greedyContinuation`, tested in GenerateBatchTests), so a set of 24 costs little more than one prompt.
            let settings = GenerationSettings(maxNewTokens: maxNewTokens, stop: eos.map { [$0] } ?? [])
            let (out, _) = try model.generateBatch(prompts: toGenerate.map { samples[$0].tokens }, samplesPerPrompt: 1,
                                                   settings: settings) { done, _, tokens in line.update(done, tokens: tokens) }
            for (k, i) in toGenerate.enumerated() {
                samples[i].tokens = withStop(model, prompt: samples[i].tokens, out[k][0], maxNewTokens: maxNewTokens, eos: eos)
            }
        }
        return samples
    }

    /// Prompt + greedy continuation. Generation stops at EOS; when it does, the
    /// EOS token is kept as the last continuation token (the model's decision
    /// to stop is part of the behaviour, and a prompt answered by an immediate
    /// EOS still has something to explain).
    public static func greedyContinuation(_ model: Model, prompt: [Int], maxNewTokens: Int, eos: Int?) throws -> [Int] {
        var sampler = Sampler(temperature: 0)
        let (out, _) = try model.generate(prompt: prompt, maxNewTokens: maxNewTokens, sampler: &sampler,
                                          stop: eos.map { [$0] } ?? [])
        return withStop(model, prompt: prompt, out, maxNewTokens: maxNewTokens, eos: eos)
    }

    /// Prompt + continuation, with the EOS kept when generation stopped on it (short of both limits).
    static func withStop(_ model: Model, prompt: [Int], _ out: [Int], maxNewTokens: Int, eos: Int?) -> [Int] {
        let room = model.config.maxSeqLen - prompt.count
        if let eos, out.count < min(maxNewTokens, room) { return prompt + out + [eos] }   // stopped on EOS
        return prompt + out
    }
}
