import Circuits
import Foundation
import Transformer

// MARK: - prune

enum PruneCommand: Command {
    enum Options {
        static let scores = Option<String>.path("scores", "file", help: "Score file (relevance.safetensors from `workbench attribute`)")
        static let method = Option<AttributionMethod>("method", "m", choices: [.magnitude, .wanda, .gradient, .lrp],
                                                      help: "Compute scores on the fly")
        static let aggregation = Option<RelevanceAccumulator.Aggregation>(
            "aggregation", "a", default: .absPerToken, choices: [.absPerToken, .absPerSample, .signed], help: "How gradient/lrp relevance is aggregated on the fly")
        static let scheme = Option<PruneScheme>("scheme", "s", help: "row | layer | global | nm:N:M | neurons | heads")
        static let sparsity = Option<Double>("sparsity", "f", help: "Fraction to prune, in [0, 1)")
        static let count = Option<Int>("count", "n", help: "Number to prune: weights (unstructured) or neurons/heads (structured)")
        static let layers = Option<String>("layers", "regex",
                                           help: "Only decoder linear weights whose HF name matches (e.g. 'fc1', 'mlp\\.up_proj')")
        static let rank = Option<RankMode>("rank", "mode", default: .abs, choices: [.abs, .signed],
                                           help: "abs = lowest |score| first; signed = lowest score first")
        static let out = Option<String>.path("out", "dir", help: "Output HF directory (must not exist unless --force; never inside the input)")
        static let format = Option<WeightFormat>("format", "f", default: .dense, choices: [.dense, .sparseBitmask],
                                                 help: "dense = F32 with exact zeros (loads everywhere); sparse-bitmask = compressed-tensors' legacy layout (0.12.2–0.14.x only)")
        static let force = Flag("force", help: "Replace an existing output directory")
        static let sequential = Flag("sequential", help: "wanda: prune layer by layer, each layer scored on inputs from the pruned layers below (the reference code)")
        static let sequentialCacheMB = Option<Int>("sequential-cache-mb", "mb", default: 1024, min: 0,
                                                   help: "With --sequential: layer inputs kept in memory, in MB; samples beyond it are recomputed")
    }
    static let spec = CommandSpec(
        name: "prune", abstract: "Prune a model by scores (file or on the fly) and write a complete HF checkpoint directory.",
        usage: "workbench prune --model <path> (--scores <file> | --method <m>) --scheme <s> (--sparsity <f> | --count <n>) --out <dir> [options]",
        options: ModelOptions.all + [Options.scores, Options.method] + CalibrationOptions.all
            + [Options.aggregation, Options.scheme, Options.sparsity, Options.count, Options.layers, Options.rank, Options.out,
               Options.format, Options.force, Options.sequential, Options.sequentialCacheMB],
        discussion: """
        Schemes (ties between equal scores: lower flat index pruned first, so counts are exact):
          row        every output row of every selected matrix loses exactly floor(cols·s) weights (Wanda/SparC³).
          layer      every selected matrix loses floor(numel·s) weights.
          global     one exact ranking (O(n) radix select) across all selected matrices.
          nm:N:M     in every group of M consecutive input columns of each row, the N lowest are pruned:
                     nm:2:4 keeps at most 2 of every 4 (the usual "2:4"). --sparsity is implied (N/M).
          neurons    whole MLP neurons ranked across layers by the file's neuron scores, else by the signed sum of
                     the neuron's gate+up rows and down column (OPT: fc1 row + fc2 column). Zeroes gate/up rows
                     (+ biases) and the down column; OPT: fc1 row, fc1 bias entry and fc2 column.
          heads      whole attention heads ranked by the file's head scores, else by the signed sum of their
                     o_proj/out_proj input columns; zeroes those columns.
        --count is a number of weights (row/layer schemes convert it to the fraction count/total) or of units.
        --layers picks weights by HF name; for neurons/heads a layer takes part if the regex matches any of its
        MLP (attention) weight names or its unit score name (….mlp.neurons / ….fc1.neurons / ….self_attn.heads).
        --method wanda|gradient|lrp runs the attribution engine with `workbench attribute`'s defaults (AttnLRP,
        target auto, seed value logit) except the aggregation: --aggregation abs-per-token (default; Σ_t |R_t|,
        no cancellation between positions), abs-per-sample or signed (the published mean, which measured far worse
        than magnitude for compression). For other settings run `attribute` and use --scores.
        --method wanda scores every layer on the dense model's activations by default; --sequential prunes as the
        Wanda reference code does: layer by layer, each layer's activations computed through the already-pruned
        layers below (per-matrix schemes only: row, layer, nm:N:M). pruning.json records which ("sequential").
        Writes config.json, tokenizer files, model.safetensors (+ model.safetensors.index.json, so loaders that
        glob *.safetensors, such as vLLM, skip mask.safetensors), pruning.json (provenance) and mask.safetensors
        (U8, 1 = kept). --format sparse-bitmask writes model.sparse-bitmask.safetensors instead: only
        compressed-tensors 0.12.2–0.14.x decompress it (README "Compressed checkpoints"); transformers stops
        with "no file named model.safetensors" rather than randomising the weights it cannot read.
        The output is a valid --model for every command. Bad input writes nothing.
        """)

