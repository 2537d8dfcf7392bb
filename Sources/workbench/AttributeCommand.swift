#if canImport(Glibc)
import Glibc
#endif
import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - Stop flag set by SIGINT/SIGTERM, checked between samples

/// Set by the signal handler; the runner checkpoints and the command exits 130.
nonisolated(unsafe) var attributeStopRequested: sig_atomic_t = 0

/// First SIGINT/SIGTERM: request a checkpoint-and-exit and restore the default
/// action, so a second signal kills at once (checkpoints are atomic, so that is safe).
func installStopHandlers() {
    for sig in [SIGINT, SIGTERM] {
        signal(sig) { s in
            attributeStopRequested = 1
            signal(s, SIG_DFL)
        }
    }
}

// MARK: - attribute

enum AttributeCommand: Command {
    static let spec = CommandSpec(
        name: "attribute", abstract: "Score every decoder weight (LRP, gradient, Wanda, magnitude) or unit (activation) over a reference set.",
        usage: "workbench attribute --model <path> (--prompts <file> | --text <file> --seqlen <n> --samples <k> [--seed <s>]) "
            + "[--method lrp|gradient|wanda|magnitude|activation] [--target <spec>] [--out <file>] [options]",
        options: [Common.model,
                  OptionSpec(name: "prompts", value: "file", help: "Prompt set: .txt (one per line) or .jsonl (see below)."),
                  OptionSpec(name: "text", value: "file", help: "Corpus to draw random windows from (.jsonl or plain text)."),
                  OptionSpec(name: "seqlen", value: "n", help: "Tokens per corpus window (with --text)."),
                  OptionSpec(name: "samples", value: "k", help: "Windows to draw (with --text), or use only the first k prompts."),
                  OptionSpec(name: "seed", value: "s", help: "Window sampling seed (default 0)."),
                  OptionSpec(name: "method", value: "name", help: "lrp (default), gradient, wanda, magnitude, activation."),
                  OptionSpec(name: "target", value: "spec", help: "What is explained (lrp/gradient; default auto, see below)."),
                  OptionSpec(name: "seed-value", value: "v", help: "Seed the explained output with its logit (default) or one."),
                  OptionSpec(name: "abs-per-sample", value: nil, help: "Average |R| per sample instead of signed R (PXP)."),
                  OptionSpec(name: "abs-per-token", value: nil, help: "Sum |R| over positions: |W|⊙Σ_t|δ_t||x_t|ᵀ (no cancellation; +1 GEMM)."),
                  OptionSpec(name: "rule", value: "r", help: "attnlrp (default) or cp-lrp (lrp only)."),
                  OptionSpec(name: "epsilon", value: "e", help: "LRP-ε on linear layers (lrp only; default 0)."),
                  OptionSpec(name: "max-new-tokens", value: "n", help: "Greedy continuation length for --target continuation (default 20)."),
                  OptionSpec(name: "out", value: "file", help: "Output safetensors (default relevance.safetensors)."),
                  OptionSpec(name: "resume", value: nil, help: "Continue an interrupted run from <out>.partial."),
                  OptionSpec(name: "checkpoint-every", value: "n", help: "Checkpoint every n samples (default 8; 0 = only on stop)."),
                  OptionSpec(name: "memory-budget-mb", value: "m", help: "Activations the LRP pass may keep (default 1536; beyond it lower blocks are recomputed)."),
                  OptionSpec(name: "quiet", value: nil, help: "No progress line.")],
        discussion: """
        TARGETS (--target, lrp and gradient):
          auto          per prompt: its own target fields, else its continuation, else next-token (default)
          next-token    at every position t the logit of the true next token x_{t+1} (one backward pass per sequence)
          last-max      the largest logit at the last position
          continuation  the continuation tokens: given in the prompt file, else generated greedily (--max-new-tokens)
          [POS:]REF[-REF],…   explicit logits at positions: REF is a token id or a quoted token text; A-B is the
                        logit difference logit(A) − logit(B); POS < 0 counts from the end; no POS = last prompt token.
                        Examples: -1:1234   '" Paris"'   '-1:" Mary"-" John"'   3:17,5:42
        PROMPT FILES: .txt = one prompt per line (blank lines skipped). .jsonl = one object per line with
          "text" (or "prompt") or pre-tokenized "ids"; optional "target" (" Paris", 1234, or
          {"position": -1, "token": " Paris"}), "target_id", "target_ids", "targets" [...], "contrast" / "contrast_id"
          (explain logit(target) − logit(contrast)), "continuation" / "continuation_ids". Other fields are ignored.
        CORPUS (--text): window k picks document (SplitMix64(seed) mod D) and crops --seqlen tokens at a random
          offset; documents shorter than a window are joined with the following ones, EOS between them; BOS is put
          in front when the tokenizer uses one. .jsonl documents come from "text", else "prefix"+"gold_completion".
        OUTPUT: one F32 tensor per decoder linear weight under its HF name (lrp, gradient: mean over samples of
          Σ_positions W ⊙ ∂̃y/∂W; wanda: |W|·‖X_j‖₂; magnitude: |W|), per-neuron "….mlp.neurons" / "….fc1.neurons" and
          per-head "….self_attn.heads" scores (lrp, gradient, activation; activation has no weight tensors), and
          __metadata__ (method, rule, target, seed value, samples, seqlen, sha256 of model and data, …).
        RESUME: a checkpoint <out>.partial is written every --checkpoint-every samples and on SIGINT/SIGTERM (exit 130);
          --resume continues it after checking that every setting matches, and gives bit-identical tensors.
        """)

