import Foundation
import XCTest
@testable import Circuits
import Transformer
import TestSupport

// MARK: - The head/MLP graph, its file and its split forward
//
// Counts against EAP-IG's (GPT-2 small / OPT-125M: 158 nodes, 32,491 edges, as in
// MIB's `circuits/ioi-eap-ig.json`); the split forward against the model's own
// forward (all edges kept) and the corrupted run (no edge kept, patching).

final class ComponentGraphTests: XCTestCase {
    func testCountsOfTheGPT2SmallShape() {
        // OPT-125M's shape (12 layers × 12 heads, d 768): the same graph as GPT-2 small.
        let cfg = ModelConfig(family: .opt, vocabSize: 50272, dModel: 768, nLayers: 12, nHeads: 12, nKVHeads: 12, headDim: 64,
                              dFF: 3072, maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 0, tiedEmbeddings: true,
                              attentionBias: true, mlpBias: true)
        let g = ComponentGraph(GraphShape(cfg))
        XCTAssertEqual(g.nodeCount, 158)
        XCTAssertEqual(g.edgeCount, 32_491)
        XCTAssertEqual(g.nForward, 157)
        XCTAssertEqual(g.nBackward, 445)
        XCTAssertEqual(g.edgeIndices.count, 32_491)
        // SmolLM2-135M: 30 layers × 9 heads.
        let s = ComponentGraph(GraphShape(nLayers: 30, nHeads: 9, dModel: 576))
        XCTAssertEqual(s.nodeCount, 302)
        XCTAssertEqual(s.edgeCount, 123_211)
    }

    func testEdgeNamesFollowEAPIG() throws {
        let g = ComponentGraph(GraphShape(nLayers: 2, nHeads: 3, dModel: 8))
        XCTAssertEqual(g.edgeName(0, g.headInput(0, 1, .k)), "input->a0.h1<k>")
        XCTAssertEqual(g.edgeName(g.head(0, 2), g.mlpInput(0)), "a0.h2->m0")
        XCTAssertEqual(g.edgeName(g.mlp(1), g.logitsInput), "m1->logits")
        XCTAssertNil(g.edge(named: "m0->a0.h1<q>"), "an MLP does not feed heads of its own layer")
        XCTAssertNil(g.edge(named: "a1.h0->m0"))
        XCTAssertNil(g.edge(named: "a0.h3->m0"), "no head 3")
        let e = try XCTUnwrap(g.edge(named: "a0.h1->a1.h2<v>"))
        XCTAssertEqual(e.u, g.head(0, 1)); XCTAssertEqual(e.b, g.headInput(1, 2, .v))
        // Every edge name parses back to its own index.
        for i in g.edgeIndices {
            let (u, b) = (i % g.nForward, i / g.nForward)
            let p = try XCTUnwrap(g.edge(named: g.edgeName(u, b)))
            XCTAssertEqual(p.b * g.nForward + p.u, i)
        }
    }

    func testPruneFollowsEAPIGGraphPrune() throws {
        // EAP-IG's Graph.prune(), worked by hand on 2 layers × 2 heads.
        let g = ComponentGraph(GraphShape(nLayers: 2, nHeads: 2, dModel: 8))
        func mask(_ names: [String]) throws -> [Bool] {
            var m = [Bool](repeating: false, count: g.nBackward * g.nForward)
            for n in names { let e = try XCTUnwrap(g.edge(named: n), n); m[e.b * g.nForward + e.u] = true }
            return m
        }
        func kept(_ m: [Bool]) -> Set<String> {
            Set(g.edgeIndices.filter { m[$0] }.map { g.edgeName($0 % g.nForward, $0 / g.nForward) })
        }
        // A head with no in-graph input leaves, with its edge to the logits.
        XCTAssertEqual(kept(ScoredGraph.pruned(try mask(["a0.h0->logits"]), g).edges), [])
        // input needs no incoming edge; a q input alone feeds the head.
        let chain = ["input->a0.h0<q>", "a0.h0->logits"]
        XCTAssertEqual(kept(ScoredGraph.pruned(try mask(chain), g).edges), Set(chain))
        // Dead end: m1 has no outgoing edge → m1 leaves → a0.h0 loses its only output → its input edge goes (two rounds).
        XCTAssertEqual(kept(ScoredGraph.pruned(try mask(["input->a0.h0<k>", "a0.h0->m1"]), g).edges), [])
        // A path survives; the dangling a1.h0 → logits (a1.h0 unfed) and a1.h1 → m1 (m1 feeds nothing) do not.
        let path = ["input->m0", "m0->a1.h1<v>", "a1.h1->logits"]
        let p = ScoredGraph.pruned(try mask(path + ["a1.h0->logits", "a1.h1->m1"]), g)
        XCTAssertEqual(kept(p.edges), Set(path))
        XCTAssertEqual(g.forwardNames.indices.filter { p.nodes[$0] }.map { g.forwardNames[$0] }, ["input", "m0", "a1.h1"])
        // applyTopN prunes by default (EAP-IG apply_topn(prune=True)).
        var sg = ScoredGraph(graph: g)
        for (k, n) in ["a0.h0->logits", "input->a0.h1<q>", "a0.h1->logits"].enumerated() {
            let e = try XCTUnwrap(g.edge(named: n)); sg.scores[e.b * g.nForward + e.u] = Float(10 - k)
        }
        sg.applyTopN(3, absolute: false)
        XCTAssertEqual(kept(sg.inGraph), ["input->a0.h1<q>", "a0.h1->logits"])
        XCTAssertEqual(sg.nodesInGraph, ["input", "a0.h1", "logits"])
        sg.applyTopN(3, absolute: false, prune: false)
        XCTAssertEqual(sg.inGraphCount, 3)
    }

