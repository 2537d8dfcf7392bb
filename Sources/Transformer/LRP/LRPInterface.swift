import Foundation
import Tokenize

// The LRP pass's public interface: what is explained, how relevance is seeded,
// where per-layer gradients go, and what a pass returns. The pass is LRPPass.swift;
// the per-layer backward pieces are LinearBackward.swift and AttentionBackward.swift.

// MARK: - What is explained

/// One explained logit: coefficient · logit[position, token].
public struct ExplainTerm: Equatable, Sendable {
    public var position: Int
    public var token: Int
    public var coefficient: Float
    public init(position: Int, token: Int, coefficient: Float = 1) {
        self.position = position; self.token = token; self.coefficient = coefficient
    }
}

/// An explained quantity y = Σ coefficient · logit (one logit, or a logit difference).
public typealias ExplainGroup = [ExplainTerm]

public enum ExplainSpec: Equatable, Sendable {
    /// At every position t ≥ from, the logit of the true next token x_{t+1} (one group per position).
    case nextToken(from: Int)
    /// The largest logit at the last position.
    case lastMax
    /// Explicit groups (given ids at positions, logit differences such as IOI's logit(IO) − logit(S)).
    case groups([ExplainGroup])
}

/// How the output relevance is seeded: with the explained value (R_out = y, the
/// efficient-mode convention `y.backward()`) or with 1 per explained quantity.
public enum SeedValue: String, Sendable { case logit, one }

/// Receives one sample's modified gradients as they are produced (layer by layer,
/// last layer first). Relevance is R = parameter ⊙ gradient; the sink decides how
/// to aggregate (signed sum, |·| per sample, Wanda statistics…).
public protocol RelevanceSink: AnyObject {
    /// δW [out, in] of one linear layer, summed over the sample's positions.
    func weightGradient(_ linear: Linear, _ dW: UnsafePointer<Float>)
    /// Relevance of each MLP intermediate neuron (Σ_t act ⊙ δact) [dFF].
    func neurons(layer: Int, _ relevance: [Float])
    /// Asks for the signed δW (`weightGradient`). Default true; a sink that only
    /// aggregates per-token absolute values says false and saves one GEMM per linear.
    var wantsSignedGradient: Bool { get }
    /// Asks for any per-weight quantity (`weightGradient` / `weightAbsGradient`). Default true; a sink
    /// that only wants neuron and head relevance says false and saves every δW GEMM (the largest
    /// part of a short prompt's backward).
    var wantsWeightRelevance: Bool { get }
    /// Asks for per-token absolute aggregation: Σ_t |δy_t|ᵀ|x_t| per linear
    /// (`weightAbsGradient`) and Σ_t |·| for neurons and heads. Default false.
    var wantsAbsPerToken: Bool { get }
    /// Σ_t |δy_t| |x_t|ᵀ [out, in] of one linear layer (only when `wantsAbsPerToken`):
    /// |W| ⊙ this is Σ_t |R_W,t|, the weight relevance with no cancellation between positions.
    func weightAbsGradient(_ linear: Linear, _ g: UnsafePointer<Float>)
    /// Relevance passing through each head's output z_h (Σ_t z_h ⊙ δz_h) [nHeads].
    /// Under AttnLRP's uniform rule on A·V the softmax output A receives half of
    /// it (V the other half), so head rankings equal PXP's softmax-output
    /// relevance summed over keys; for the plain gradient it equals Σ A ⊙ δA.
    func heads(layer: Int, _ relevance: [Float])
    /// Asks for δ at the inputs of the component graph's nodes (`headInputs`, `mlpInput`,
    /// `logitsInput`). Default false.
    var wantsNodeInputs: Bool { get }
    /// δ at the residual-stream inputs of layer l's heads [3, H, N, d]: the q input of every head, then
    /// k, then v (through the attention norm with the pass's rules). Needs one k/v head per query
    /// head (`Model.ungroupedQueryAttention`).
    func headInputs(layer: Int, _ g: UnsafePointer<Float>, rows: Int)
    /// δ at layer l's MLP input [N, d] (through the MLP norm).
    func mlpInput(layer: Int, _ g: UnsafePointer<Float>, rows: Int)
    /// δ at the final residual stream [N, d] (the input of the `logits` node, through the final norm).
    func logitsInput(_ g: UnsafePointer<Float>, rows: Int)
}

extension RelevanceSink {
    public var wantsSignedGradient: Bool { true }
    public var wantsWeightRelevance: Bool { true }
    public var wantsAbsPerToken: Bool { false }
    public func weightAbsGradient(_ linear: Linear, _ g: UnsafePointer<Float>) {}
    public var wantsNodeInputs: Bool { false }
    public func headInputs(layer: Int, _ g: UnsafePointer<Float>, rows: Int) {}
    public func mlpInput(layer: Int, _ g: UnsafePointer<Float>, rows: Int) {}
    public func logitsInput(_ g: UnsafePointer<Float>, rows: Int) {}
}

public struct LRPResult {
    /// Resolved explained terms with their logit values.
    public var terms: [(term: ExplainTerm, logit: Float)]
    /// Total explained output (Σ y_g with seed logit, number of groups with seed one).
    public var explained: Double
    /// Per-token input relevance (token-embedding ⊙ δ summed over d) [T].
    public var tokenRelevance: [Float]
    /// OPT: per-token position-embedding relevance [T]; nil for Llama.
    public var positionRelevance: [Float]?
    /// Relevance absorbed by biases and LayerNorm β (conservation bookkeeping).
    public var biasRelevance: Double
    public var inputTotal: Double { tokenRelevance.reduce(0.0) { $0 + Double($1) } + (positionRelevance?.reduce(0.0) { $0 + Double($1) } ?? 0) }
}

public enum LRPError: LocalizedError, Equatable {
    case tooFewTokens(Int)
    case positionOutOfRange(position: Int, length: Int)
    case nothingToExplain
    /// The forward pass overflowed Float32 (`model`: the checkpoint it was loaded from, which
    /// every command that explains outputs takes as `--model`).
    case nonFiniteLogit(value: Float, position: Int, token: Int, model: String?)

    public var errorDescription: String? {
        switch self {
        case .tooFewTokens(let n): return "a sequence needs at least 2 tokens to explain next tokens, got \(n)"
        case .positionOutOfRange(let p, let n): return "target position \(p) is outside the sequence (length \(n))"
        case .nothingToExplain: return "no explained output (every target is empty or has a zero value)"
        case .nonFiniteLogit(let v, let p, let t, let m):
            return "the forward pass gives a non-finite logit (\(v)) for token \(t) at position \(p): the activations overflow Float32 "
                + "— check the weights of " + (m.map { "--model \(QuotedName.path($0))" } ?? "the model") + " (a huge weight or scale)"
        }
    }
}
