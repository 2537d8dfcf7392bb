import Foundation
import Transformer

/// Raw tensor bytes of a safetensors file, for bit-identity checks (resume, sharded or
/// interrupted runs must write exactly the bytes of one uninterrupted run).
public enum TensorBytes {
    /// Every tensor of the file at `path`, by name, as its stored bytes.
    public static func read(_ path: String) throws -> [String: [UInt8]] {
        let f = try SafetensorsFile(path: path)
        var out: [String: [UInt8]] = [:]
        for n in f.names { out[n] = [UInt8](try f.rawBytes(n)) }
        return out
    }
}
