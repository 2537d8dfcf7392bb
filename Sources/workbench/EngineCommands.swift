import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - Shared model loading

enum Common {
    static func load(_ args: Args, tokenizer: Bool = true, modelPath: String? = nil) throws -> LoadedModel {
        let path = try modelPath ?? args[ModelOptions.model]
        let m = try ModelLoader.load(path, needTokenizer: tokenizer)
        Out.err(String(format: "loaded %@ (%@, %@) in %.2f s", path, m.model.config.family.rawValue, m.sourceDType, m.loadSeconds))
        // A later "text prompts need a tokenizer" error names the prompt file; this line names the key that explains it.
        if tokenizer, m.tokenizer == nil, let why = m.tokenizerAbsence { Out.err("warning: \(QuotedName.path(path)): \(why)") }
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
        tokenizer: \(m.tokenizer?.kind ?? "none" + (m.tokenizerAbsence.map { " (\($0))" } ?? ""))
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
        static let prompts = Option<String>.path("prompts", "file", help: "Batch mode: a prompt file (.txt lines or .jsonl with text/ids)")
        static let samples = Option<Int>("samples", "k", default: 1, min: 1, help: "Batch mode: continuations per prompt")
        static let maxBatch = Option<Int>("max-batch", "b", default: 256, min: 1, help: "Batch mode: streams decoded together")
        static let out = Option<String>.path("out", "file", help: "Batch mode: output .jsonl (one line per prompt and sample)")
    }
    static let spec = CommandSpec(
        name: "generate", abstract: "Continue a prompt (stdout), or many prompts × samples in batches (--prompts, --out).",
        usage: """
        workbench generate --model <path> --prompt <text> [--max-new-tokens <n>] [--temperature <t>] [--top-p <p>] [--seed <s>]
               workbench generate --model <path> --prompts <file> --out <file.jsonl> [--samples <k>] [--max-batch <b>] [--max-new-tokens <n>] [--temperature <t>] [--top-p <p>] [--seed <s>]
        """,
        options: ModelOptions.all + [Options.prompt, Options.prompts, Options.out, Options.samples, Options.maxBatch,
                                     Options.maxNewTokens, Options.temperature, Options.topP, Options.seed],
        discussion: """
        For 128 or more new tokens, decode first makes transposed copies of the weights with out ≥ in (q, o, gate,
        up, fc1, lm_head; at most 1 GiB, else it decodes from the plain weights), which OpenBLAS streams faster one
        token at a time, for extra memory (the copies) and a short set-up.

        Batch mode decodes up to --max-batch streams together (one matrix product per weight and step), shares a
        prompt's prefill among its samples, and gives stream (prompt p, sample k) its own random stream seeded from
        (--seed, p, k): the output does not depend on --max-batch. Greedy (temperature 0) streams give what
        --prompt gives. Each output line: {"prompt": p, "sample": k, "text": prompt, "continuation": text,
        "continuation_ids": [...], "stopped": "eos"|"length"} — a behaviour file `correct --undesired` reads.
        """)

