import COpenBLAS
import Foundation

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

// MARK: - BLAS funnel
//
// Every matmul in the project goes through these three functions. Linear
// weights are stored as PyTorch stores them, W[out, in], so a linear layer over
// a token block is Y[T, out] = X[T, in] · Wᵀ.

public enum BLAS {
    /// Y[m, n] (+)= X[m, k] · W[n, k]ᵀ. For m == 1 this calls sgemv: OpenBLAS
    /// 0.3.21 does not forward sgemm with M=1 to gemv and is 3–4× slower there.
    @inline(__always)
    public static func linear(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                              m: Int, k: Int, n: Int, accumulate: Bool = false) {
        let beta: Float = accumulate ? 1 : 0
        if m == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, w, Int32(k), x, 1, beta, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                        1, x, Int32(k), w, Int32(k), beta, y, Int32(n))
        }
    }

    /// General C[m, n] = alpha · op(A) · op(B) + beta · C with explicit leading dimensions.
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y[n] = alpha · A[n, k] · x[k] + beta · y (row-major, A with leading dimension lda).
    @inline(__always)
    public static func gemv(n: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
                            _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    /// y[k] = alpha · A[n, k]ᵀ · x[n] + beta · y (row-major A, leading dimension lda).
    @inline(__always)
    public static func gemvT(n: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
                             _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(k), alpha, a, Int32(lda), x, 1, beta, y, 1)
    }

    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    public static var configDescription: String {
        guard let c = openblas_get_config() else { return "OpenBLAS" }
        return String(cString: c)
    }
}

// MARK: - Small helpers on flat buffers

extension Array where Element == Float {
    /// Scoped mutable pointer without the closure-nesting noise at call sites.
    @inline(__always)
    mutating func ptr<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }
    @inline(__always)
    func cptr<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}

/// Zero-initialised Float buffer.
@inline(__always)
func zeros(_ n: Int) -> [Float] { [Float](repeating: 0, count: n) }
