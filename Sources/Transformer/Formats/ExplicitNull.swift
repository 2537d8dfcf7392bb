import Foundation

// MARK: - Optional fields written as explicit nulls
//
// Synthesized Codable omits a nil optional; provenance records (pruning.json, the calibration flags)
// must show every field, given or not, so a reader can tell "not set" from "written by an older
// version". Marking the field `@ExplicitNull` keeps the synthesized Codable (no hand-written
// encode(to:) listing every key) and still reads files where the key is absent.

@propertyWrapper
public struct ExplicitNull<Value: Codable & Equatable>: Codable, Equatable {
    public var wrappedValue: Value?
    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        wrappedValue = c.decodeNil() ? nil : try c.decode(Value.self)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if let v = wrappedValue { try c.encode(v) } else { try c.encodeNil() }
    }
}

extension ExplicitNull: Sendable where Value: Sendable {}

extension KeyedDecodingContainer {
    /// An absent key decodes as nil (synthesized Decodable would otherwise require the key).
    public func decode<V>(_ type: ExplicitNull<V>.Type, forKey key: Key) throws -> ExplicitNull<V> {
        ExplicitNull(wrappedValue: try decodeIfPresent(V.self, forKey: key))
    }
}