    static func run(_ args: Args) throws {
        // Usage checks (no I/O yet).
        let method: AttributionMethod = try args.choice("method", default: .lrp)
        let prompts = args.string("prompts"), text = args.string("text")
        if method.needsData, (prompts == nil) == (text == nil) {
            throw UsageError(message: "Give exactly one of '--prompts <file>' or '--text <file>'")
        }
        if prompts != nil, text != nil { throw UsageError(message: "'--prompts' and '--text' cannot both be given") }
        let seqlen = try args.int("seqlen", min: 2), samplesArg = try args.int("samples", min: 1)
        let seed = try args.int("seed", default: 0, min: 0)!
        if text != nil, seqlen == nil || samplesArg == nil {
            throw UsageError(message: "'--text' needs '--seqlen <n>' and '--samples <k>'")
        }
        if prompts != nil, seqlen != nil || args.string("seed") != nil {
            throw UsageError(message: "'--seqlen' and '--seed' apply to '--text' corpora only")
        }
        if !method.explains {
            for o in ["target", "seed-value", "abs-per-sample", "abs-per-token", "rule", "epsilon", "max-new-tokens"]
            where args.string(o) != nil || args.flag(o) {
                throw UsageError(message: "'--\(o)' applies to --method lrp and gradient only")
            }
        }
        if method == .gradient, args.string("rule") != nil || args.string("epsilon") != nil {
            throw UsageError(message: "'--rule' and '--epsilon' apply to --method lrp only (gradient uses the plain gradient)")
        }
        let target: TargetMode
        do { target = try TargetMode.parse(args.string("target") ?? "auto") } catch { throw UsageError(message: error.localizedDescription) }
        if text != nil, target == .continuation { throw UsageError(message: "'--target continuation' needs a prompt file") }
        let variant: LRPRules.Variant = try args.choice("rule", default: .attnLRP)
        if variant == .gradient { throw UsageError(message: "The value 'gradient' is invalid for '--rule': use --method gradient") }
        let epsilon = try args.double("epsilon", default: 0, range: 0...1)!
        let seedValue: SeedValue = try args.choice("seed-value", default: .logit)
        let maxNew = try args.int("max-new-tokens", default: 20, min: 0)!
        let every = try args.int("checkpoint-every", default: 8, min: 0)!
        let budgetMB = try args.int("memory-budget-mb", default: AttributionSettings().memoryBudget >> 20, min: 1)!
        let out = args.string("out") ?? "relevance.safetensors"
        let resume = args.flag("resume")
        let modelPath = try args.required("model")
        try checkOutput(out, inputs: [modelPath, prompts, text].compactMap { $0 }, modelPath: modelPath)
        try AttributionRunner.preflight(out: out, resume: resume)

        // Load and validate everything before heavy work.
        let m = try Common.load(args, tokenizer: method.needsData)
        var settings = AttributionSettings()
        settings.method = method
        settings.rules = LRPRules(variant, epsilon: Float(epsilon))
        // Corpus windows have no per-prompt targets: record what `auto` means for them.
        settings.target = text != nil && target == .auto ? .nextToken : target
        settings.seedValue = seedValue
        settings.absPerSample = args.flag("abs-per-sample")
        settings.absPerToken = args.flag("abs-per-token")
        if settings.absPerSample && settings.absPerToken {
            throw UsageError(message: "--abs-per-sample and --abs-per-token are exclusive")
        }
        settings.maxNewTokens = maxNew
        settings.memoryBudget = budgetMB << 20
        settings.modelPath = modelPath
        var samples: [AttributionSample] = []
        if !method.needsData, prompts != nil || text != nil { Out.err("note: --method magnitude reads no data; the data file is ignored") }
        if method.needsData, let p = prompts {
            var set = try PromptSet.load(p)
            if let k = samplesArg {
                guard k <= set.entries.count else {
                    throw UsageError(message: "'--samples \(k)' but \(p) has \(set.entries.count) prompts")
                }
                set.entries = Array(set.entries.prefix(k))
            }
            samples = try PromptSamples.prepare(set, model: m.model, tokenizer: m.tokenizer, target: target,
                                                maxNewTokens: maxNew, progress: !args.flag("quiet"))
            settings.dataKind = .prompts
            settings.dataPath = p
        } else if method.needsData, let t = text, let n = seqlen, let k = samplesArg {
            let tok = try m.requireTokenizer()
            samples = try TextCorpus.load(t).windows(tokenizer: tok, seqlen: n, count: k, seed: UInt64(seed),
                                                     vocab: m.model.config.vocabSize, target: target)
            settings.dataKind = .corpus
            settings.dataPath = t
            settings.seqlen = n
            settings.corpusSeed = UInt64(seed)
        }
        settings.samples = samples.count
        let t0 = Date()
        let h = try SHA256.model(path: modelPath)
        settings.modelSHA256 = h.sha256
        settings.modelFiles = h.files
        if settings.dataKind != .none { settings.dataSHA256 = try SHA256.hex(file: settings.dataPath) }
        Out.err(String(format: "sha256 of model and data in %.2f s", Date().timeIntervalSince(t0)))

        // Run.
        var options = AttributionRunOptions()
        options.resume = resume
        options.checkpointEvery = every
        options.progress = !args.flag("quiet")
        options.shouldStop = { attributeStopRequested != 0 }
        if resume, !FileManager.default.fileExists(atPath: AttributionRunner.checkpointPath(for: out)) {
            Out.err("note: --resume: no checkpoint \(AttributionRunner.checkpointPath(for: out)); starting from the first sample")
        }
        installStopHandlers()
        let summary: AttributionSummary
        do {
            summary = try AttributionRunner.run(model: m.model, samples: samples, settings: settings, out: out, options: options)
        } catch let e as AttributionError {
            if case .interrupted = e { Out.err("Error: \(e.localizedDescription)"); exit(130) }
            throw e
        }
        printSummary(summary, settings)
    }

