import Foundation
import Tokenize
import Transformer

// MARK: - Shared model loading

enum Common {
    static func load(_ args: Args, tokenizer: Bool = true, modelPath: String? = nil) throws -> LoadedModel {
        let path = try modelPath ?? args[ModelOptions.model]
        let m = try ModelLoader.load(path, needTokenizer: tokenizer)
        Out.err(String(format: "loaded %@ (%@, %@) in %.2f s", path, m.model.config.family.rawValue, m.sourceDType, m.loadSeconds))
        return m
    }

    /// Reads a whole text file, or a typed error naming it.
    static func readText(_ path: String) throws -> String {
        String(decoding: try readInputFile(path), as: UTF8.self)
    }
}

// MARK: - info

enum InfoCommand: Command {
    static let spec = CommandSpec(name: "info", abstract: "Describe a checkpoint: family, sizes, dtype, parameters, tokenizer.",
                                  usage: "workbench info --model <path>", options: ModelOptions.all)

    static func run(_ args: Args) throws {
        let m = try Common.load(args)
        let c = m.model.config
        Out.print("""
        path: \(m.path)
        format: \(m.format)
        family: \(c.family.rawValue)
        dtype: \(m.sourceDType) (computed in F32)
        layers: \(c.nLayers)
        hidden: \(c.dModel)
        intermediate: \(c.dFF)
        heads: \(c.nHeads) (kv heads: \(c.nKVHeads), head dim: \(c.headDim))
        vocab: \(c.vocabSize)
        context: \(c.maxSeqLen)
        \(c.ropeTheta > 0 ? "rope theta: \(c.ropeTheta)\n" : "")norm eps: \(c.normEps)
        tied embeddings: \(c.tiedEmbeddings)
        biases: attention \(c.attentionBias), mlp \(c.mlpBias)
        parameters: \(m.model.parameterCount) (\(String(format: "%.1f", Double(m.model.parameterCount) / 1e6))M)
        tokenizer: \(m.tokenizer?.kind ?? "none")
        """)
        BLASInfo.lines().forEach(Out.print)
        BLASInfo.peakLines(measuredGFLOPS: BLAS.measurePeakGFLOPS(size: 1024, reps: 3), how: "best of 3 × 1024³ sgemm, all cores")
            .forEach(Out.print)
    }
}

// MARK: - tokenize

enum TokenizeCommand: Command {
    enum Options {
        static let text = Option<String>("text", "text", help: "Text to tokenize")
    }
    static let spec = CommandSpec(name: "tokenize", abstract: "Print the token ids of a text, space-separated.",
                                  usage: "workbench tokenize --model <path> --text <text>",
                                  options: ModelOptions.all + [Options.text])

    static func run(_ args: Args) throws {
        let text = try args[Options.text]
        let m = try Common.load(args)
        let ids = try m.requireTokenizer().encode(text)
        Out.print(ids.map(String.init).joined(separator: " "))
    }
}

// MARK: - generate

enum GenerateCommand: Command {
    enum Options {
        static let prompt = Option<String>("prompt", "text", help: "Prompt text (BOS added per the tokenizer's rule)")
        static let maxNewTokens = Option<Int>("max-new-tokens", "n", default: 64, min: 0, help: "Tokens to generate")
        static let temperature = Option<Double>("temperature", "t", default: 0, range: 0...100, help: "Sampling temperature; 0 = greedy")
        static let topP = Option<Double>("top-p", "p", default: 1, range: 0...1, help: "Nucleus sampling mass")
        static let seed = Option<Int>("seed", "s", default: 0, min: 0, help: "Sampling seed")
    }
    static let spec = CommandSpec(
        name: "generate", abstract: "Continue a prompt; only the continuation is printed on stdout, stats on stderr.",
        usage: "workbench generate --model <path> --prompt <text> [--max-new-tokens <n>] [--temperature <t>] [--top-p <p>] [--seed <s>]",
        options: ModelOptions.all + [Options.prompt, Options.maxNewTokens, Options.temperature, Options.topP, Options.seed],
        discussion: """
        For 128 or more new tokens, decode first makes transposed copies of the weights with out ≥ in (q, o, gate,
        up, fc1, lm_head; at most 1 GiB, else it decodes from the plain weights), which OpenBLAS streams faster one
        token at a time, for extra memory (the copies) and a short set-up.
        """)

