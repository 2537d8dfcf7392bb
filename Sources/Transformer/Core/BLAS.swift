import COpenBLAS
import Foundation
import Synchronization

// MARK: - BLAS funnel
//
// Every matmul in the project goes through these three functions. Linear
// weights are stored as PyTorch stores them, W[out, in], so a linear layer over
// a token block is Y[T, out] = X[T, in] · Wᵀ.

public enum BLAS {
    // Parallelism policy: one level only (toolchain.md §5). By default OpenBLAS
    // runs single-threaded and each large call is split in two halves (output
    // columns or rows) that run on both cores through the WorkerTeam. Measured
    // here, OpenBLAS's own pthread pool spin-yields between calls and costs
    // ~15% of a prefill in sched_yield while Swift element-wise code runs.
    // WORKBENCH_BLAS_THREADS=N hands threading back to OpenBLAS instead.
    /// The default policy, decided once (see above).
    static let defaultWays: Int = {
        if let s = ProcessInfo.processInfo.environment["WORKBENCH_BLAS_THREADS"], let n = Int(s), n > 0 {
            openblas_set_num_threads(Int32(n))
            return 1
        }
        openblas_set_num_threads(1)
        return max(1, min(2, ProcessInfo.processInfo.activeProcessorCount))
    }()

    /// Workers our own splitting uses (1 = threading left to OpenBLAS).
    public static var ways: Int { defaultWays }

    /// Below this many multiply-adds a call is not worth splitting. gemv is
    /// bandwidth-bound, and one core alone reaches only ~60% of the bandwidth,
    /// so even small decode matrices are split.
    static let splitThreshold = 1 << 18
    static let gemvSplitThreshold = 1 << 15

    /// Runs `body(0..<half)` and `body(half..<n)` on two cores when the work is large.
    @inline(__always)
    static func split(_ n: Int, work: Int, threshold: Int = splitThreshold, _ body: (Range<Int>) -> Void) {
        if ways < 2 || work < threshold || n < 16 {
            body(0..<n)
            return
        }
        let mid = (n / 2 + 7) & ~7                           // keep halves 32-byte aligned
        WorkerTeam.shared.run(parts: 2) { i in body(i == 0 ? 0..<mid : mid..<n) }
    }

    /// Y[m, n] (+)= X[m, k] · W[n, k]ᵀ. For m == 1 this calls sgemv: OpenBLAS
    /// 0.3.21 does not forward sgemm with M=1 to gemv and is 3–4× slower there.
    @inline(__always)
    public static func linear(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                              m: Int, k: Int, n: Int, accumulate: Bool = false) {
        if m == 1 {
            gemv(n: n, k: k, w, lda: k, x, beta: accumulate ? 1 : 0, y)
        } else {
            gemm(transA: false, transB: true, m: m, n: n, k: k, x, lda: k, w, ldb: k, beta: accumulate ? 1 : 0, y, ldc: n)
        }
    }