    static func run(_ args: Args) throws {
        switch (args.given(Options.prompt), args.given(Options.prompts)) {
        case (true, true): throw UsageError(message: "give --prompt or --prompts, not both")
        case (false, false): throw UsageError(message: "missing --prompt (one prompt) or --prompts (a file, with --out)")
        case (false, true): return try runBatch(args)
        case (true, false):
            for o in [Options.out, Options.samples, Options.maxBatch] as [any CLIOption] where args.given(o) {
                throw UsageError(message: "'--\(o.name)' applies to batch mode (--prompts) only")
            }
        }
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
    /// Batch mode: every prompt of the file × --samples continuations, decoded together.
    static func runBatch(_ args: Args) throws {
        let promptsPath = try args[Options.prompts]
        guard args.given(Options.out) else { throw UsageError(message: "--prompts needs --out <file.jsonl>") }
        let outPath = try args[Options.out]
        let modelPath = try args[ModelOptions.model]
        try OutputGuard.check(output: outPath, inputs: [promptsPath, modelPath])
        let set = try PromptSet.load(promptsPath)
        guard !set.entries.isEmpty else { throw UsageError(message: "--prompts '\(QuotedName.path(promptsPath))' holds no prompts") }
        let m = try Common.load(args)
        let tok = try m.requireTokenizer()
        var texts: [String] = [], ids: [[Int]] = []
        for e in set.entries {
            let t: [Int]
            if let given = e.ids { t = given } else { t = try tok.encode(e.text ?? "") }
            guard !t.isEmpty else { throw ModelError.emptyPrompt }
            texts.append(e.text ?? tok.decode(t)); ids.append(t)
        }
        var stop = Set<Int>()
        if let e = tok.eosId ?? m.model.config.eosTokenId { stop.insert(e) }
        if let b = tok.bosId ?? m.model.config.bosTokenId { stop.insert(b) }
        let settings = GenerationSettings(maxNewTokens: try args[Options.maxNewTokens], temperature: Float(try args[Options.temperature]),
                                          topP: Float(try args[Options.topP]), seed: UInt64(try args[Options.seed]), stop: stop)
        let samples = try args[Options.samples]
        // Counted in tokens (streams end together within a batch); the total assumes no stream stops early.
        let budget = ids.reduce(0) { $0 + min(settings.maxNewTokens, m.model.config.maxSeqLen - $1.count) } * samples
        let progress = ProgressLine("generate", total: budget, unit: "tokens")
        let (tokens, stats) = try m.model.generateBatch(prompts: ids, samplesPerPrompt: samples, settings: settings,
                                                        maxBatch: try args[Options.maxBatch]) { done, streams, produced in
            progress.update(done == streams ? budget : produced, tokens: produced)
        }
        var lines = ""
        for (p, perPrompt) in tokens.enumerated() {
            for (k, cont) in perPrompt.enumerated() {
                let stopped = cont.count < settings.maxNewTokens && ids[p].count + cont.count < m.model.config.maxSeqLen ? "eos" : "length"
                lines += "{\"prompt\": \(p), \"sample\": \(k), \"text\": \(JSONText.quote(texts[p])), "
                    + "\"continuation\": \(JSONText.quote(tok.decode(cont))), "
                    + "\"continuation_ids\": [\(cont.map(String.init).joined(separator: ", "))], \"stopped\": \"\(stopped)\"}\n"
            }
        }
        try AtomicFile.write(lines, to: outPath)
        Out.err(String(format: "%d prompts × %d samples: %d prompt tokens, %d new tokens in %.1f s (%.1f tok/s generated; prefill %.1f s) → %@",
                       ids.count, samples, stats.promptTokens, stats.newTokens, stats.prefillSeconds + stats.decodeSeconds,
                       stats.tokensPerSecond, stats.prefillSeconds, outPath))
    }
}

// MARK: - perplexity

enum PerplexityCommand: Command {
    enum Options {
        static let text = Option<String>.path("text", "file", help: "Raw text (e.g. wiki.test.raw)")
        static let seqlen = Option<Int>("seqlen", "n", defaultText: "min(2048, context)", min: 2, help: "Window length")
        static let maxWindows = Option<Int>("max-windows", "k", min: 1, help: "Evaluate at most k windows")
        static let proto = Option<PerplexityProtocol>("protocol", "name", default: .wanda, choices: [.wanda, .llamacpp],
                                                      help: "Positions scored: wanda = every position, llamacpp = the second half of each window")
        static let progress = Option<String>.path("progress", "file",
                                                  help: "Record each window's NLL in FILE and resume from it: a killed run continues at its next window")
    }
    static let spec = CommandSpec(
        name: "perplexity", abstract: "Perplexity of a raw text file (WikiText-2 protocol by default).",
        usage: "workbench perplexity --model <path> --text <file> [--seqlen <n>] [--max-windows <k>] [--protocol wanda|llamacpp] [--progress <file>] [--json]",
        options: ModelOptions.all + [Options.text, Options.seqlen, Options.maxWindows, Options.proto, Options.progress, OutputOptions.json],
        discussion: """
        Text preparation: CRLF → LF; each non-empty line + "\\n" (an HF wikitext row), joined with "\\n\\n" (Wanda's "\\n\\n".join(test["text"]));
        tokenized once with the tokenizer's BOS rule; non-overlapping windows of --seqlen tokens.
        RESUME (--progress FILE): after a header naming the run (model and text with their sha256, seqlen, protocol,
        tokens, windows), each finished window's NLL sum (exact bits) and count is appended; run again with the same
        FILE and the recorded windows are taken, the rest computed — the same perplexity, bit for bit. A FILE of
        another run is refused, naming the field.
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
        var progress: PerplexityProgress? = nil
        if let p = try args.ifGiven(Options.progress) {
            try OutputGuard.check(output: p, inputs: m.inputFiles + [file])
            let windows = min(ids.count / seqlen, maxWindows ?? Int.max)
            progress = try PerplexityProgress(path: p, run: [
                "model": m.path, "model_sha256": try SHA256.model(path: m.path).sha256, "text": file, "text_sha256": try SHA256.hex(file: file),
                "seqlen": "\(seqlen)", "protocol": proto.rawValue, "tokens": "\(ids.count)", "windows": "\(windows)"])
        }
        let r = try m.model.perplexity(tokens: ids, seqlen: seqlen, protocol: proto, maxWindows: maxWindows,
                                       bos: tok.addsBOS ? tok.bosId : nil, progress: true, recorded: progress?.recorded ?? []) { w, sum, count in
            try progress?.append(window: w, sum: sum, count: count)
        }
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