    static func run(_ args: Args) throws {
        let prompt = try args[Options.prompt]
        let maxNew = try args[Options.maxNewTokens]
        let temp = try args[Options.temperature]
        let topP = try args[Options.topP]
        let seed = try args[Options.seed]
        guard !prompt.isEmpty else { throw ModelError.emptyPrompt }
        let m = try Common.load(args)
        let tok = try m.requireTokenizer()
        let ids = try tok.encode(prompt)
        guard !ids.isEmpty else { throw ModelError.emptyPrompt }
        var sampler = Sampler(temperature: Float(temp), topP: Float(topP), seed: UInt64(seed))
        var stop = Set<Int>()
        if let e = tok.eosId ?? m.model.config.eosTokenId { stop.insert(e) }
        if let b = tok.bosId ?? m.model.config.bosTokenId { stop.insert(b) }   // llama2.c stops at BOS
        var generated: [Int] = [], printed = ""
        var layoutSeconds = 0.0
        if maxNew >= Model.decodeLayoutMinTokens {
            let t = Date()
            m.model.prepareDecodeLayout()
            layoutSeconds = Date().timeIntervalSince(t)
        }
        let (_, stats) = try m.model.generate(prompt: ids, maxNewTokens: maxNew, sampler: &sampler, stop: stop) { id in
            generated.append(id)
            // Print whole characters only: a multi-byte character may span tokens.
            let text = tok.decode(generated)
            if !text.hasSuffix("\u{FFFD}"), text.count >= printed.count, text.hasPrefix(printed) {
                Out.write(String(text.dropFirst(printed.count)))
                printed = text
            }
        }
        let final = tok.decode(generated)
        if final.hasPrefix(printed) { Out.write(String(final.dropFirst(printed.count))) }
        Out.write("\n")
        Out.err(String(format: "prompt: %d tokens, prefill %.1f tok/s; generated %d tokens, decode %.1f tok/s%@",
                       stats.promptTokens, Double(stats.promptTokens) / max(stats.prefillSeconds, 1e-9),
                       stats.newTokens, stats.decodeTokensPerSecond,
                       layoutSeconds > 0 ? String(format: " (after %.2f s making the decode layout)", layoutSeconds) : ""))
    }
}

// MARK: - perplexity

enum PerplexityCommand: Command {
    enum Options {
        static let text = Option<String>("text", "file", help: "Raw text (e.g. wiki.test.raw)")
        static let seqlen = Option<Int>("seqlen", "n", defaultText: "min(2048, context)", min: 2, help: "Window length")
        static let maxWindows = Option<Int>("max-windows", "k", min: 1, help: "Evaluate at most k windows")
        static let proto = Option<PerplexityProtocol>("protocol", "name", default: .wanda, choices: [.wanda, .llamacpp],
                                                      help: "Positions scored: wanda = every position, llamacpp = the second half of each window")
    }
    static let spec = CommandSpec(
        name: "perplexity", abstract: "Perplexity of a raw text file (WikiText-2 protocol by default).",
        usage: "workbench perplexity --model <path> --text <file> [--seqlen <n>] [--max-windows <k>] [--protocol wanda|llamacpp] [--json]",
        options: ModelOptions.all + [Options.text, Options.seqlen, Options.maxWindows, Options.proto, OutputOptions.json],
        discussion: """
        Text preparation: CRLF → LF; each non-empty line + "\\n" (an HF wikitext row), joined with "\\n\\n" (Wanda's "\\n\\n".join(test["text"]));
        tokenized once with the tokenizer's BOS rule; non-overlapping windows of --seqlen tokens.
        """)

    static func run(_ args: Args) throws {
        let file = try args[Options.text]
        let proto = try args[Options.proto]
        let maxWindows = try args.ifGiven(Options.maxWindows)
        let seqlenArg = try args.ifGiven(Options.seqlen)
        let m = try Common.load(args)
        let tok = try m.requireTokenizer()
        let text = joinRawTextRows(try Common.readText(file))
        let t0 = Date()
        let ids = try tok.encode(text)
        Out.err(String(format: "tokenized %@: %d tokens in %.2f s", file, ids.count, Date().timeIntervalSince(t0)))
        let seqlen = seqlenArg ?? min(2048, m.model.config.maxSeqLen)
        let r = try m.model.perplexity(tokens: ids, seqlen: seqlen, protocol: proto, maxWindows: maxWindows,
                                       bos: tok.addsBOS ? tok.bosId : nil, progress: true)
        if args[OutputOptions.json] {
            Out.print(Out.json(["perplexity": r.perplexity, "tokens": r.tokens, "windows": r.windows, "seqlen": r.seqlen,
                                "protocol": r.protocol, "scored": r.scored, "mean_nll": r.meanNLL, "seconds": r.seconds,
                                "text": file]))
        } else {
            Out.print("protocol: \(r.protocol) (\(proto == .wanda ? "every position of each window" : "second half of each window"))")
            Out.print("seqlen: \(r.seqlen)")
            Out.print("tokens: \(r.tokens)")
            Out.print("windows: \(r.windows)")
            Out.print("scored predictions: \(r.scored)")
            Out.print(String(format: "perplexity: %.4f", r.perplexity))
        }
    }
}