    /// General C[m, n] = alpha · op(A) · op(B) + beta · C with explicit leading
    /// dimensions; split along the larger of m and n.
    @inline(__always)
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
        if n >= m {
            split(n, work: m * n * k) { r in
                let bOff = transB ? r.lowerBound * ldb : r.lowerBound
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(r.count), Int32(k), alpha, a, Int32(lda),
                            b + bOff, Int32(ldb), beta, c + r.lowerBound, Int32(ldc))
            }
        } else {
            split(m, work: m * n * k) { r in
                let aOff = transA ? r.lowerBound : r.lowerBound * lda
                cblas_sgemm(CblasRowMajor, ta, tb, Int32(r.count), Int32(n), Int32(k), alpha, a + aOff, Int32(lda),
                            b, Int32(ldb), beta, c + r.lowerBound * ldc, Int32(ldc))
            }
        }
    }

    /// Single-threaded sgemm for code that already runs on both cores
    /// (attention work items): never split, never nested.
    @inline(__always)
    public static func gemmSerial(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                  _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                                  beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Runs `items` independent work items on `ways` workers with a static,
    /// deterministic assignment: items are taken in the given order (callers
    /// put the most expensive first) and dealt out greedily to the worker with
    /// the least assigned cost. Worker w gets `body(w, item)` calls in order.
    public static func workers(costs: [Int], _ body: (Int, Int) -> Void) {
        let w = ways
        if w < 2 || costs.count < 2 {
            for i in costs.indices { body(0, i) }
            return
        }
        var load = [Int](repeating: 0, count: w)
        var plan = [[Int]](repeating: [], count: w)
        for i in expensiveFirst(costs) {
            let k = load.indices.min { load[$0] < load[$1] }!
            plan[k].append(i); load[k] += costs[i]
        }
        WorkerTeam.shared.run(parts: w) { k in for i in plan[k] { body(k, i) } }
    }

    /// Item indices by decreasing cost, ties in index order.
    static func expensiveFirst(_ costs: [Int]) -> [Int] {
        costs.indices.sorted { costs[$0] != costs[$1] ? costs[$0] > costs[$1] : $0 < $1 }
    }

    /// Like `workers`, but each worker takes the next item (most expensive
    /// first) when it finishes its last, so a worker slowed by the host does
    /// less of the work instead of holding the other up (measured in situ on
    /// this VM: at times one worker's attention items took 10–15% longer than
    /// the other's). Only for items with disjoint outputs: which worker runs an
    /// item then changes nothing in the result (its BLAS calls are single-threaded).
    public static func dynamicWorkers(costs: [Int], _ body: (Int, Int) -> Void) {
        let w = ways
        let order = expensiveFirst(costs)
        if w < 2 || costs.count < 2 {
            for i in order { body(0, i) }
            return
        }
        let next = Atomic<Int>(0)
        WorkerTeam.shared.run(parts: w) { k in
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < order.count else { return }
                body(k, order[i])
            }
        }
    }

    /// y[n] = alpha · A[n, k] · x[k] + beta · y (row-major, A with leading dimension lda).
    @inline(__always)
    public static func gemv(n: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
                            _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        split(n, work: n * k, threshold: gemvSplitThreshold) { r in
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(r.count), Int32(k), alpha, a + r.lowerBound * lda, Int32(lda),
                        x, 1, beta, y + r.lowerBound, 1)
        }
    }

    /// y[k] = alpha · A[n, k]ᵀ · x[n] + beta · y (row-major A, leading dimension lda).
    @inline(__always)
    public static func gemvT(n: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, lda: Int,
                             _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        split(k, work: n * k, threshold: gemvSplitThreshold) { r in
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(r.count), alpha, a + r.lowerBound, Int32(lda),
                        x, 1, beta, y + r.lowerBound, 1)
        }
    }

    /// y[k] = A[n, k]ᵀ · x[n] + beta · y, split over the rows of A instead of
    /// its columns: each core streams one contiguous half of A into its own
    /// partial y, and the halves are added at the end. For decode's transposed
    /// weights: 47–53 tok/s against 42–45 for the column split (`gemvT`), whose
    /// two cores each read short strided pieces of every row.
    public static func gemvTRows(n: Int, k: Int, _ a: UnsafePointer<Float>, lda: Int,
                                 _ x: UnsafePointer<Float>, beta: Float = 0, _ y: UnsafeMutablePointer<Float>) {
        guard ways >= 2, n * k >= gemvSplitThreshold, n >= 16 else {
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(k), 1, a, Int32(lda), x, 1, beta, y, 1)
            return
        }
        let mid = (n / 2 + 7) & ~7
        withUnsafeTemporaryAllocation(of: Float.self, capacity: k) { part in
            let p = part.baseAddress!
            WorkerTeam.shared.run(parts: 2) { i in
                if i == 0 {
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(mid), Int32(k), 1, a, Int32(lda), x, 1, beta, y, 1)
                } else {
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n - mid), Int32(k), 1, a + mid * lda, Int32(lda),
                                x + mid, 1, 0, p, 1)
                }
            }
            addInPlace(y, p, k)
        }
    }

    /// The machine's sgemm peak as OpenBLAS itself reaches it with all cores
    /// (its own thread pool), for honest "fraction of peak" reports.
    public static func measurePeakGFLOPS(size n: Int = 1536, reps: Int = 5) -> Double {
        _ = ways
        let saved = openblas_get_num_threads()
        openblas_set_num_threads(Int32(ProcessInfo.processInfo.activeProcessorCount))
        defer { openblas_set_num_threads(saved) }
        let a = (0..<(n * n)).map { Float($0 % 7) * 0.01 }
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        for _ in 0..<reps {
            let t = Date()
            a.withUnsafeBufferPointer { ap in c.withUnsafeMutableBufferPointer { cp in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, ap.baseAddress!,
                            Int32(n), ap.baseAddress!, Int32(n), 0, cp.baseAddress!, Int32(n))
            } }
            best = min(best, Date().timeIntervalSince(t))
        }
        return 2 * Double(n * n * n) / best / 1e9
    }

    public static var threads: Int { _ = ways; return ways > 1 ? ways : Int(openblas_get_num_threads()) }

    public static var configDescription: String {
        guard let c = openblas_get_config() else { return "OpenBLAS" }
        return String(cString: c) + (ways > 1 ? " (1 OpenBLAS thread, calls split over \(ways) cores)" : "")
    }
}