    func testJSONRoundTripFullAndCompact() throws {
        let g = ComponentGraph(GraphShape(nLayers: 2, nHeads: 2, dModel: 8))
        var sg = ScoredGraph(graph: g)
        for (k, e) in g.edgeIndices.enumerated() { sg.scores[e] = Float(k % 7) - 2.5 + Float(k) * 1e-3 }
        sg.applyTopN(5, absolute: false, prune: false)
        sg.metadata = [("method", "eap")]
        XCTAssertEqual(sg.inGraphCount, 5)
        let full = try GraphFile.json(sg)
        let back = try GraphFile.parse(Data(full.utf8), path: "g.json", shape: g.shape)
        XCTAssertEqual(back.scores, sg.scores)
        XCTAssertEqual(back.inGraph, sg.inGraph)
        XCTAssertEqual(back.metadata.first?.1, "eap")
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(full.utf8)) as? [String: Any])
        XCTAssertEqual((obj["edges"] as? [String: Any])?.count, g.edgeCount, "every edge listed, as EAP-IG writes")
        XCTAssertEqual((obj["nodes"] as? [String: Any])?.count, g.nodeCount)
        let compact = try GraphFile.json(sg, compact: true)
        let c = try GraphFile.parse(Data(compact.utf8), path: "c.json", shape: g.shape)
        XCTAssertEqual(c.inGraph, sg.inGraph)
        let cobj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(compact.utf8)) as? [String: Any])
        XCTAssertEqual((cobj["edges"] as? [String: Any])?.count, 5)
    }

    func testReadsAFileAsEAPIGWritesIt() throws {
        // Graph.to_json of a 1-layer, 1-head model as Python's json.dump writes it: ", "/": " separators, node order of
        // Graph.nodes (logits last, always in_graph), no node scores, float32 scores through .item() (17 digits,
        // exponents like 1e-05), every edge listed.
        let text = """
        {"cfg": {"n_layers": 1, "n_heads": 1, "parallel_attn_mlp": false, "d_model": 4}, "nodes": {"input": {"in_graph": true}, \
        "a0.h0": {"in_graph": true}, "m0": {"in_graph": false}, "logits": {"in_graph": true}}, "edges": {"input->a0.h0<q>": \
        {"score": -0.00029600000102072954, "in_graph": false}, "input->a0.h0<k>": {"score": 1e-05, "in_graph": false}, \
        "input->a0.h0<v>": {"score": 0.5, "in_graph": true}, "input->m0": {"score": -3.5e-08, "in_graph": false}, "a0.h0->m0": \
        {"score": 0.0, "in_graph": false}, "input->logits": {"score": 2.25, "in_graph": true}, "a0.h0->logits": {"score": 0.75, \
        "in_graph": true}, "m0->logits": {"score": -1.0, "in_graph": false}}}
        """
        let g = ComponentGraph(GraphShape(nLayers: 1, nHeads: 1, dModel: 4))
        XCTAssertEqual(g.edgeCount, 8)
        let sg = try GraphFile.parse(Data(text.utf8), path: "eap-ig.json", shape: g.shape)
        func at(_ n: String) throws -> Int { let e = try XCTUnwrap(g.edge(named: n), n); return e.b * g.nForward + e.u }
        XCTAssertEqual(sg.scores[try at("input->a0.h0<q>")], -0.000296, accuracy: 1e-12)
        XCTAssertEqual(sg.scores[try at("input->a0.h0<k>")], 1e-5)
        XCTAssertEqual(sg.scores[try at("input->m0")], -3.5e-8)
        XCTAssertEqual(sg.inGraphCount, 3)
        XCTAssertEqual(Set(g.edgeIndices.filter { sg.inGraph[$0] }), Set(try ["input->a0.h0<v>", "input->logits", "a0.h0->logits"].map(at)))
        XCTAssertNil(sg.nodeScores, "EAP-IG writes node scores only when the graph has them")
        XCTAssertEqual(sg.nodesInGraph, ["input", "a0.h0", "logits"])
    }

    func testBadGraphFilesNameTheItem() {
        let shape = GraphShape(nLayers: 2, nHeads: 2, dModel: 8)
        func err(_ s: String) -> GraphFileError? {
            do { _ = try GraphFile.parse(Data(s.utf8), path: "g.json", shape: shape); return nil } catch { return error as? GraphFileError }
        }
        let cfg = "\"cfg\": {\"n_layers\": 2, \"n_heads\": 2, \"parallel_attn_mlp\": false, \"d_model\": 8}"
        XCTAssertEqual(err("{\"cfg\": {\"n_layers\": 3, \"n_heads\": 2}, \"nodes\": {}, \"edges\": {}}"),
                       .shapeMismatch(path: "g.json", key: "n_layers", file: 3, model: 2))
        XCTAssertEqual(err("{\(cfg), \"nodes\": {}}"), .missingKey(path: "g.json", key: "edges"))
        XCTAssertEqual(err("{\(cfg), \"nodes\": {\"a0.h7\": {}}, \"edges\": {}}"), .unknownNode(path: "g.json", name: "a0.h7"))
        XCTAssertEqual(err("{\(cfg), \"nodes\": {}, \"edges\": {\"m1->a0.h0<q>\": {\"score\": 1}}}"),
                       .unknownEdge(path: "g.json", name: "m1->a0.h0<q>"))
        XCTAssertEqual(err("{\(cfg), \"nodes\": {}, \"edges\": {\"input->m0\": {\"score\": \"x\"}}}"),
                       .badValue(path: "g.json", key: "edges.input->m0.score", reason: "is not a number"))
    }

    // MARK: split forward

    func lastLogits(_ m: Model, _ s: [Int]) -> [Float] { Array(m.forward(s).suffix(m.config.vocabSize)) }

    func testSplitForwardAllEdgesIsTheModelAndNoEdgeIsTheSource() throws {
        let model = try AttributionFixtures.tiny("tiny-llama-bias")          // GQA: 4 query heads over 2 kv heads
        let sf = SplitForward(model)
        let c = model.config, g = sf.graph
        let clean = [[3, 17, 40, 9, 81, 5], [7, 7, 120, 33]], corrupt = [[3, 17, 41, 9, 90, 5], [8, 7, 121, 33]]
        let segs = sf.segments(clean)
        let emb = model.embedRows(clean.flatMap { $0 }, segments: segs)
        let embC = model.embedRows(corrupt.flatMap { $0 }, segments: segs)
        let plain = sf.run(embeddings: emb, segments: segs, record: true)
        let ref = clean.flatMap { lastLogits(model, $0) }
        XCTAssertLessThan(PruneTestKit.maxAbsDiff(sf.lastLogits(plain.final, segments: segs), ref), 2e-4, "unpatched = model")
        let src = try XCTUnwrap(sf.run(embeddings: embC, segments: segs, record: true).outputs)
        let all = [Bool](repeating: true, count: g.nBackward * g.nForward)
        let kept = sf.run(embeddings: emb, segments: segs, keep: all, source: src)
        XCTAssertEqual(kept.final, plain.final, "every edge kept: the clean run")
        let none = sf.run(embeddings: emb, segments: segs, keep: [Bool](repeating: false, count: all.count), source: src)
        let refC = corrupt.flatMap { lastLogits(model, $0) }
        XCTAssertLessThan(PruneTestKit.maxAbsDiff(sf.lastLogits(none.final, segments: segs), refC), 2e-4, "no edge kept: the corrupted run")
        XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(ref, refC), 0.05, "clean and corrupted differ")
        XCTAssertNotNil(model.blocks[0].o.bias, "the fixture's o_proj bias is exercised")
        XCTAssertEqual(c.nKVHeads * 2, c.nHeads, "GQA is exercised")
    }

    func testOneEdgePatchedEqualsPatchingThatHeadInputByHand() throws {
        // Edge a0.h1 → a1.h2<v> patched: only head 2's v input of layer 1 sees a0.h1's corrupted output.
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let sf = SplitForward(model)
        let g = sf.graph, d = model.config.dModel
        let clean = [[3, 17, 40, 9, 81, 5]], corrupt = [[3, 17, 41, 9, 90, 5]]
        let segs = sf.segments(clean)
        let emb = model.embedRows(clean[0], segments: segs), embC = model.embedRows(corrupt[0], segments: segs)
        let a = try XCTUnwrap(sf.run(embeddings: emb, segments: segs, record: true).outputs)
        let src = try XCTUnwrap(sf.run(embeddings: embC, segments: segs, record: true).outputs)
        var keep = [Bool](repeating: true, count: g.nBackward * g.nForward)
        keep[g.headInput(1, 2, .v) * g.nForward + g.head(0, 1)] = false
        let patched = sf.run(embeddings: emb, segments: segs, keep: keep, source: src, record: true)
        // By hand: layer-1 head inputs are Σ of upstream clean outputs; v of head 2 gets the swap.
        let n = clean[0].count, nd = n * d, H = model.config.nHeads
        var x = [Float](repeating: 0, count: 3 * H * nd)
        let bo = model.blocks[0].o.bias ?? [Float](repeating: 0, count: d)   // o_proj's bias: in the stream, no head's
        for i in 0..<(3 * H) {
            for u in 0..<g.head(1, 0) { for j in 0..<nd { x[i * nd + j] += a[u * nd + j] } }
            for j in 0..<nd { x[i * nd + j] += bo[j % d] }
        }
        let vi = 2 * H + 2, u = g.head(0, 1)
        for j in 0..<nd { x[vi * nd + j] += src[u * nd + j] - a[u * nd + j] }
        let heads = x.withUnsafeBufferPointer { sf.model.headOutputs(layer: 1, inputs: $0.baseAddress!, segments: segs, rows: n) }
        let got = try XCTUnwrap(patched.outputs)
        XCTAssertLessThan(PruneTestKit.maxAbsDiff(Array(got[(g.head(1, 2) * nd)..<((g.head(1, 2) + 1) * nd)]),
                                                  Array(heads[(2 * nd)..<(3 * nd)])), 1e-5)
        XCTAssertEqual(Array(got[(g.head(1, 0) * nd)..<((g.head(1, 0) + 1) * nd)]), Array(a[(g.head(1, 0) * nd)..<((g.head(1, 0) + 1) * nd)]),
                       "other heads unchanged")
        XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(Array(got[(g.head(1, 2) * nd)..<((g.head(1, 2) + 1) * nd)]),
                                                     Array(a[(g.head(1, 2) * nd)..<((g.head(1, 2) + 1) * nd)])), 1e-4, "the patched head moved")
    }

    func testSharedInputHeadsEqualPerHeadInputs() throws {
        // An unpatched run feeds every head the stream itself: one full-width q/k/v product instead of 3H
        // slices (the per-head path, the reference). Same dot products in other GEMM shapes: equal to rounding.
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let sf = SplitForward(model), c = sf.model.config, d = c.dModel
        let seqs = [[3, 17, 40, 9, 81, 5], [7, 7, 120, 33]]
        let segs = sf.segments(seqs), n = 10
        let x = sf.model.embedRows(seqs.flatMap { $0 }, segments: segs)           // [N, d]
        let copies = (0..<(3 * c.nHeads)).flatMap { _ in x }                      // [3H, N, d]
        for l in 0..<c.nLayers {
            let ref = copies.withUnsafeBufferPointer { sf.model.headOutputs(layer: l, inputs: $0.baseAddress!, segments: sf.segments(seqs), rows: n) }
            let got = x.withUnsafeBufferPointer { sf.model.headOutputs(layer: l, sharedInput: $0.baseAddress!, segments: sf.segments(seqs), rows: n) }
            XCTAssertEqual(got.count, c.nHeads * n * d)
            XCTAssertGreaterThan(ref.map { abs($0) }.max() ?? 0, 1e-3)
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(got, ref), 1e-5, "layer \(l)")
        }
    }

    func testSparseCircuitEqualsNaiveEdgeSums() throws {
        // Circuits keeping few edges (the split forward then sums the kept terms onto Σ src) and many edges
        // (replaced terms onto Σ out), against a naive run: every node input = Σ over its upstream nodes of
        // (kept ? out_u : src_u), plus o_proj's bias, node by node.
        let model = try AttributionFixtures.tiny("tiny-llama-bias")
        let sf = SplitForward(model)
        let c = sf.model.config, g = sf.graph, d = c.dModel, F = g.nForward, H = c.nHeads
        let clean = [[3, 17, 40, 9, 81, 5], [7, 7, 120, 33]], corrupt = [[3, 17, 41, 9, 90, 5], [8, 7, 121, 33]]
        let segs = sf.segments(clean), n = 10, nd = n * d
        let emb = sf.model.embedRows(clean.flatMap { $0 }, segments: segs)
        let src = try XCTUnwrap(sf.run(embeddings: sf.model.embedRows(corrupt.flatMap { $0 }, segments: segs), segments: segs,
                                       record: true).outputs)
        var rng = SeededRNG(seed: 3)
        for keptFraction in [0.1, 0.9] {
            var keep = [Bool](repeating: false, count: g.nBackward * F)
            for e in g.edgeIndices { keep[e] = Double(rng.next() % 1000) < keptFraction * 1000 }
            let got = sf.run(embeddings: emb, segments: sf.segments(clean), keep: keep, source: src, record: true)
            var out = [Float](repeating: 0, count: F * nd)                        // naive: node outputs in order
            out.replaceSubrange(0..<nd, with: emb)
            var bias = [Float](repeating: 0, count: nd)                           // o_proj biases so far
            func input(_ b: Int) -> [Float] {
                var x = bias
                for u in 0..<g.upstream(b) {
                    let k = keep[b * F + u]
                    for j in 0..<nd { x[j] += k ? out[u * nd + j] : src[u * nd + j] }
                }
                return x
            }
            let rs = sf.segments(clean)
            for l in 0..<c.nLayers {
                let xs = (0..<3).flatMap { i in (0..<H).flatMap { input(g.headInput(l, $0, ComponentGraph.Input(rawValue: i)!)) } }
                let heads = xs.withUnsafeBufferPointer { sf.model.headOutputs(layer: l, inputs: $0.baseAddress!, segments: rs, rows: n) }
                out.replaceSubrange((g.head(l, 0) * nd)..<((g.head(l, 0) + H) * nd), with: heads)
                if let bo = sf.model.blocks[l].o.bias { for j in 0..<nd { bias[j] += bo[j % d] } }
                let xm = input(g.mlpInput(l))
                let m = xm.withUnsafeBufferPointer { sf.model.mlpOutput(layer: l, input: $0.baseAddress!, rows: n) }
                out.replaceSubrange((g.mlp(l) * nd)..<((g.mlp(l) + 1) * nd), with: m)
            }
            let final = input(g.logitsInput)
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(got.final, final), 1e-4, "kept \(keptFraction)")
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(try XCTUnwrap(got.outputs), out), 1e-4, "kept \(keptFraction)")
            XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(got.final, sf.run(embeddings: emb, segments: sf.segments(clean)).final), 1e-3,
                                 "the circuit differs from the clean run")
            // Without `record` the run skips every node no kept edge reads (its source value stands in): same result.
            let plan = SplitForward.Plan(keep, g, computeAll: false)
            if keptFraction < 0.5 { XCTAssertTrue(plan.computed.contains(false), "some node is skipped at \(keptFraction)") }
            XCTAssertTrue(plan.terms.allSatisfy { $0.allSatisfy { plan.computed[$0] && plan.slot[$0] >= 0 } })
            let fast = sf.run(embeddings: emb, segments: sf.segments(clean), keep: keep, source: src)
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(fast.final, final), 1e-4, "kept \(keptFraction), nodes skipped")
        }
    }

    func testReusedSourceProjectionsAndRowSelectionEqualTheFullCircuitRun() throws {
        // Patching shortcuts of a circuit run (GraphEvaluator takes them): head inputs equal to the corrupted
        // stream take the source run's q/k/v projections; MLPs run only on the rows after the first token where a
        // prompt and its corrupted prompt differ (before it every node's output is its source value), the last
        // MLP only on the last rows. Against the plain circuit run: same values to rounding (the full-width
        // products of the source run against per-head slices), and broken shortcuts are caught.
        let model = try AttributionFixtures.tiny("tiny-llama-bias")          // GQA: the source's k/v are ungrouped
        let sf = SplitForward(model)
        let c = sf.model.config, g = sf.graph, d = c.dModel, F = g.nForward
        let clean = [[3, 17, 40, 9, 81, 5], [7, 7, 120, 33]], corrupt = [[3, 17, 41, 9, 90, 5], [8, 7, 121, 33]]
        let segs = sf.segments(clean), n = 10, nd = n * d
        let sel = SplitForward.RowSelection(clean: clean, corrupted: corrupt, segments: segs)
        XCTAssertEqual(sel.changed, [2, 3, 4, 5, 6, 7, 8, 9], "first prompt: two shared tokens; second: none")
        XCTAssertEqual(sel.read, [5, 9])
        let emb = sf.model.embedRows(clean.flatMap { $0 }, segments: segs)
        let embC = sf.model.embedRows(corrupt.flatMap { $0 }, segments: segs)
        let source = [Float](repeating: .nan, count: F * nd), proj = [Float](repeating: .nan, count: c.nLayers * 3 * n * c.qDim)
        var src = source, projections = proj
        let corrupted = src.withUnsafeMutableBufferPointer { s in projections.withUnsafeMutableBufferPointer { p in
            sf.run(embeddings: embC, segments: segs, keep: nil, source: nil, record: s.baseAddress, fullWidth: true, projections: p.baseAddress) } }
        XCTAssertEqual(corrupted, sf.run(embeddings: embC, segments: segs, fullWidth: true).final, "recording projections changes nothing")
        XCTAssertFalse(projections.contains { $0.isNaN }, "every projection written")
        var rng = SeededRNG(seed: 11)
        for keptFraction in [0.1, 0.3] {
            var keep = [Bool](repeating: false, count: g.nBackward * F)
            for e in g.edgeIndices { keep[e] = Double(rng.next() % 1000) < keptFraction * 1000 }
            for l in [0, c.nLayers - 1] { keep[g.logitsInput * F + g.mlp(l)] = true }   // every MLP kind of row selection runs
            let plan = SplitForward.Plan(keep, g, computeAll: false)
            let reused = (0..<c.nLayers).flatMap { l in (0..<3).flatMap { i in (0..<c.nHeads).compactMap { h -> Int? in
                let b = g.headInput(l, h, ComponentGraph.Input(rawValue: i)!)
                return plan.computed[g.head(l, h)] && plan.fromSource[b] && plan.terms[b].isEmpty ? b : nil } } }
            XCTAssertFalse(reused.isEmpty, "some computed head reads the corrupted stream unchanged at \(keptFraction)")
            XCTAssertTrue(plan.computed[g.mlp(c.nLayers - 1)], "the last MLP runs (on the last rows)")
            let ref = sf.lastLogits(sf.run(embeddings: emb, segments: segs, keep: keep, source: src).final, segments: segs)
            func run(_ p: [Float]?, _ rows: SplitForward.RowSelection?) -> [Float] {
                let logits = src.withUnsafeBufferPointer { s in (p ?? []).withUnsafeBufferPointer { pp in
                    sf.lastLogits(sf.run(embeddings: emb, segments: segs, keep: keep, source: s.baseAddress, record: nil, fullWidth: false,
                                         sourceProjections: p == nil ? nil : pp.baseAddress, rows: rows), segments: segs) } }
                XCTAssertTrue(logits.allSatisfy { $0.isFinite }, "no unwritten (NaN) source or projection is read")
                return logits
            }
            XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(ref, sf.lastLogits(sf.run(embeddings: emb, segments: segs).final, segments: segs)), 1e-3,
                                 "the circuit differs from the clean run at \(keptFraction)")
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(run(projections, nil), ref), 1e-5, "reused projections, kept \(keptFraction)")
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(run(nil, sel), ref), 1e-5, "row selection, kept \(keptFraction)")
            XCTAssertLessThan(PruneTestKit.maxAbsDiff(run(projections, sel), ref), 1e-5, "both, kept \(keptFraction)")
            // The shortcuts are taken: wrong projections or a row selection that skips changed rows show.
            XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(run(projections.map { $0 * 0.5 }, nil), ref), 1e-4, "projections are read")
            XCTAssertGreaterThan(PruneTestKit.maxAbsDiff(run(nil, .init(changed: [6, 7, 8, 9], read: [5, 9])), ref), 1e-4,
                                 "rows outside `changed` take the source")
        }
    }
}
