import Circuits
import Foundation
import Transformer

// MARK: - quantize

enum QuantizeCommand: Command {
    enum Options {
        static let scores = Option<String>("scores", "file", help: "Per-weight scores (workbench attribute output, HF names): |score| is the importance")
        static let importance = Option<String>("importance", "kind", default: "plain", choices: ["plain", "magnitude"],
                                               help: "Importance without --scores/--method: 1 per weight, or |W|")
        static let bits = Option<Double>("bits-per-weight", "b", help: "Average storage bits per quantised weight, block scales included (Q4_0 4.5, Q4_1 5, Q8_0 8.5, F16 16)")
        static let types = Option<String>("types", "list", default: "f16,q8_0,q4_1,q4_0", help: "Types a tensor may get (f32, f16, bf16, q8_0, q4_1, q4_0)")
        static let plainRounding = Flag("plain-rounding", help: "ggml's plain block scales instead of importance-weighted ones")
        static let pruneNonPositive = Flag("prune-nonpositive", help: "First set every weight whose signed score is ≤ 0 to zero (needs --scores with signed relevance); reports the sparsity")
        static let out = Option<String>("out", "file", help: "Output GGUF v3 file")
        // The same declarations as prune's: scores computed on the fly (no score file), with calibration data.
        static let method = PruneCommand.Options.method
        static let aggregation = PruneCommand.Options.aggregation
        static let json = Option<String>("json", "file", help: "Also write the per-tensor choices and errors as JSON")
    }
    static let spec = CommandSpec(
        name: "quantize", abstract: "Mixed-precision GGUF: a ggml type per tensor under a bits-per-weight budget, guided by importance.",
        usage: "workbench quantize --model <path> [--scores <file> | --method magnitude|wanda|gradient|lrp [calibration] | --importance plain|magnitude] --bits-per-weight <b> [--types f16,q8_0,q4_1,q4_0] [--plain-rounding] [--prune-nonpositive] --out <file.gguf> [--json <file>]",
        options: ModelOptions.all + [Options.scores, Options.method] + CalibrationOptions.all + [Options.aggregation, Options.importance, Options.bits, Options.types, Options.plainRounding, Options.pruneNonPositive, Options.out, Options.json],
        discussion: """
        Greedy allocation: every 2-D weight starts at the cheapest type and the upgrade with the largest drop of the
        importance-weighted squared error per extra bit is taken while the budget allows; norms stay F32 (not counted).
        Block scales minimise the importance-weighted error (llama.cpp's imatrix way) unless --plain-rounding.
        --method computes the scores on the fly as `prune --method` does (magnitude needs no data; wanda, gradient and
        lrp need --prompts or --text with --seqlen/--samples/--seed; gradient/lrp aggregate by --aggregation, default
        abs-per-token); |score| is the importance. --prune-nonpositive needs signed scores: --scores, or --method
        gradient|lrp --aggregation signed.
        Llama models only. A GGUF input's tokenizer keys are carried over; an HF directory's byte-level BPE tokenizer is written as llama.cpp's converter writes it.
        """)

