import COpenBLAS
import Foundation
import Synchronization

// MARK: - Tensor

/// A dense, row-major Float32 tensor. Every weight is widened to F32 on load
/// (F16/BF16/Q4/Q8 included), so one storage type serves every kernel.
public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    public var count: Int { data.count }
    /// Rows of a 2-D tensor `[rows, cols]` (1-D tensors are one row).
    public var rows: Int { shape.count >= 2 ? shape[0] : 1 }
    public var cols: Int { shape.last ?? 1 }
}

// MARK: - Small helpers on flat buffers

/// Stand-in address for empty buffers (a freed optional activation): never
/// dereferenced, since code only reads a buffer its rule set needs.
let emptySentinel = UnsafeMutablePointer<Float>.allocate(capacity: 1)

extension Array where Element == Float {
    /// Scoped mutable pointer without the closure-nesting noise at call sites.
    @inline(__always)
    mutating func ptr<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { try body($0.baseAddress ?? emptySentinel) }
    }
    @inline(__always)
    func cptr<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body($0.baseAddress ?? UnsafePointer(emptySentinel)) }
    }
}

/// A Float buffer whose contents are garbage until written: for activation
/// buffers every element of which the forward writes before anything reads
/// it (the zero fill cost ~1% of an LRP pass).
@inline(__always)
func uninitialized(_ n: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: n) { _, count in count = n }
}

/// Zero-initialised Float buffer.
@inline(__always)
func zeros(_ n: Int) -> [Float] { [Float](repeating: 0, count: n) }
