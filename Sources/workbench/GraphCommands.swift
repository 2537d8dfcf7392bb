import Circuits
import Foundation
import Tokenize
import Transformer

// MARK: - graph-attribute, graph-eval (component graphs, issue 15)


/// `--top K` or `--top F%`: how many edges the written circuit marks in_graph.
struct EdgeBudget: OptionValue {
    var count: Int?
    var percent: Double?

    static func parse(_ text: String, option: String) throws -> EdgeBudget {
        if text.hasSuffix("%"), let p = Double(text.dropLast()), p.isFinite, p >= 0, p <= 100 { return EdgeBudget(count: nil, percent: p) }
        if let k = Int(text), k >= 0 { return EdgeBudget(count: k, percent: nil) }
        throw UsageError(message: "--\(option) takes an edge count (e.g. 200) or a percentage of all edges (e.g. 1%), got '\(QuotedName.safe(text))'")
    }
    var optionText: String { percent.map { "\($0)%" } ?? "\(count ?? 0)" }

    func edges(of total: Int) -> Int { count.map { min($0, total) } ?? FaithfulnessCurve.edgeCount((percent ?? 0) / 100, total: total) }
}

enum GraphOptions {
    static let prompts = Option<String>.path("prompts", "file", help: "Task file with corrupted prompts: .jsonl (text, answer, distractor, corrupted) or EAP-IG/MIB .csv")
}

enum GraphAttributeCommand: Command {
    enum Options {
        static let method = Option<GraphMethod>("method", "name", default: .eapIG, choices: GraphMethod.allCases,
                                                help: "eap (gradient), eap-ig (integrated gradients over input embeddings), lrp (AttnLRP δ)")
        static let steps = Option<Int>("steps", "n", default: 5, min: 1, help: "eap-ig: points on the corrupted → clean path")
        static let top = Option<EdgeBudget>("top", "K|F%", default: EdgeBudget(count: nil, percent: 1),
                                            help: "Edges marked in_graph: the K (or F % of all) highest signed scores, pruned as EAP-IG's apply_topn")
        static let out = Option<String>.path("out", "dir", help: "Output directory (must not exist; written atomically)")
    }
    static let spec = CommandSpec(
        name: "graph-attribute", abstract: "Score every edge of the head/MLP graph (EAP, EAP-IG, LRP) and write EAP-IG's graph.json.",
        usage: "workbench graph-attribute --model <path> --prompts <task> [--method eap|eap-ig|lrp] [--steps 5] [--top K|F%] --out <dir>",
        options: ModelOptions.all + [GraphOptions.prompts, Options.method, Options.steps, Options.top, Options.out, OutputOptions.quiet],
        discussion: """
        The graph is EAP-IG's: nodes input, a{layer}.h{head} (q, k, v inputs; GQA heads ungrouped), m{layer}, logits; an edge from
        every node to every later input. score(u → v) = Σ_t (a_u(clean) − a_u(corrupted)) · δ_v, averaged over prompts, with δ_v the
        gradient of the logit difference LSE(answers) − LSE(distractors) at the last position w.r.t. v's input: at the clean run
        (eap), averaged over --steps points from the corrupted to the clean input embeddings (eap-ig), or AttnLRP's modified
        gradient (lrp, relevance patching). Positive = patching the edge lowers the metric (first order).
        OUTPUT (--out DIR): graph.json (EAP-IG's Graph.to_json schema, every edge, plus our provenance keys), graph.compact.json
        (in-graph edges and nodes only; EAP-IG's from_json reads it too), graph.html (layered drawing).
        """)

