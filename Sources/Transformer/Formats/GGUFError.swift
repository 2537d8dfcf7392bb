import Foundation
import Tokenize

// MARK: - GGUF errors
//
// Layout (v2/v3, little-endian): "GGUF", u32 version, u64 tensor_count,
// u64 kv_count, kv pairs (string key, u32 type, value), tensor infos (string
// name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset relative to the
// data section), padding to `general.alignment` (default 32), tensor data.
// Every read is bounds-checked: a hostile or truncated file yields a GGUFError.

public enum GGUFError: LocalizedError, Equatable {
    case badMagic(path: String)
    case unsupportedVersion(path: String, version: UInt32)
    case truncated(path: String, what: String, offset: Int)
    case absurdCount(path: String, what: String, count: UInt64)
    case badValueType(path: String, key: String, type: UInt32)
    case badKey(path: String, key: String, reason: String)
    case missingKey(path: String, key: String)
    case badTensorInfo(path: String, tensor: String, reason: String)
    case tensorOutOfRange(path: String, tensor: String, end: Int, fileSize: Int)
    case unsupportedTensorType(path: String, tensor: String, type: String)
    case unsupportedArchitecture(path: String, architecture: String)
    case unexpectedTensor(path: String, tensor: String)

    public var errorDescription: String? {
        switch self {
        case .badMagic(let p): return "\(p): not a GGUF file (bad magic)"
        case .unsupportedVersion(let p, let v): return "\(p): unsupported GGUF version \(v) (supported: 2, 3)"
        case .truncated(let p, let w, let o): return "\(p): file is truncated while reading \(QuotedName.safe(w)) at byte \(o)"
        case .absurdCount(let p, let w, let n): return "\(p): implausible \(QuotedName.safe(w)) \(n) for the file size"
        case .badValueType(let p, let k, let t): return "\(p): metadata '\(QuotedName.safe(k))' has unknown value type \(t)"
        case .badKey(let p, let k, let r): return "\(p): metadata '\(QuotedName.safe(k))': \(r)"
        case .missingKey(let p, let k): return "\(p): required metadata '\(k)' is missing"
        case .badTensorInfo(let p, let t, let r): return "\(p): tensor '\(QuotedName.safe(t))': \(r)"
        case .tensorOutOfRange(let p, let t, let e, let s):
            return "\(p): tensor '\(QuotedName.safe(t))' data ends at byte \(e) but the file has \(s) bytes"
        case .unsupportedTensorType(let p, let t, let ty):
            return "\(p): tensor '\(QuotedName.safe(t))' has ggml type \(ty); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"
        case .unsupportedArchitecture(let p, let a): return "\(p): unsupported GGUF architecture '\(QuotedName.safe(a))' (supported: llama)"
        case .unexpectedTensor(let p, let t): return "\(p): unexpected tensor '\(QuotedName.safe(t))' for a llama model"
        }
    }
}
