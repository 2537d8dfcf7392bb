import Foundation
import Tokenize
import Transformer

// MARK: - Shared model loading

enum Common {
    static let model = OptionSpec(name: "model", value: "path", help: "HF directory, .gguf file or llama2.c .bin.")

    static func load(_ args: Args, tokenizer: Bool = true) throws -> LoadedModel {
        let path = try args.required("model")
        let m = try ModelLoader.load(path, needTokenizer: tokenizer)
        Out.err(String(format: "loaded %@ (%@, %@) in %.2f s", path, m.model.config.family.rawValue, m.sourceDType, m.loadSeconds))
        return m
    }

    /// Reads a whole text file, or a typed error naming it.
    static func readText(_ path: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { throw ModelError.fileNotFound(path: path) }
        guard let d = FileManager.default.contents(atPath: path) else {
            throw ModelError.unreadable(path: path, reason: "permission denied or not a file")
        }
        return String(decoding: d, as: UTF8.self)
    }
}

// MARK: - info

enum InfoCommand: Command {
    static let spec = CommandSpec(name: "info", abstract: "Describe a checkpoint: family, sizes, dtype, parameters, tokenizer.",
                                  usage: "workbench info --model <path>", options: [Common.model])

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
        \(c.family == .llama ? "rope theta: \(c.ropeTheta)\n" : "")norm eps: \(c.normEps)
        tied embeddings: \(c.tiedEmbeddings)
        biases: attention \(c.attentionBias), mlp \(c.mlpBias)
        parameters: \(m.model.parameterCount) (\(String(format: "%.1f", Double(m.model.parameterCount) / 1e6))M)
        tokenizer: \(m.tokenizer?.kind ?? "none")
        """)
    }
}

// MARK: - tokenize

enum TokenizeCommand: Command {
    static let spec = CommandSpec(name: "tokenize", abstract: "Print the token ids of a text, space-separated.",
                                  usage: "workbench tokenize --model <path> --text <text>",
                                  options: [Common.model, OptionSpec(name: "text", value: "text", help: "Text to tokenize.")])

    static func run(_ args: Args) throws {
        let text = try args.required("text")
        let m = try Common.load(args)
        let ids = try m.requireTokenizer().encode(text)
        Out.print(ids.map(String.init).joined(separator: " "))
    }
}

// MARK: - generate

enum GenerateCommand: Command {
    static let spec = CommandSpec(
        name: "generate", abstract: "Continue a prompt; only the continuation is printed on stdout, stats on stderr.",
        usage: "workbench generate --model <path> --prompt <text> [--max-new-tokens <n>] [--temperature <t>] [--top-p <p>] [--seed <s>]",
        options: [Common.model,
                  OptionSpec(name: "prompt", value: "text", help: "Prompt text (BOS added per the tokenizer's rule)."),
                  OptionSpec(name: "max-new-tokens", value: "n", help: "Tokens to generate (default 64)."),
                  OptionSpec(name: "temperature", value: "t", help: "0 = greedy (default 0)."),
                  OptionSpec(name: "top-p", value: "p", help: "Nucleus sampling mass (default 1)."),
                  OptionSpec(name: "seed", value: "s", help: "Sampling seed (default 0).")],
        discussion: """
        For 128 or more new tokens, decode first makes transposed copies of the weights with out ≥ in (q, o, gate,
        up, fc1, lm_head; at most 1 GiB, else it decodes from the plain weights): OpenBLAS streams them ~1.3× faster
        one token at a time. SmolLM2-135M: 37 → 45–53 tok/s for +400 MB of memory and 0.2–0.9 s to make them.
        """)

    static func run(_ args: Args) throws {
        let prompt = try args.required("prompt")
        let maxNew = try args.int("max-new-tokens", default: 64, min: 0)!
        let temp = try args.double("temperature", default: 0, range: 0...100)!
        let topP = try args.double("top-p", default: 1, range: 0...1)!
        let seed = try args.int("seed", default: 0, min: 0)!
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
    static let spec = CommandSpec(
        name: "perplexity", abstract: "Perplexity of a raw text file (WikiText-2 protocol by default).",
        usage: "workbench perplexity --model <path> --text <file> [--seqlen <n>] [--max-windows <k>] [--protocol wanda|llamacpp] [--json]",
        options: [Common.model,
                  OptionSpec(name: "text", value: "file", help: "Raw text (e.g. wiki.test.raw)."),
                  OptionSpec(name: "seqlen", value: "n", help: "Window length (default min(2048, context))."),
                  OptionSpec(name: "max-windows", value: "k", help: "Evaluate at most k windows."),
                  OptionSpec(name: "protocol", value: "name", help: "wanda (all positions, default) or llamacpp (second half)."),
                  OptionSpec(name: "json", value: nil, help: "Print one JSON object.")],
        discussion: """
        Text preparation: CRLF → LF; non-empty lines joined with "\\n\\n" (Wanda's "\\n\\n".join(test["text"]));
        tokenized once with the tokenizer's BOS rule; non-overlapping windows of --seqlen tokens.
        """)

    static func run(_ args: Args) throws {
        let file = try args.required("text")
        let proto: PerplexityProtocol = try args.choice("protocol", default: .wanda)
        let maxWindows = try args.int("max-windows", min: 1)
        let seqlenArg = try args.int("seqlen", min: 2)
        let m = try Common.load(args)
        let tok = try m.requireTokenizer()
        let text = joinRawTextRows(try Common.readText(file))
        let t0 = Date()
        let ids = try tok.encode(text)
        Out.err(String(format: "tokenized %@: %d tokens in %.2f s", file, ids.count, Date().timeIntervalSince(t0)))
        let seqlen = seqlenArg ?? min(2048, m.model.config.maxSeqLen)
        let r = try m.model.perplexity(tokens: ids, seqlen: seqlen, protocol: proto, maxWindows: maxWindows,
                                       bos: tok.addsBOS ? tok.bosId : nil, progress: true)
        if args.flag("json") {
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
