import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - circuit

enum CircuitCommand: Command {
    enum Options {
        static let prompts = Option<String>.path("prompts", "file", help: "Reference task: .jsonl (text, answer, distractor?, corrupted?) or EAP-IG/MIB .csv")
        static let heldout = Option<String>.path("heldout", "file", help: "Held-out task file: f is reported on it at the size found")
        static let method = Option<CircuitMethod>("method", "name", default: .lrp, choices: CircuitMethod.allCases, help: "Component scores")
        static let aggregation = Option<RelevanceAccumulator.Aggregation>(
            "aggregation", "a", default: .signed, choices: [.signed, .absPerToken],
            help: "lrp/gradient: signed R (published definition) or |R| per token")
        static let granularity = Option<Granularity>("granularity", "g", default: .heads, choices: Granularity.allCases,
                                                     help: "Components: every decoder linear weight, MLP neurons or attention heads")
        static let scheme = Option<CircuitScheme>("scheme", "s", default: .global, choices: CircuitScheme.allCases,
                                                  help: "global ranking, or the same fraction per row (weights) / per layer (units)")
        static let layers = Option<String>("layers", "regex", help: "Only components whose HF tensor name matches are candidates; the rest stay")
        static let ablation = Option<AblationKind>("ablation", "kind", default: .zero, choices: AblationKind.allCases,
                                                   help: "How components outside the circuit are removed (weights: zero only)")
        static let rank = Option<RankMode>("rank", "sign", default: .signed, choices: [.signed, .abs],
                                           help: "Score sign: keep the highest signed scores, or the largest |score|")
        static let threshold = Option<Double>("threshold", "f", default: 0.9, range: 0...1000,
                                              help: "Faithfulness the circuit must reach on the reference set")
        static let seed = Option<Int>("seed", "s", min: 0, help: "Seed of --method random's scores (default 0)")
        static let points = Option<Int>("points", "n", default: 16, min: 12, help: "Kept-fraction grid points (0, then log-spaced to 1)")
        static let bisection = Option<Double>("bisection-tolerance", "r", range: 0...0.5,
            help: "Stop bisecting once the bracket is within r × the circuit's size; the circuit is then at most that much above the exact one (default 0 = exact for heads, 0.01 for neurons and weights)")
        static let seeds = Option<Int>("seeds", "n", default: 1, min: 1,
                                       help: "Cut the reference file into n disjoint parts and find a circuit on each (random: seed + i); report mean ± SEM")
        static let out = Option<String>.path("out", "dir", help: "Output directory (must not exist; written atomically)")
        static let saveCheckpoint = Option<String>.path("save-checkpoint", "dir",
                                                   help: "Also write the circuit as a pruned HF checkpoint (zero ablation, one seed)")
    }
    static let spec = CommandSpec(
        name: "circuit", abstract: "Find the sparsest weights, neurons or heads that keep a task's metric (faithfulness curve + bisection).",
        usage: "workbench circuit --model <path> --prompts <task> [--heldout <task>] --method lrp|gradient|wanda|activation|magnitude|random "
            + "--granularity weights|neurons|heads [--scheme global|row] [--layers <regex>] [--ablation zero|mean|patch] "
            + "[--threshold 0.9] [--seed <s>] [--seeds <n>] --out <dir> [--save-checkpoint <dir>] [--shard K/N --out <part.json> | <part>…]",
        options: ModelOptions.all + [Options.prompts, Options.heldout, Options.method, Options.aggregation, Options.granularity,
                                     Options.scheme, Options.layers, Options.ablation, Options.rank, Options.threshold, Options.seed,
                                     Options.points, Options.bisection, Options.seeds, Options.out, Options.saveCheckpoint, DistributedOptions.shard,
                                     OutputOptions.quiet],
        discussion: """
        Attribution runs once on the reference prompts and explains, per prompt at its last position, mean logit(answers) −
        mean logit(distractors) (IOI: logit(IO) − logit(S)). Components are ranked once; a circuit of size k keeps the k best.
        f(C) = (m(C) − m(∅)) / (m(M) − m(∅)) with m the task's headline metric (logit difference when every prompt has a
        distractor), M the full model and ∅ every candidate ablated — both measured. f is evaluated at 0 and on a log grid of
        kept fractions up to 1, then bisected to the smallest k with f ≥ --threshold on the reference set (neurons and weights: to
        within 1 % of k by default, --bisection-tolerance; never below the exact crossing); the held-out f is measured at that size. mean ablation uses the mean over every reference token; patch the corrupted prompt of each prompt.
        OUTPUT (--out DIR, atomic): curve.json, curve.csv, curve.svg, mask.safetensors (U8, HF names, 1 = kept), circuit.json
        (hashes, every setting, size, kept per tensor and per layer, kept heads/neurons with scores); head and neuron
        circuits also graph.json in EAP-IG's graph schema (kept heads a{L}.h{H} and MLPs m{L} with a kept neuron in_graph,
        edges in_graph when both ends are; node scores = component scores, edge scores 0).
        SEEDS (--seeds N > 1): the reference prompts are shuffled with a fixed seed and cut into N disjoint parts of
        ⌊n/N⌋; the whole discovery runs on each part (random: score seed --seed + i) against the same held-out set.
        DIR/seed-i/ holds each run's files; DIR/seeds.json and seeds.csv the per-seed numbers and their mean ± SEM
        (size, f on reference and held-out, AUCs, the mean curve, and how many seeds kept each head or neuron).
        circuit.html (self-contained): f vs kept fraction (mean ± SEM over seeds), the size table, a layer × matrix
        heatmap of kept fractions, the heads (layer × head grid) or neurons kept, and for head circuits on IOI
        prompts every kept head's attention from the final position to the IO, S1 and S2 tokens (the full model's
        own attention pattern, mean ± SEM over the reference prompts). --save-checkpoint DIR writes the model with everything outside the
        circuit zeroed as an HF directory any command loads (with mask.safetensors and circuit.json); it needs
        --ablation zero (mean and patch ablations are not weights of the original architecture) and one seed.
        SHARDS: --shard K/N --out part-K.json measures only the grid points [K·G/N, (K+1)·G/N) of the G-point curve and
        writes them (with every setting, the sha256 of model and task files, the candidate count and the grid) as a
        part. The same command with the parts as arguments instead of --shard checks them (they agree, each shard once,
        and they match this run) and takes their points instead of measuring them: only the bisection runs, and DIR
        holds the files one unsharded run writes. One seed; attribution runs in every shard (it is one pass).
        """,
        positional: ("part", "Curve parts of 'circuit … --shard K/N' (the same options): their points are taken, not measured"))