    static func run(_ args: Args) throws {
        let opts = try parse(args)
        let t0 = Date()
        let o = try PrunePipeline.run(opts) { Out.err($0) }
        let total = Date().timeIntervalSince(t0)
        Out.print(o.report.table())
        if !o.mask.units.isEmpty {
            let kind = o.mask.units[0].kind.rawValue
            Out.print("pruned \(o.mask.units.count) \(kind)s: " + o.mask.units.prefix(20).map { "L\($0.layer).\($0.index)" }.joined(separator: " ")
                      + (o.mask.units.count > 20 ? " …" : ""))
        }
        let targeted = o.mask.tensors.filter { $0.shape.count == 2 }
        let tn = targeted.reduce(0) { $0 + $1.count }, tp = targeted.reduce(0) { $0 + $1.pruned }
        Out.print(String(format: "pruned by this run: %d of %d targeted weights (%.6f) in %d matrices", tp, tn,
                         tn == 0 ? 0 : Double(tp) / Double(tn), targeted.count))
        Out.print("bytes on disk: input \(DiskUsage.human(o.inputBytes)) (\(o.inputBytes)); output \(opts.format.weightsFileName) "
                  + "\(DiskUsage.human(o.written.modelBytes)) (\(o.written.modelBytes)), directory \(DiskUsage.human(o.written.totalBytes))")
        Out.print("wrote \(o.written.directory) (\(opts.format.rawValue))")
        Out.err(o.seconds.map { String(format: "%@ %.2f s", $0.stage, $0.seconds) }.joined(separator: ", ")
                + String(format: "; total %.2f s", total))
    }

    /// Parses and validates everything that needs no model; library argument errors become usage errors.
    static func parse(_ args: Args) throws -> PruneOptions {
        do {
            let model = try args[ModelOptions.model]
            let out = try args[Options.out]
            let scheme = try args[Options.scheme]
            let scores: ScoreSource
            switch (try args.ifGiven(Options.scores), try args.ifGiven(Options.method)) {
            case (let f?, nil):
                if let o = (CalibrationOptions.all + [Options.aggregation]).first(where: args.given) {
                    throw UsageError(message: "--\(o.name) applies only with --method")
                }
                scores = .file(f)
            case (nil, let m?):
                let aggregation = try args[Options.aggregation]
                if args.given(Options.aggregation), !m.explains {
                    throw UsageError(message: "--aggregation applies only with --method gradient or lrp")
                }
                let calibration = try CalibrationOptions.calibration(args, needsData: m.needsData, method: m.rawValue)
                scores = .method(m, calibration, aggregation: aggregation)
            case (nil, nil): throw UsageError(message: "Missing expected argument '--scores <file>' or '--method <m>'")
            case (_?, _?): throw UsageError(message: "--scores and --method are mutually exclusive")
            }
            let amount: PruneAmount?
            switch (try args.ifGiven(Options.sparsity), try args.ifGiven(Options.count)) {
            case (let s?, nil): amount = .fraction(s)
            case (nil, let c?): amount = .count(c)
            case (nil, nil): amount = nil
            case (_?, _?): throw UsageError(message: "--sparsity and --count are mutually exclusive")
            }
            let spec = try PruneSpec(scheme: scheme, amount: amount, rank: try args[Options.rank], layers: try args.ifGiven(Options.layers))
            let sequential = args[Options.sequential]
            if !sequential, args.given(Options.sequentialCacheMB) {
                throw UsageError(message: "--sequential-cache-mb applies only with --sequential")
            }
            let cacheMB = try args[Options.sequentialCacheMB]
            let (cacheBytes, overflow) = cacheMB.multipliedReportingOverflow(by: 1 << 20)
            if overflow { throw UsageError(message: "--sequential-cache-mb \(cacheMB) is too large") }
            let o = PruneOptions(model: model, scores: scores, spec: spec, out: out, format: try args[Options.format],
                                 force: args[Options.force], sequentialCacheBytes: sequential ? cacheBytes : nil)
            try o.validateSequential()
            return o
        } catch let e as PruneError where e.isUsageError {
            throw UsageError(message: e.localizedDescription)
        }
    }
}
