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
    enum Options {
        static let method = Option<AttributionMethod>("method", "name", default: .lrp,
                                                      choices: [.lrp, .gradient, .wanda, .magnitude, .activation], help: "Scoring method")
        static let target = Option<TargetMode>("target", "spec", default: .auto, help: "What is explained, lrp/gradient only; see TARGETS below")
        static let absPerSample = Flag("abs-per-sample", help: "Average |R| per sample instead of signed R (PXP)")
        static let absPerToken = Flag("abs-per-token", help: "Sum |R| over positions: |W|⊙Σ_t|δ_t||x_t|ᵀ (no cancellation; +1 GEMM)")
        static let out = Option<String>.path("out", "file", default: "relevance.safetensors", help: "Output safetensors")
        static let resume = Flag("resume", help: "Continue an interrupted run from <out>.partial")
        static let checkpointEvery = Option<Int>("checkpoint-every", "n", default: 8, min: 0,
                                                 help: "Checkpoint every n samples; 0 = only on stop")
        /// Options that only mean something when an output is explained (lrp, gradient).
        static let explainOnly: [any CLIOption] = [target, LRPOptions.seedValue, absPerSample, absPerToken, LRPOptions.rule,
                                                   LRPOptions.epsilon, LRPOptions.maxNewTokens]
    }
    static let spec = CommandSpec(
        name: "attribute", abstract: "Score every decoder weight (LRP, gradient, Wanda, magnitude) or unit (activation) over a reference set.",
        usage: "workbench attribute --model <path> (--prompts <file> | --text <file> --seqlen <n> --samples <k> [--seed <s>]) "
            + "[--method lrp|gradient|wanda|magnitude|activation] [--target <spec>] [--out <file>] [options]",
        options: ModelOptions.all + CalibrationOptions.all
            + [Options.method, Options.target, LRPOptions.seedValue, Options.absPerSample, Options.absPerToken, LRPOptions.rule,
               LRPOptions.epsilon, LRPOptions.maxNewTokens, Options.out, Options.resume, Options.checkpointEvery,
               DistributedOptions.shard, MemoryOptions.budgetMB, OutputOptions.quiet],
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
        SHARDS (--shard K/N): the samples are drawn as for the whole run, and shard K takes the contiguous samples
          [K·S/N, (K+1)·S/N); --out is then a part holding their raw F64 sums, the shard, its samples, counts and every
          setting with the model and data sha256. A part resumes like a run (--resume). 'workbench merge' adds the N parts
          up into the file one run writes.
        MPI: under Open MPI's mpirun (loaded at run time, no build dependency) each rank runs shard rank/size with its own
          checkpoint <out>.shard-K-of-N.partial, rank 0 adds the ranks' sums in rank order and writes --out (the merge
          of the same N shards, bit for bit). A failing rank ends the job naming itself; rerun with --resume. MPICH-family
          launchers are refused (other ABI). Ranks sharing a machine's cores run one BLAS thread each. See docs/slurm.md.
        """)

    static func run(_ args: Args) throws {
        // Under Open MPI's mpirun (more than one rank) every rank runs its shard; see Distributed/MPIAttribution.
        guard let mpi = try MPI.launched() else { return try attribute(args, mpi: nil) }
        let who = "rank \(mpi.rank) of \(mpi.size)"
        do {
            try attribute(args, mpi: mpi)
            mpi.finalize()
        } catch let e as UsageError {
            Out.err("Error: \(who): \(e.message)")
            Out.err("Usage: \(spec.usage)")
            mpi.abort(64)
        } catch let e as AttributionError where e.isInterruption {
            Out.err("Error: \(who): \(e.localizedDescription)")
            mpi.abort(130)
        } catch {
            // The launcher ends the other ranks; finished ranks keep their checkpoints for --resume.
            Out.err("Error: \(who): \(error.localizedDescription)")
            mpi.abort(1)
        }
    }

    /// `WORKBENCH_TEST_KILL_AFTER=R:K`: rank R (0 without MPI) SIGKILLs itself after K of its samples. A test hook
    /// for "a rank dies mid-shard" (MPICLITests), deterministic where killing from outside would race the run.
    static func killHook(rank: Int) throws -> Int? {
        let name = "WORKBENCH_TEST_KILL_AFTER"
        guard let v = ProcessInfo.processInfo.environment[name] else { return nil }
        let p = v.split(separator: ":", omittingEmptySubsequences: false)
        guard p.count == 2, let r = Int(p[0]), let k = Int(p[1]), r >= 0, k >= 0 else {
            throw UsageError(message: "\(name)='\(QuotedName.safe(v))': expected RANK:SAMPLES, two integers ≥ 0")
        }
        return r == rank ? k : nil
    }

    static func attribute(_ args: Args, mpi: MPI?) throws {
        // Usage checks (no I/O yet).
        let method = try args[Options.method]
        let calibration = try CalibrationOptions.calibration(args, needsData: method.needsData, method: method.rawValue)
        if !method.explains, let o = Options.explainOnly.first(where: args.given) {
            throw UsageError(message: "'--\(o.name)' applies to --method lrp and gradient only")
        }
        if method == .gradient, let o = [LRPOptions.rule, LRPOptions.epsilon].first(where: args.given) {
            throw UsageError(message: "'--\(o.name)' applies to --method lrp only (gradient uses the plain gradient)")
        }
        let target = try args[Options.target]
        do { try calibration?.check(target: target) } catch { throw UsageError(message: error.localizedDescription) }
        let lrp = try LRPOptions.chosen(args)
        let every = try args[Options.checkpointEvery]
        let budgetMB = try args[MemoryOptions.budgetMB]
        let out = try args[Options.out]
        let resume = args[Options.resume]
        let modelPath = try args[ModelOptions.model]
        let shard = try args.ifGiven(DistributedOptions.shard)
        if shard != nil, !method.needsData {
            throw UsageError(message: "'--shard' needs a method that reads data (magnitude scores need no samples)")
        }
        if args[Options.absPerSample] && args[Options.absPerToken] {
            throw UsageError(message: "--abs-per-sample and --abs-per-token are exclusive")
        }
        if let mpi {
            if shard != nil { throw UsageError(message: "'--shard' under mpirun: each rank already runs shard rank/size; drop --shard") }
            try MPIAttribution.preflight(out: out, resume: resume, mpi: mpi)
            // Ranks on one machine share its cores: with one core each, no threads inside a rank.
            if mpi.localSize >= ProcessInfo.processInfo.activeProcessorCount,
               ProcessInfo.processInfo.environment["WORKBENCH_BLAS_THREADS"] == nil {
                setenv("WORKBENCH_BLAS_THREADS", "1", 0)
                parallelElementwise = false
            }
        } else {
            try AttributionRunner.preflight(out: out, resume: resume)
        }

        // Load and validate everything before heavy work.
        let m = try Common.load(args, tokenizer: method.needsData)
        try checkOutput(out, inputs: m.inputFiles + SHA256.modelFiles(path: modelPath) + [calibration?.path].compactMap { $0 })
        var settings = AttributionSettings()
        settings.method = method
        settings.rules = lrp.rules
        // Corpus windows have no per-prompt targets: record what `auto` means for them.
        if case .corpus? = calibration, target == .auto { settings.target = .nextToken } else { settings.target = target }
        settings.seedValue = lrp.seedValue
        settings.absPerSample = args[Options.absPerSample]
        settings.absPerToken = args[Options.absPerToken]
        settings.maxNewTokens = lrp.maxNewTokens
        settings.memoryBudget = budgetMB << 20
        settings.modelPath = modelPath
        var samples: [AttributionSample] = []
        if let calibration {
            do {
                samples = try calibration.samples(model: m.model, tokenizer: m.tokenizer, modelPath: m.path, target: target,
                                                  maxNewTokens: lrp.maxNewTokens, progress: !args[OutputOptions.quiet])
            } catch let e as CalibrationError {
                throw UsageError(message: e.localizedDescription)
            }
            calibration.record(into: &settings)
        }
        settings.samples = samples.count
        settings.shard = shard
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
        options.progress = !args[OutputOptions.quiet] && (mpi?.rank ?? 0) == 0
        options.shouldStop = { attributeStopRequested != 0 }
        options.log = { Out.err($0) }
        options.killAfter = try killHook(rank: mpi?.rank ?? 0)
        let cp = try mpi.map { MPIAttribution.checkpointPath(out: out, shard: try Shard(index: $0.rank, count: $0.size)) }
            ?? AttributionRunner.checkpointPath(for: out)
        if resume, !FileManager.default.fileExists(atPath: cp) {
            Out.err("note: --resume: no checkpoint \(cp); starting from the first sample")
        }
        installStopHandlers()
        if let mpi {
            // Interruptions and errors end the job in `run` (MPI_Abort), after this rank's checkpoint.
            let summary = try MPIAttribution.run(model: m.model, samples: samples, settings: settings, out: out, mpi: mpi, options: options)
            if let summary { printSummary(summary, settings, ranks: mpi.size) }
            return
        }
        let summary: AttributionSummary
        do {
            summary = try AttributionRunner.run(model: m.model, samples: samples, settings: settings, out: out, options: options)
        } catch let e as AttributionError {
            if e.isInterruption { Out.err("Error: \(e.localizedDescription)"); exit(130) }
            throw e
        }
        printSummary(summary, settings)
    }

    static func printSummary(_ s: AttributionSummary, _ st: AttributionSettings, ranks: Int? = nil) {
        let f = st.fingerprintFields.reduce(into: [String: String]()) { $0[$1.key] = $1.value }
        Out.print("method: \(st.method.rawValue)" + (st.method.explains
            ? " (rule \(f["rule"] ?? ""), ε \(f["epsilon"] ?? "n/a"), target \(st.target), seed value \(st.seedValue.rawValue)\(st.absPerSample ? ", |R| per sample" : "")\(st.absPerToken ? ", |R| per position" : ""))"
            : ""))
        Out.print("samples: \(s.samples)" + (s.resumedAt > 0 ? " (resumed at \(s.resumedAt))" : ""))
        Out.print("tokens: \(s.tokens)")
        if let ranks { Out.print("ranks: \(ranks) (MPI; time and rate are rank 0's shard)") }
        Out.print(String(format: "time: %.2f s (%.1f tok/s this session)", s.seconds, s.tokensPerSecond))
        if let c = s.conservationMean { Out.print(String(format: "conservation (Σ input relevance / Σ explained): mean %.4f", c)) }
        Out.print("output: \(s.out) (\(s.tensorCount) tensors" + (st.shard.map { ", raw sums of shard \($0), samples \(Shard.text($0.range(of: st.samples))) of \(st.samples)" } ?? "") + ")")
    }

    /// Neither `--out` nor its checkpoint may be a file the run reads (the model's files, including
    /// every file hashed into its fingerprint, and the data file).
    static func checkOutput(_ out: String, inputs: [String]) throws {
        try OutputGuard.check(output: out, inputs: inputs)
        try OutputGuard.check(output: AttributionRunner.checkpointPath(for: out), inputs: inputs)
    }
}
