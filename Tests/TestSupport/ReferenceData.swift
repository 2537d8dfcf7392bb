import Foundation
import XCTest

/// shared/assets/reference/reference_outputs.json: the fp64 numpy forward of stories260K that the
/// engine (TransformerTests) and the CLI (WorkbenchTests) are checked against.
public struct ReferenceData {
    public struct Top5 {
        public let prompt: String; public let inputIds: [Int]; public let ids: [Int]
        public let logits: [Double]; public let logprobs: [Double]
    }
    public let greedyFromBOS: [Int]
    public let greedyText: String
    public let greedy256: [Int]
    public let greedy256Text: String
    public let logitsAfterBOS: [Double]
    public let argmaxAfterBOS: Int
    public let top5: [Top5]
    public let nllSentence: String
    public let nllInputIds: [Int]
    public let meanNLL: Double
    public let perplexity: Double
    public let perTokenNLL: [Double]

    public static func load() throws -> ReferenceData {
        let path = try Assets.path("reference/reference_outputs.json")
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        func obj(_ k: String) throws -> [String: Any] { try XCTUnwrap(root[k] as? [String: Any], k) }
        let g = try obj("greedy_from_bos"), g256 = try obj("greedy_256_karpathy_doc"), bos = try obj("logits_after_bos")
        let nll = try obj("nll")
        let top = try XCTUnwrap(root["top5_next_token"] as? [[String: Any]])
        return ReferenceData(
            greedyFromBOS: try XCTUnwrap(g["ids"] as? [Int]), greedyText: try XCTUnwrap(g["text"] as? String),
            greedy256: try XCTUnwrap(g256["ids"] as? [Int]), greedy256Text: try XCTUnwrap(g256["text"] as? String),
            logitsAfterBOS: try XCTUnwrap(bos["logits"] as? [Double]), argmaxAfterBOS: try XCTUnwrap(bos["argmax"] as? Int),
            top5: try top.map {
                Top5(prompt: try XCTUnwrap($0["prompt"] as? String), inputIds: try XCTUnwrap($0["input_ids"] as? [Int]),
                     ids: try XCTUnwrap($0["top5_ids"] as? [Int]), logits: try XCTUnwrap($0["top5_logits"] as? [Double]),
                     logprobs: try XCTUnwrap($0["top5_logprobs"] as? [Double]))
            },
            nllSentence: try XCTUnwrap(nll["sentence"] as? String), nllInputIds: try XCTUnwrap(nll["input_ids"] as? [Int]),
            meanNLL: try XCTUnwrap(nll["mean_nll_nats"] as? Double), perplexity: try XCTUnwrap(nll["perplexity"] as? Double),
            perTokenNLL: try XCTUnwrap(nll["per_token_nll"] as? [Double]))
    }
}