    static func run(_ args: Args) throws {
        var s = CircuitSettings()
        s.method = try args[Options.method]
        s.granularity = try args[Options.granularity]
        s.scheme = try args[Options.scheme]
        s.ablation = try args[Options.ablation]
        s.rank = try args[Options.rank]
        s.threshold = try args[Options.threshold]
        s.gridPoints = try args[Options.points]
        s.bisectionTolerance = try args.ifGiven(Options.bisection)
        s.aggregation = try args[Options.aggregation]
        s.layers = try args.ifGiven(Options.layers)
        if let l = s.layers, l.isEmpty { throw UsageError(message: CircuitError.emptyLayerRegex.localizedDescription) }
        if let l = s.layers, (try? NSRegularExpression(pattern: l)) == nil {
            throw UsageError(message: CircuitError.badLayerRegex(l).localizedDescription)
        }
        if args.given(Options.aggregation), s.method != .lrp, s.method != .gradient {
            throw UsageError(message: "'--aggregation' applies to --method lrp and gradient only")
        }
        if let seed = try args.ifGiven(Options.seed) {
            guard s.method == .random else { throw UsageError(message: "'--seed' applies to --method random only") }
            s.seed = UInt64(seed)
        }
        if s.method == .activation, s.granularity == .weights {
            throw UsageError(message: "--method activation scores neurons and heads only (it has no per-weight scores)")
        }
        if s.granularity == .weights, s.ablation != .zero {
            throw UsageError(message: AblationError.unsupported(.weights, s.ablation).localizedDescription)
        }
        let seeds = try args[Options.seeds]
        let saveCheckpoint = try args.ifGiven(Options.saveCheckpoint)
        if saveCheckpoint != nil {
            guard s.ablation == .zero else {
                throw UsageError(message: "'--save-checkpoint' needs --ablation zero: a \(s.ablation.rawValue)-ablated circuit is not a pruned checkpoint")
            }
            guard seeds == 1 else { throw UsageError(message: "'--save-checkpoint' saves one circuit; it cannot be combined with --seeds \(seeds)") }
        }
        let shard = try args.ifGiven(DistributedOptions.shard)
        let parts = args.positionals
        if shard != nil || !parts.isEmpty {
            guard shard == nil || parts.isEmpty else {
                throw UsageError(message: "give --shard K/N (measure a share of the curve) or the parts (finish it), not both")
            }
            guard seeds == 1 else { throw UsageError(message: "curve shards hold one curve; they cannot be combined with --seeds \(seeds)") }
            if shard != nil, saveCheckpoint != nil {
                throw UsageError(message: "'--save-checkpoint' needs the circuit: give it when finishing with the parts, not with --shard")
            }
            for p in parts where PathValue.problem(p) != nil {
                throw UsageError(message: "The part '\(QuotedName.safe(p))' is invalid: \(PathValue.problem(p)!)")
            }
        }
        let modelPath = try args[ModelOptions.model]
        let promptsPath = try args[Options.prompts]
        let heldoutPath = try args.ifGiven(Options.heldout)
        let out = try args[Options.out]
        let quiet = args[OutputOptions.quiet]
        // Output path before any work (checked again right before the rename).
        for i in [modelPath, promptsPath] + (heldoutPath.map { [$0] } ?? []) + parts where shard == nil {
            try CheckpointWriter.preflight(output: out, input: i, force: false)
            if let c = saveCheckpoint { try CheckpointWriter.preflight(output: c, input: i, force: false) }
        }
        if let c = saveCheckpoint {
            try CheckpointWriter.preflight(output: c, input: out, force: false)
            try CheckpointWriter.preflight(output: out, input: c, force: false)
        }

        // Tasks, then the model.
        let refSet = try TaskSet.load(promptsPath)
        let heldSet = try heldoutPath.map { try TaskSet.load($0) }
        if s.ablation == .patch {
            for set in [refSet] + (heldSet.map { [$0] } ?? []) {
                if let p = set.prompts.first(where: { $0.corrupted == nil }) {
                    throw CircuitError.patchNeedsCorrupted(at: p.location.description)
                }
            }
        }
        let m = try Common.load(args)
        // Every file the loader read (GGUF, safetensors shards, tokenizer files) is an input too.
        let inputs = m.inputFiles + [promptsPath] + (heldoutPath.map { [$0] } ?? []) + parts
        if shard != nil { try OutputGuard.check(output: out, inputs: inputs) } else { try OutputGuard.checkDirectory(output: out, inputs: inputs) }
        let ref = try refSet.tokenize(tokenizer: m.tokenizer, model: m.model)
        let held = try heldSet?.tokenize(tokenizer: m.tokenizer, model: m.model)
        let t0 = Date()
        let h = try SHA256.model(path: modelPath)
        let prov = CircuitProvenance(modelPath: modelPath, modelSHA256: h.sha256, modelFiles: h.files, referencePath: promptsPath,
                                     referenceSHA256: try SHA256.hex(file: promptsPath), heldoutPath: heldoutPath,
                                     heldoutSHA256: try heldoutPath.map { try SHA256.hex(file: $0) })
        if !quiet { Out.err(String(format: "sha256 of model and tasks in %.2f s", Date().timeIntervalSince(t0))) }

        if let shard { return try measureShard(shard, model: m.model, ref, held, s, prov, out: out, quiet: quiet) }
        let resamples = try ReferenceResamples.parts(ref, parts: seeds)
        var runs: [CircuitSeedRun] = []
        let title = "circuit: \(URL(fileURLWithPath: promptsPath).lastPathComponent) on \(URL(fileURLWithPath: modelPath).lastPathComponent)"
        let started = Date()
        try OutputDirectory.write(out, inputs: prov.inputs) { tmp in
            for (i, part) in resamples.enumerated() {
                var si = s
                if s.method == .random { si.seed = s.seed + UInt64(i) }
                var pi = prov
                if seeds > 1 {
                    pi.referencePart = (i, seeds)
                    if !quiet { Out.err("seed \(i) of \(seeds): \(part.count) reference prompts" + Self.eta(started, done: i, of: seeds)) }
                }
                let r = try discover(model: m.model, part, held, si, pi, curveParts: parts, quiet: quiet)
                let dir = seeds > 1 ? tmp + "/seed-\(i)" : tmp
                if seeds > 1 { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false) }
                try CircuitReport.writeFiles(r, si, pi, model: m.model, into: dir, title: title + (seeds > 1 ? " (seed \(i))" : ""))
                report(r, si, seed: seeds > 1 ? i : nil)
                runs.append(CircuitSeedRun(seed: i, r))
                if let c = saveCheckpoint { try save(r, si, pi, model: m.model, to: c) }
            }
            let summary = CircuitSeedSummary(runs: runs, granularity: s.granularity)
            let cfg = m.model.config
            let page = CircuitPage.render(title: title, provenance: Self.provenance(s, prov, ref: ref, seeds: seeds, held: held),
                                          entries: [CircuitPageEntry(label: CircuitPageEntry.label(s), summary: summary,
                                                                     headAttention: headAttention(summary, model: m.model, ref: ref, quiet: quiet))],
                                          threshold: s.threshold, layers: cfg.nLayers, unitsPerLayer: s.granularity == .heads ? cfg.nHeads : cfg.dFF)
            try AtomicFile.write(page, to: tmp + "/circuit.html")
            if seeds > 1 {
                let settings = CircuitReport.settingsDict(s, metric: HeadlineMetric.forItems(ref))
                try AtomicFile.write(try CircuitReport.json(summary.json(settings: settings)), to: tmp + "/seeds.json")
                try AtomicFile.write(summary.csv(s), to: tmp + "/seeds.csv")
                reportSeeds(summary, s)
            }
        }
        Out.print("output: \(out) (" + (seeds > 1 ? "seed-0 … seed-\(seeds - 1)/ each with " : "")
                  + "curve.json, curve.csv, curve.svg, mask.safetensors, circuit.json" + (s.granularity == .weights ? "" : ", graph.json") + (seeds > 1 ? "; seeds.json, seeds.csv" : "")
                  + "; circuit.html)" + (saveCheckpoint.map { "; pruned checkpoint: \($0)" } ?? ""))
    }

    /// Head circuits: every head some seed kept, its attention from the final position to IO / S1 / S2 over all
    /// reference prompts (one packed forward of the full model); nil for neuron and weight circuits.
    static func headAttention(_ summary: CircuitSeedSummary, model: Model, ref: [TaskItem],
                              quiet: Bool) -> Result<IOIHeadAttention, HeadAttentionUnavailable>? {
        guard summary.granularity == .heads else { return nil }
        if let why = IOIHeadAttention.unavailableReason(ref) { return .failure(HeadAttentionUnavailable(why)) }
        let heads = summary.recurrence.map(\.unit).sorted()
        let t0 = Date()
        let a = IOIHeadAttention.measure(model: model, items: ref, heads: heads)
        if !quiet { Out.err(String(format: "attention of %d kept heads to IO/S1/S2 over %d prompts in %.2f s", heads.count, a.prompts, Date().timeIntervalSince(t0))) }
        return .success(a)
    }

    /// The page's provenance table: model, split, method, aggregation, ablation, seeds.
    static func provenance(_ s: CircuitSettings, _ p: CircuitProvenance, ref: [TaskItem], seeds: Int, held: [TaskItem]?) -> [(String, String)] {
        var o: [(String, String)] = [("model", "\(p.modelPath) (sha256 \(p.modelSHA256.prefix(16))…)"),
                                     ("reference", "\(p.referencePath): \(ref.count) prompts" + (seeds > 1 ? ", cut into \(seeds) disjoint parts of \(ref.count / seeds) (\(ReferenceResamples.rule))" : ""))]
        if let h = held, let hp = p.heldoutPath { o.append(("held-out", "\(hp): \(h.count) prompts (the same for every seed)")) }
        o += [("method", s.method.rawValue + (s.method == .random ? " (seed \(s.seed) + i)" : "")),
              ("aggregation", s.method == .lrp || s.method == .gradient ? s.aggregation.rawValue : "–"),
              ("granularity / scheme", "\(s.granularity.rawValue) / \(s.scheme.rawValue)" + (s.layers.map { ", layers matching \($0)" } ?? "")),
              ("ablation", s.ablation.rawValue + (s.ablation == .mean ? " (mean over every token of the reference set)" : "")),
              ("score sign", s.rank.rawValue), ("seeds", "\(seeds)"), ("explained", CircuitDiscovery.explained)]
        return o
    }

    /// The model with everything outside the circuit zeroed, as an HF checkpoint (zero ablation = pruning).
    static func save(_ r: CircuitResult, _ s: CircuitSettings, _ p: CircuitProvenance, model: Model, to dir: String) throws {
        let source = CheckpointSourceInfo(try ModelLoader.checkpoint(p.modelPath))   // the writer's view of the input (config, tokenizer)
        let ablator = Ablator(model: model)
        try ablator.apply(r.candidates.mask(r.crossing.nominal), ablation: .zero)
        defer { ablator.restore() }
        var w = CheckpointWriter(source: source, format: .dense)
        w.extraSafetensors["mask.safetensors"] = CircuitReport.maskRecords(r, model: model)
        w.extraFiles["circuit.json"] = try CircuitReport.json(CircuitReport.circuitJSON(r, s, p, model: model))
        try w.write(model, to: dir, force: false)
    }

    /// " (elapsed 12 s, ETA 24 s)" once a run has finished.
    static func eta(_ start: Date, done: Int, of n: Int) -> String {
        guard done > 0 else { return "" }
        let t = Date().timeIntervalSince(start)
        return String(format: " (elapsed %.0f s, ETA %.0f s)", t, t / Double(done) * Double(n - done))
    }

    /// `--shard K/N`: the ranking, then this shard's grid points, written as a part.
    static func measureShard(_ shard: Shard, model: Model, _ ref: [TaskItem], _ held: [TaskItem]?, _ s: CircuitSettings,
                             _ prov: CircuitProvenance, out: String, quiet: Bool) throws {
        let candidates = try rank(model: model, ref, s, prov, quiet: quiet)
        let grid = CircuitDiscovery.gridCounts(points: s.gridPoints, total: candidates.total)
        guard shard.count <= grid.count else {
            throw UsageError(message: "--shard \(shard): the curve has \(grid.count) grid points; use N ≤ \(grid.count)")
        }
        let c = try CircuitDiscovery.curveShard(model: model, candidates: candidates, reference: ref, heldout: held, settings: s, shard: shard,
                                                log: { if !quiet { Out.err($0) } })
        let part = try CircuitCurvePart(shard: shard, grid: c.grid, points: c.points, settings: s, metric: HeadlineMetric.forItems(ref),
                                        provenance: prov, candidates: candidates.total)
        try AtomicFile.write(try part.json(), to: out)
        Out.print("part: \(out) (shard \(shard): grid points \(part.pointRange) of 0-\(grid.count - 1))")
    }

    /// Attribution once on `ref`, ranking, curve (the grid points of `curveParts` taken from them) and bisection.
    static func discover(model: Model, _ ref: [TaskItem], _ held: [TaskItem]?, _ s: CircuitSettings, _ prov: CircuitProvenance,
                         curveParts: [String] = [], quiet: Bool) throws -> CircuitResult {
        let t1 = Date()
        let candidates = try rank(model: model, ref, s, prov, quiet: quiet)
        let attributionSeconds = Date().timeIntervalSince(t1)
        let known = curveParts.isEmpty ? [] : try CircuitCurvePart.merge(curveParts, run: CircuitCurvePart(
            shard: try Shard(index: 0, count: 1), grid: CircuitDiscovery.gridCounts(points: s.gridPoints, total: candidates.total), points: [],
            settings: s, metric: HeadlineMetric.forItems(ref), provenance: prov, candidates: candidates.total))
        var r = try CircuitDiscovery.search(model: model, candidates: candidates, reference: ref, heldout: held, settings: s, known: known,
                                            log: { if !quiet { Out.err($0) } })
        r.attributionSeconds = attributionSeconds
        return r
    }

    /// Attribution once on `ref` and the ranking of the candidates.
    static func rank(model: Model, _ ref: [TaskItem], _ s: CircuitSettings, _ prov: CircuitProvenance, quiet: Bool) throws -> CircuitCandidates {
        var a = AttributionSettings()
        a.modelPath = prov.modelPath; a.modelSHA256 = prov.modelSHA256; a.modelFiles = prov.modelFiles
        a.dataKind = .prompts; a.dataPath = prov.referencePath; a.dataSHA256 = prov.referenceSHA256
        let t1 = Date()
        let scores = try CircuitDiscovery.scores(model: model, items: ref, settings: s, attribution: a, progress: !quiet)
        let candidates = try CircuitCandidates(model: model, granularity: s.granularity, scheme: s.scheme, rank: s.rank,
                                               layers: s.layers, scores: scores)
        let attributionSeconds = Date().timeIntervalSince(t1)
        if !quiet {
            Out.err(String(format: "%@ scores for %d %@ in %.2f s", s.method.rawValue, candidates.total, s.granularity.rawValue, attributionSeconds))
        }
        return candidates
    }

    static func report(_ r: CircuitResult, _ s: CircuitSettings, seed: Int?) {
        let c = r.crossing
        let tag = seed.map { "[seed \($0)] " } ?? ""
        Out.print(tag + "settings: method \(s.method.rawValue)"
            + ((s.method == .lrp || s.method == .gradient) ? " (\(s.aggregation.rawValue))" : "")
            + (s.method == .random ? " (seed \(s.seed))" : "")
            + ", granularity \(s.granularity.rawValue), scheme \(s.scheme.rawValue), ablation \(s.ablation.rawValue), score sign \(s.rank.rawValue)")
        Out.print(tag + String(format: "reference: %d prompts, m(full) %.4f, m(empty) %.4f (%@)", r.reference.items.count, r.reference.baseline.full,
                               r.reference.baseline.empty, r.reference.baseline.metric.rawValue))
        Out.print(tag + String(format: "circuit: %d of %d %@ (%.4g) with f_ref %.4f ≥ %.4g (%d bisection evaluations)", c.kept, r.candidates.total,
                               s.granularity.rawValue, c.fraction, c.reference.f, s.threshold, r.bisectionEvaluations))
        if let hc = c.heldout, let hb = r.heldout {
            Out.print(tag + String(format: "held-out: %d prompts, f %.4f at that size (m %.4f; full %.4f, empty %.4f)", hb.items.count, hc.f,
                                   hc.metric, hb.baseline.full, hb.baseline.empty))
        }
        Out.print(tag + String(format: "AUC (f over kept fraction, linear): reference %.4f", r.aucReference)
            + (r.aucHeldout.map { String(format: ", held-out %.4f", $0) } ?? ""))
    }

    static func reportSeeds(_ m: CircuitSeedSummary, _ s: CircuitSettings) {
        Out.print("over \(m.runs.count) seeds (mean ± SEM): circuit \(m.kept.text(digits: 1)) of \(m.runs.first?.total ?? 0) \(s.granularity.rawValue)"
                  + " (fraction \(m.fraction.text(digits: 4))), f_ref \(m.fReference.text(digits: 3))"
                  + (m.fHeldout.map { ", f_heldout \($0.text(digits: 3))" } ?? ""))
        Out.print("AUC over seeds: reference \(m.aucReference.text(digits: 4))" + (m.aucHeldout.map { ", held-out \($0.text(digits: 4))" } ?? ""))
        let rec = m.recurrence.filter { $0.seeds == m.runs.count }
        if s.granularity != .weights {
            Out.print("kept by every seed: \(rec.count) \(s.granularity.rawValue)"
                      + (rec.isEmpty ? "" : ": " + rec.prefix(24).map { $0.unit.name(s.granularity) }.joined(separator: " ") + (rec.count > 24 ? " …" : "")))
        }
    }
}
