import Foundation

// MARK: - ggml types

public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0), f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2), q4_1 = GGMLType(rawValue: 3)
    public static let q8_0 = GGMLType(rawValue: 8), bf16 = GGMLType(rawValue: 30)

    private static let names: [UInt32: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
        11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
        19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
        27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
    ]
    // (elements per block, bytes per block) from ggml.c's type_traits; used to range-check
    // tensors even of types we cannot dequantize, so `info` works on any file.
    private static let layouts: [UInt32: (Int, Int)] = [
        0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
        10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
        24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2),
    ]

    public var name: String { Self.names[rawValue] ?? "type \(rawValue)" }
    public var description: String { name }
    /// (block elements, block bytes), nil for layouts this reader does not know.
    public var blockLayout: (elements: Int, bytes: Int)? { Self.layouts[rawValue].map { (elements: $0.0, bytes: $0.1) } }
    public var canDequantize: Bool { [0, 1, 2, 3, 8, 30].contains(rawValue) }
}

// MARK: - Dequantization kernels
//
// Plain loops over raw pointers: with -Ounchecked they vectorise, and one f16
// scale conversion per 32-element block is negligible.

@inline(__always)
private func f16(_ p: UnsafeRawPointer, _ o: Int) -> Float {
    halfToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
}

/// Dequantize `blocks` consecutive blocks of `type` (block = 1 element for F32/F16/BF16).
/// Types other than F32/F16/BF16/Q8_0/Q4_0/Q4_1 are left untouched; callers check `canDequantize`.
public func ggmlDequantize(_ src: UnsafeRawPointer, type: GGMLType, blocks: Int, into dst: UnsafeMutablePointer<Float>) {
    switch type {
    case .f32:
        // GGUF and every host we build for are little-endian, so F32 is a plain copy.
        UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: blocks * 4)
    case .f16:
        for i in 0..<blocks { dst[i] = f16(src, 2 * i) }
    case .bf16:
        for i in 0..<blocks {
            dst[i] = bf16ToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
    case .q8_0:
        for b in 0..<blocks {
            let s = src + 34 * b, d = dst + 32 * b, scale = f16(s, 0)
            let q = (s + 2).assumingMemoryBound(to: Int8.self)
            for j in 0..<32 { d[j] = Float(q[j]) * scale }
        }
    case .q4_0:
        for b in 0..<blocks {
            let s = src + 18 * b, d = dst + 32 * b, scale = f16(s, 0)
            let q = (s + 2).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                d[j] = Float(Int32(q[j] & 0x0F) - 8) * scale
                d[j + 16] = Float(Int32(q[j] >> 4) - 8) * scale
            }
        }
    case .q4_1:
        for b in 0..<blocks {
            let s = src + 20 * b, d = dst + 32 * b, scale = f16(s, 0), m = f16(s, 2)
            let q = (s + 4).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                d[j] = Float(q[j] & 0x0F) * scale + m
                d[j + 16] = Float(q[j] >> 4) * scale + m
            }
        }
    default:
        break
    }
}