    static func printSummary(_ s: AttributionSummary, _ st: AttributionSettings) {
        let f = st.fingerprintFields.reduce(into: [String: String]()) { $0[$1.key] = $1.value }
        Out.print("method: \(st.method.rawValue)" + (st.method.explains
            ? " (rule \(f["rule"] ?? ""), ε \(f["epsilon"] ?? "n/a"), target \(st.target), seed value \(st.seedValue.rawValue)\(st.absPerSample ? ", |R| per sample" : "")\(st.absPerToken ? ", |R| per position" : ""))"
            : ""))
        Out.print("samples: \(s.samples)" + (s.resumedAt > 0 ? " (resumed at \(s.resumedAt))" : ""))
        Out.print("tokens: \(s.tokens)")
        Out.print(String(format: "time: %.2f s (%.1f tok/s this session)", s.seconds, s.tokensPerSecond))
        if let c = s.conservationMean { Out.print(String(format: "conservation (Σ input relevance / Σ explained): mean %.4f", c)) }
        Out.print("output: \(s.out) (\(s.tensorCount) tensors)")
    }

    /// `--out` must not be (or overwrite) an input, nor a directory.
    static func checkOutput(_ out: String, inputs: [String], modelPath: String) throws {
        func canonical(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
        let o = canonical(out), cp = canonical(AttributionRunner.checkpointPath(for: out))
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDir), isDir.boolValue {
            throw UsageError(message: "'--out \(out)' is a directory")
        }
        for i in inputs where canonical(i) == o || canonical(i) == cp { throw AttributionError.outputIsInput(path: out) }
        // An HF model directory: its files are inputs too.
        let dir = canonical(modelPath)
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue,
           [o, cp].contains(where: { URL(fileURLWithPath: $0).deletingLastPathComponent().path == dir
                && FileManager.default.fileExists(atPath: $0) }) {
            throw AttributionError.outputIsInput(path: out)
        }
    }
}
