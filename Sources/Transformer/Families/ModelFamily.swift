import Foundation
import Tokenize

// MARK: - Model families: one file each, one registry line each
//
// Everything a family does differently (config.json decode and encode, HF and
// foreign tensor names, build, block forward, block backward, MLP activation,
// tokenizer BOS rules) is a static requirement of `TransformerFamily`, written
// in `Families/<Family>.swift`. The rest of the code asks `config.family.definition`
// and never switches on the family. Adding a family: see README "Adding a model family".

/// A model family, named by its HF `model_type` ("llama", "opt"). Each family
/// file declares its constant (`extension ModelFamily { static let llama … }`).
public struct ModelFamily: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String

    /// Only registered families: decoding a config or a settings record with
    /// another `model_type` fails here instead of far downstream.
    public init?(rawValue: String) {
        guard ModelFamily.registry[ModelFamily(id: rawValue)] != nil else { return nil }
        self.rawValue = rawValue
    }

    /// For the family files' constants (the registry is keyed by them).
    init(id: String) { rawValue = id }

    public var description: String { rawValue }

    /// The registry: one line per family.
    static let all: [any TransformerFamily.Type] = [
        LlamaFamily.self,
        OPTFamily.self,
    ]

    static let registry: [ModelFamily: any TransformerFamily.Type] =
        Dictionary(uniqueKeysWithValues: all.map { ($0.family, $0) })

    /// The `model_type` values config.json may carry, in registry order.
    public static var supported: [String] { all.map { $0.family.rawValue } }

    /// The family's implementation. Every `ModelFamily` value is registered
    /// (`init?(rawValue:)` refuses others), so this cannot fail.
    var definition: any TransformerFamily.Type { ModelFamily.registry[self]! }
}

/// What a model family provides. All requirements are static: a family is a
/// namespace of functions over the shared `Model`/`Block`/`BlockBuffers` types.
protocol TransformerFamily {
    /// The family's id, equal to HF `model_type`.
    static var family: ModelFamily { get }
    /// HF names of the tensors the rest of the code refers to by role.
    static var names: FamilyNames { get }
    /// Whether the MLP has two input projections (gate and up): `BlockBuffers.up` is allocated only then.
    static var gatedMLP: Bool { get }
    /// Rotary positions (head dim must be even, rope_theta positive) rather than a learned table.
    static var usesRoPE: Bool { get }
    /// Row of the learned position table for position 0 (`names.positions`); unused without one.
    static var positionOffset: Int { get }

    /// The config.json key each ModelConfig field is read from (errors name it).
    static var configKeys: [ConfigField: String] { get }
    /// config.json keys that must hold exact integers (checked before decoding, naming the key).
    static var integerKeys: [String] { get }
    /// The config.json key that states the head dimension, if the family has one.
    static var headDimKey: String? { get }
    /// config.json → ModelConfig with typed CodingKeys; refuses what the engine does not implement.
    static func decodeConfig(_ data: Data, file: String) throws -> ModelConfig
    /// ModelConfig → config.json object (typed Codable, the inverse of `decodeConfig`).
    static func encodeConfig(_ c: ModelConfig) throws -> Data
    /// Consumes a checkpoint's HF-named tensors into a model.
    static func build(_ ck: Checkpoint) throws -> Model
    /// One block forward on the residual stream x [N, d] in place.
    static func block(_ m: Model, _ blk: Block, _ x: UnsafeMutablePointer<Float>, segments: [Segment], _ b: BlockBuffers)
    /// The MLP activation from b.pre (and b.up) into `post` [N, dFF].
    static func mlpActivation(_ m: Model, _ b: BlockBuffers, into post: UnsafeMutablePointer<Float>)
    /// One block backward with the LRP rules; `dx` [N, d] holds δ(block output) on entry, δ(block input) on return.
    static func blockBackward(_ m: Model, _ blk: Block, _ b: BlockBuffers, dx: UnsafeMutablePointer<Float>, _ g: GradBuffers,
                              rules: LRPRules, sink: RelevanceSink?, scratch: BackwardScratch)
    /// BOS/EOS rules of the family for a tokenizer source.
    static func tokenizerHints(config: ModelConfig, tokenizer: TokenizerSource?, addBOS: Bool?) -> TokenizerHints
}

/// HF tensor names a family answers for code outside its file.
public struct FamilyNames: Sendable {
    /// Token embedding, e.g. "model.embed_tokens.weight".
    public let embed: String
    /// Learned position table, or nil (RoPE).
    public let positions: String?
    /// Untied output projection.
    public let lmHead: String
    /// What every block tensor's name starts with ("model.layers.").
    public let layerPrefix: String
    /// Layer l's query, key and MLP input (up_proj / fc1: [dFF, d]) weights.
    public let query: @Sendable (Int) -> String
    public let key: @Sendable (Int) -> String
    public let mlpIn: @Sendable (Int) -> String
    /// Relevance-file name of layer l's MLP neuron scores.
    public let neurons: @Sendable (Int) -> String
    /// Relevance-file name of layer l's attention head scores.
    public let heads: @Sendable (Int) -> String

    /// The module name of the output projection (compressed-tensors `ignore`).
    public var lmHeadModule: String { lmHead.hasSuffix(".weight") ? String(lmHead.dropLast(7)) : lmHead }
}

extension ModelConfig {
    /// The family implementation of this config.
    var definition: any TransformerFamily.Type { family.definition }
}

extension ModelFamily {
    /// HF tensor names of this family.
    public var names: FamilyNames { definition.names }
    /// The family's config.json for `c` (typed encode; see the family file).
    public func encodeConfig(_ c: ModelConfig) throws -> Data { try definition.encodeConfig(c) }
}

/// A Float as its shortest decimal ("1e-05", not 9.99999974738e-06), for config.json.
func shortestDecimal(_ f: Float) -> Double { Double("\(f)") ?? Double(f) }

extension FamilyNames {
    /// Whether `name` looks like a parameter of a model of this family (the first path component of the
    /// embedding, e.g. "model.", or the output projection): a score file naming one the model lacks was
    /// written for another model.
    public func isParameterLike(_ name: String) -> Bool {
        let root = embed.split(separator: ".").first.map { $0 + "." } ?? embed
        return name.hasPrefix(root) || name.hasPrefix(lmHeadModule)
    }
}