    static func run(_ args: Args) throws {
        let method = try args[Options.method], steps = try args[Options.steps], top = try args[Options.top]
        if args.given(Options.steps), method != .eapIG { throw UsageError(message: "'--steps' applies to --method eap-ig only") }
        let modelPath = try args[ModelOptions.model], promptsPath = try args[GraphOptions.prompts], out = try args[Options.out]
        let quiet = args[OutputOptions.quiet]
        try OutputDirectory.preflight(out, inputs: [modelPath, promptsPath])
        let set = try TaskSet.load(promptsPath)
        let m = try Common.load(args)
        let items = try set.tokenize(tokenizer: m.tokenizer, model: m.model)
        try EdgeAttribution.check(items)
        let split = SplitForward(m.model)
        let g = split.graph
        if !quiet { Out.err("graph: \(g.nodeCount) nodes, \(g.edgeCount) edges; \(items.count) prompts, method \(method.rawValue)") }
        let progress = ProgressLine("graph-attribute", total: items.count, unit: "prompts", enabled: !quiet)
        let t0 = Date()
        var tokens = 0
        let scores = try EdgeAttribution(split).scores(items, method: method, steps: steps) { done in
            tokens = items.prefix(done).reduce(0) { $0 + $1.tokens.count }
            progress.update(done, tokens: tokens)
        }
        progress.update(items.count, tokens: tokens, force: true)
        let seconds = Date().timeIntervalSince(t0)
        var sg = ScoredGraph(graph: g, scores: scores)
        sg.nodeScores = ScoredGraph.outgoingSums(scores, g)
        let k = top.edges(of: g.edgeCount)
        sg.applyTopN(k, absolute: false)
        sg.metadata = [("workbench_model", modelPath), ("workbench_model_sha256", try SHA256.model(path: modelPath).sha256),
                       ("workbench_task", promptsPath), ("workbench_task_sha256", try SHA256.hex(file: promptsPath)),
                       ("workbench_method", method.rawValue + (method == .eapIG ? " (inputs, \(steps) steps)" : "")),
                       ("workbench_metric", "logit difference at the last position; score > 0: patching the edge lowers it"),
                       ("workbench_prompts", "\(items.count)"), ("workbench_in_graph", "top \(k) by signed score, pruned (EAP-IG apply_topn): \(sg.inGraphCount) edges"),
                       ("workbench_seconds", String(format: "%.2f", seconds))]
        let title = "graph: \(URL(fileURLWithPath: promptsPath).lastPathComponent) on \(URL(fileURLWithPath: modelPath).lastPathComponent), \(method.rawValue)"
        try OutputDirectory.write(out, inputs: m.inputFiles + [promptsPath]) { dir in
            try GraphFile.write(sg, to: dir + "/graph.json")
            try GraphFile.write(sg, to: dir + "/graph.compact.json", compact: true)
            try AtomicFile.write(GraphPage.render(sg, title: title, provenance: sg.metadata), to: dir + "/graph.html")
        }
        Out.print(String(format: "%@ scores for %d edges of %d prompts in %.2f s; %d edges in_graph (top %d by signed score, pruned)",
                         method.rawValue, g.edgeCount, items.count, seconds, sg.inGraphCount, k))
        let best = sg.ranking(absolute: false).prefix(5).map { String(format: "%@ %.4g", g.edgeName($0 % g.nForward, $0 / g.nForward), sg.scores[$0]) }
        Out.print("top edges: " + best.joined(separator: ", "))
        Out.print("output: \(out) (graph.json, graph.compact.json, graph.html)")
    }
}

enum GraphEvalCommand: Command {
    enum Options {
        static let graph = Option<String>.path("graph", "file", help: "graph.json (ours or EAP-IG's Graph.to_json) for this model's shape")
        static let intervention = Option<GraphIntervention>("intervention", "kind", default: .patch, choices: GraphIntervention.allCases,
                                                            help: "Out-of-circuit edges carry: the corrupted value, 0, or the node's mean output")
        static let html = Option<String>.path("html", "file", help: "Also write a page with the graph and the curves")
    }
    static let spec = CommandSpec(
        name: "graph-eval", abstract: "MIB faithfulness of an edge graph: curve over edge counts, CPR and CMD, and its in_graph circuit.",
        usage: "workbench graph-eval --model <path> --prompts <task> --graph <graph.json> [--intervention patch|zero|mean] [--html <file>] [--json]",
        options: ModelOptions.all + [GraphOptions.prompts, Options.graph, Options.intervention, Options.html, OutputOptions.json, OutputOptions.quiet],
        discussion: """
        A circuit run keeps its edges; every other edge u → v carries u's corrupted output at the same position (patch), 0 (zero)
        or u's mean output over all tokens of these prompts (mean). m = the task's headline metric at the last position (logit
        difference for IOI), mean over prompts. f(k) = (m(C_k) − m(∅)) / (m(M) − m(∅)) at k ∈ {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50,
        100} % of edges, C_k the top int(k · E) edges by signed score (CPR = ∫ f) and by |score| (CMD = ∫ |1 − f|), trapezoids over
        the edge fraction (MIB's evaluate_area_under_curve). Every circuit is pruned first as EAP-IG's evaluate_graph does (nodes
        without an in-graph input or output edge leave with their edges; no effect under patching). The graph's own in_graph edges
        are evaluated too.
        """)

