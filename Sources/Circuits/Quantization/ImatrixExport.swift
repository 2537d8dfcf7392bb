import Foundation
import Transformer

// Relevance as a llama.cpp importance matrix (`workbench imatrix`), so llama.cpp users can quantise
// with it in their own tools (`llama-quantize --imatrix imatrix.gguf …`).
//
// Format: the GGUF imatrix that current llama.cpp writes and reads (tools/imatrix/imatrix.cpp
// save_imatrix, read by common_imatrix_load for llama-quantize; GGUF since ggml-org/llama.cpp PR
// #9400, the legacy .dat still read as a fallback):
//   metadata  general.type = "imatrix", imatrix.datasets = [string], imatrix.chunk_count = u32,
//             imatrix.chunk_size = u32 (llama-quantize refuses a GGUF imatrix without these three);
//   tensors   "<gguf tensor>.in_sum2"  F32, ne = [n_in, 1]  (per input column, summed over tokens)
//             "<gguf tensor>.counts"   F32, ne = [1, 1]     (the count it is divided by).
// llama-quantize uses in_sum2[j] / counts as the weight of column j in every row's weighted
// least-squares block fit. An imatrix is per input column, not per weight, so a weight's |R_ij|
// is reduced to its column: in_sum2[j] = mean_i |R_ij| over the rows, counts = 1. A column whose
// relevance is exactly 0 is floored at 1e-6 × the tensor's mean column value: an all-zero weight
// block would make llama.cpp fit a zero scale and erase those weights (a tensor that is all zero
// gets 1 everywhere, what llama-quantize itself uses for a zero count).

public struct ImatrixEntry: Equatable {
    /// GGUF tensor name (`blk.0.attn_q.weight`).
    public var name: String
    /// One importance per input column.
    public var values: [Float]
}

public enum ImatrixExport {
    /// Column importances of every decoder linear of `model` from the score file (validated first).
    public static func entries(_ scores: ScoreMap, model: Model) throws -> [ImatrixEntry] {
        try scores.validate(against: model)
        var out: [ImatrixEntry] = []
        for l in model.linears {
            guard let name = GGUFLlamaExport.ggufName(hf: l.name, layers: model.config.nLayers) else {
                throw ModelError.unsupported(file: scores.source, feature: "an importance matrix for \(l.name) (Llama tensors only)")
            }
            let s = try scores.weightScores(l)                          // [out, in]
            var col = [Double](repeating: 0, count: l.inDim)
            for r in 0..<l.outDim { for c in 0..<l.inDim { col[c] += Double(Swift.abs(s[r * l.inDim + c])) } }
            let means = col.map { $0 / Double(l.outDim) }
            let avg = means.reduce(0, +) / Double(means.count)
            let values = avg > 0 ? means.map { Float(Swift.max($0, 1e-6 * avg)) } : [Float](repeating: 1, count: l.inDim)
            out.append(ImatrixEntry(name: name, values: values))
        }
        return out
    }

    /// Writes the entries as a GGUF imatrix (atomically).
    public static func write(_ entries: [ImatrixEntry], datasets: [String], chunkCount: Int, chunkSize: Int, to path: String) throws {
        let meta = [
            GGUFMetadataItem("general.type", .string("imatrix"), as: .string),
            GGUFMetadataItem("imatrix.datasets", .stringArray(datasets), as: .array(8)),
            GGUFMetadataItem("imatrix.chunk_count", .uint(UInt64(Swift.max(chunkCount, 0))), as: .u32),
            GGUFMetadataItem("imatrix.chunk_size", .uint(UInt64(Swift.max(chunkSize, 0))), as: .u32),
        ]
        var tensors: [GGUFTensorRecord] = []
        for e in entries.sorted(by: { $0.name < $1.name }) {        // llama-imatrix sorts its names too
            tensors.append(GGUFTensorRecord(name: e.name + ".in_sum2", dims: [e.values.count, 1], type: .f32,
                                            data: GGMLBlockCodec.encode(e.values, type: .f32)))
            tensors.append(GGUFTensorRecord(name: e.name + ".counts", dims: [1, 1], type: .f32, data: GGMLBlockCodec.encode([1], type: .f32)))
        }
        try GGUFWriter.write(to: path, metadata: meta, tensors: tensors)
    }
}
