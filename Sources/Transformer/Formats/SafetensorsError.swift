import Foundation
import Tokenize

// MARK: - safetensors errors (every one names the file; tensor names are quoted safely)

public enum SafetensorsError: LocalizedError, Equatable {
    case headerTooLarge(file: String, length: UInt64)
    case invalidHeaderLength(file: String, length: UInt64, fileSize: Int)
    case invalidHeader(file: String, reason: String)
    case unknownDType(file: String, tensor: String, dtype: String)
    case invalidOffset(file: String, tensor: String, reason: String)
    case sizeMismatch(file: String, tensor: String, expectedBytes: Int, foundBytes: Int)
    case incompleteBuffer(file: String, dataEnd: Int, fileSize: Int)
    case notFloat(file: String, tensor: String, dtype: String)
    case missingTensor(file: String, tensor: String)

    public var errorDescription: String? {
        switch self {
        case .headerTooLarge(let f, let n): return "\(f): safetensors header length \(n) exceeds the 100 MB limit"
        case .invalidHeaderLength(let f, let n, let s): return "\(f): safetensors header length \(n) does not fit in a \(s)-byte file"
        case .invalidHeader(let f, let r): return "\(f): invalid safetensors header: \(r)"
        case .unknownDType(let f, let t, let d): return "\(f): tensor '\(QuotedName.safe(t))' has unknown dtype '\(QuotedName.safe(d))'"
        case .invalidOffset(let f, let t, let r): return "\(f): tensor '\(QuotedName.safe(t))': invalid data_offsets: \(r)"
        case .sizeMismatch(let f, let t, let e, let b):
            return "\(f): tensor '\(QuotedName.safe(t))' spans \(b) bytes but shape × dtype needs \(e)"
        case .incompleteBuffer(let f, let e, let s): return "\(f): tensor data ends at byte \(e) but the file has \(s) bytes"
        case .notFloat(let f, let t, let d): return "\(f): tensor '\(QuotedName.safe(t))' has dtype \(QuotedName.safe(d)), expected a floating-point dtype"
        case .missingTensor(let f, let t): return "\(f): tensor '\(QuotedName.safe(t))' is missing"
        }
    }
}