    static func run(_ args: Args) throws {
        let modelPath = try args[ModelOptions.model], promptsPath = try args[GraphOptions.prompts], graphPath = try args[Options.graph]
        let intervention = try args[Options.intervention], html = try args.ifGiven(Options.html), quiet = args[OutputOptions.quiet]
        if let html { for i in [modelPath, promptsPath, graphPath] { try OutputGuard.check(output: html, inputs: [i]) } }
        let set = try TaskSet.load(promptsPath)
        let m = try Common.load(args)
        if let html { try OutputGuard.check(output: html, inputs: m.inputFiles) }
        let sg = try GraphFile.read(graphPath, shape: GraphShape(m.model.config))
        let items = try set.tokenize(tokenizer: m.tokenizer, model: m.model)
        let split = SplitForward(m.model)
        let t0 = Date()
        let ev = try GraphEvaluator(split, items, intervention: intervention)
        let (cpr, cmd, extra) = try FaithfulnessCurve.measure(sg, evaluator: ev, extra: [sg.inGraph])
        let seconds = Date().timeIntervalSince(t0)
        let inGraphF = (extra[0] - cpr.empty) / (cpr.full - cpr.empty)
        let inGraphKept = ScoredGraph.pruned(sg.inGraph, sg.graph).edges.reduce(0) { $0 + ($1 ? 1 : 0) }
        if let html {
            let page = GraphPage.render(sg, title: "graph-eval: \(URL(fileURLWithPath: graphPath).lastPathComponent)",
                                        provenance: [("model", modelPath), ("task", promptsPath), ("graph", graphPath),
                                                     ("intervention", intervention.rawValue), ("metric", ev.metric.rawValue)] + sg.metadata,
                                        curves: [cpr, cmd])
            try AtomicFile.write(page, to: html)
        }
        if args[OutputOptions.json] {
            func curveJSON(_ c: FaithfulnessCurve) -> [[String: Any]] {
                c.fractions.indices.map { ["fraction": c.fractions[$0], "edges": c.edgeCounts[$0], "edges_after_prune": c.keptCounts[$0],
                                           "metric": c.metrics[$0], "f": c.faithfulness[$0]] }
            }
            Out.print(Out.json(["model": modelPath, "prompts": promptsPath, "graph": graphPath, "intervention": intervention.rawValue,
                                "metric": ev.metric.rawValue, "n_prompts": items.count, "edges_total": sg.graph.edgeCount,
                                "full": cpr.full, "empty": cpr.empty, "cpr": cpr.area, "cmd": cmd.areaFromOne,
                                "curve_signed": curveJSON(cpr), "curve_abs": curveJSON(cmd),
                                "in_graph": ["edges": sg.inGraphCount, "edges_after_prune": inGraphKept, "metric": extra[0], "f": inGraphF], "seconds": seconds]))
            return
        }
        Out.print(String(format: "%d prompts, %@, intervention %@: m(full) %.4f, m(empty) %.4f", items.count, ev.metric.rawValue,
                         intervention.rawValue, cpr.full, cpr.empty))
        Out.print("edges      count   f(signed)   f(|score|)   kept after pruning (signed, |score|)")
        for i in cpr.fractions.indices {
            Out.print(String(format: "%6.1f%%  %7d   %9.4f   %9.4f   %7d %7d", cpr.fractions[i] * 100, cpr.edgeCounts[i], cpr.faithfulness[i],
                             cmd.faithfulness[i], cpr.keptCounts[i], cmd.keptCounts[i]))
        }
        Out.print(String(format: "CPR (∫ f, signed) %.4f   CMD (∫ |1 − f|, |score|) %.4f", cpr.area, cmd.areaFromOne))
        Out.print(String(format: "in_graph circuit: %d edges (%d after pruning), m %.4f, f %.4f", sg.inGraphCount, inGraphKept, extra[0], inGraphF))
        if !quiet { Out.err(String(format: "evaluated in %.2f s", seconds)) }
    }
}
