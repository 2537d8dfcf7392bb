import Circuits
import Foundation
import Transformer

// MARK: - imatrix

enum ImatrixCommand: Command {
    enum Options {
        static let scores = Option<String>("scores", "file", help: "Per-weight scores (workbench attribute output, HF names)")
        static let out = Option<String>("out", "imatrix.gguf", help: "Output: a GGUF importance matrix as llama-imatrix writes it")
    }
    static let spec = CommandSpec(
        name: "imatrix", abstract: "Export relevance as a llama.cpp importance matrix (GGUF) for llama-quantize --imatrix.",
        usage: "workbench imatrix --model <path> --scores <file> --out <imatrix.gguf>",
        options: ModelOptions.all + [Options.scores, Options.out],
        discussion: """
        Per decoder weight <gguf name>: <name>.in_sum2 = mean over rows of |score| per input column, <name>.counts = 1
        (llama-quantize weighs column j by in_sum2[j] / counts); metadata general.type = imatrix, imatrix.datasets,
        imatrix.chunk_count (the score file's samples), imatrix.chunk_size (its tokens per sample). Columns with zero
        relevance are floored at 1e-6 × the tensor's mean. Llama models only.
        """)

    static func run(_ args: Args) throws {
        let modelPath = try args[ModelOptions.model], scoresPath = try args[Options.scores], out = try args[Options.out]
        try TaskCommandSupport.checkOutput(out, inputs: [modelPath, scoresPath])
        let scores = try ScoreMap.load(path: scoresPath)
        let m = try Common.load(args, tokenizer: false)
        for f in m.inputFiles { try OutputGuard.check(output: out, inputs: [f]) }
        let entries = try ImatrixExport.entries(scores, model: m.model)
        let samples = Int(scores.metadata["samples_done"] ?? scores.metadata["samples"] ?? "") ?? 1
        let tokens = Int(scores.metadata["tokens"] ?? "") ?? samples
        let dataset = scores.metadata["prompts"] ?? scores.metadata["corpus"] ?? scoresPath
        let method = scores.metadata["method"] ?? "scores"
        try ImatrixExport.write(entries, datasets: ["\(dataset) (workbench \(method) relevance, mean |R| per input column: \(scoresPath))"],
                                chunkCount: samples, chunkSize: max(1, tokens / max(samples, 1)), to: out)
        Out.print("wrote \(out): \(entries.count) tensors (\(method) relevance from \(scoresPath); \(samples) samples)")
    }
}