    static func run(_ args: Args) throws {
        let modelPath = try args[ModelOptions.model], out = try args[Options.out]
        let types: [GGMLType], budget = try args[Options.bits]
        do { types = try QuantizationError.parseTypes(try args[Options.types], flag: "--types") } catch let e as QuantizationError { throw UsageError(message: e.localizedDescription) }
        guard budget.isFinite else { throw UsageError(message: "--bits-per-weight must be a finite number") }
        let scorePath = try args.ifGiven(Options.scores), method = try args.ifGiven(Options.method)
        let given = [scorePath.map { _ in "--scores" }, method.map { _ in "--method" }, try args.ifGiven(Options.importance).map { _ in "--importance" }].compactMap { $0 }
        if given.count > 1 { throw UsageError(message: given.joined(separator: ", ") + " exclude each other") }
        if method == nil, let o = (CalibrationOptions.all + [Options.aggregation]).first(where: args.given) {
            throw UsageError(message: "--\(o.name) applies only with --method")
        }
        let aggregation = try args[Options.aggregation]
        if let method, args.given(Options.aggregation), !method.explains {
            throw UsageError(message: "--aggregation applies only with --method gradient or lrp")
        }
        let calibration = try method.flatMap { try CalibrationOptions.calibration(args, needsData: $0.needsData, method: $0.rawValue) }
        let signed = scorePath != nil || (method?.explains == true && aggregation == .signed)
        if args[Options.pruneNonPositive], !signed {
            throw UsageError(message: QuantizationError.pruneNeedsScores.localizedDescription + ", or --method gradient|lrp --aggregation signed")
        }
        let jsonPath = try args.ifGiven(Options.json)
        let ck = try ModelLoader.checkpoint(modelPath)
        let inputs = ck.inputFiles + [modelPath] + (scorePath.map { [$0] } ?? []) + (calibration.map { [$0.path] } ?? [])
        try OutputGuard.check(output: out, inputs: inputs)
        if let jsonPath { try OutputGuard.check(output: jsonPath, inputs: inputs + [out]) }
        let importance: QuantizeImportance
        if let scorePath {
            importance = .scores(ScoreMapBox(try ScoreMap.load(path: scorePath)))
        } else if let method, method != .magnitude {
            // The attribution engine over the calibration data, on a model built from this checkpoint (freed after).
            let map = try OnTheFlyScores.compute(method: method, calibration: calibration, aggregation: aggregation,
                                                 model: try Model.build(from: ck), source: CheckpointSourceInfo(ck), log: { Out.err("quantize: " + $0) })
            importance = .scores(ScoreMapBox(map))
        } else {
            let kind = try args[Options.importance]
            importance = method == .magnitude || kind == "magnitude" ? .magnitude : .plain
        }
        // Tokenizer keys: a GGUF source's own, else built from the HF tokenizer files (byte-level BPE).
        let carry: [GGUFMetadataItem]
        if modelPath.hasSuffix(".gguf") {
            carry = try GGUFFile(path: modelPath).metadataItems.filter { $0.key.hasPrefix("tokenizer.") }
        } else {
            let t = try GGUFLlamaExport.tokenizerMetadata(ck)
            carry = t.items
            if let reason = t.reason { Out.err("quantize: the output has no tokenizer keys: \(reason)") }
        }
        let settings = QuantizeSettings(bitsPerWeight: budget, types: types, importance: importance, weightedRounding: !args[Options.plainRounding],
                                      pruneNonPositive: args[Options.pruneNonPositive])
        let r: QuantizeReport
        do {
            var line: ProgressLine?
            r = try MixedPrecisionQuantizer.run(ck, settings: settings, carry: carry, out: out) { done, total, weights in
                if line == nil { line = ProgressLine("quantize: scoring types", total: total, unit: "tensors") }
                line?.update(done, tokens: weights)   // rate shown in weights/s
            }
        } catch let e as QuantizationError where e.isUsageError { throw UsageError(message: e.localizedDescription) }
        if case .scores(let box) = importance, !r.unscoredTensors.isEmpty {
            // Once, naming the file and every tensor it leaves out (attribution scores the decoder weights, not the embedding).
            Out.err("warning: \(box.map.source) has no scores for \(r.unscoredTensors.joined(separator: ", ")): weighted by |W| scaled to the covered weights' mean |score| (block scales and allocation)")
        }
        Out.print(String(format: "budget %.3f bits/weight, achieved %.4f over %d quantised weights (%d norm/bias weights kept F32)",
                         r.budget, r.achievedBitsPerWeight, r.quantizedWeights, r.otherF32Weights))
        Out.print("importance: \(r.importance), \(r.weightedRounding ? "importance-weighted" : "plain") block scales")
        if args[Options.pruneNonPositive] {
            Out.print(String(format: "pruned %d weights with signed relevance ≤ 0 (%.2f %% of the weights the score file covers)", r.prunedWeights, 100 * r.prunedFraction))
        }
        Out.print("tensors by type: " + r.typeCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        Out.print("wrote \(out) (\(r.fileBytes) bytes)")
        if let jsonPath {
            let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(try enc.encode(r), to: jsonPath)
        }
    }
}
