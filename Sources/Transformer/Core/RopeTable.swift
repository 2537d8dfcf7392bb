import Foundation

// MARK: - RoPE (HF rotate-half convention: pairs (i, i + hd/2))

/// Cos/sin tables [positions, hd/2] each, grown on demand to the positions actually used.
///
/// The model's declared context (`max_position_embeddings`, GGUF `context_length`) is not
/// a reason to allocate for all of it: a config may declare 2^31 or 2^62 positions, and
/// the table then costs 32 GiB or its size wraps under -Ounchecked. Rows are computed
/// by the same formula whatever the table's size, so results do not depend on how it grew.
public final class RopeTable: @unchecked Sendable {
    public let half: Int
    public let headDim: Int
    public let theta: Float
    /// The model's context; the table never grows beyond max(maxPos, what a caller asks for).
    public let maxPos: Int
    private var cos: [Float] = []          // [rows, half]
    private var sin: [Float] = []          // [rows, half]
    private var rows = 0
    private let lock = NSLock()

    public init(headDim: Int, maxPos: Int, theta: Float) {
        self.headDim = headDim; self.half = headDim / 2; self.maxPos = max(maxPos, 1); self.theta = theta
    }

    /// Positions the table currently covers (for tests: it grows with use, not with the context).
    public var coveredPositions: Int { lock.lock(); defer { lock.unlock() }; return rows }

    /// The tables covering at least positions [0, end). Grows by doubling (at least 256 rows,
    /// at most the context unless a caller asks for more), under a lock: forward passes on
    /// several threads may share one model. Arrays are values, so the snapshot stays valid.
    func tables(upTo end: Int) -> (cos: [Float], sin: [Float]) {
        lock.lock(); defer { lock.unlock() }
        if end > rows {
            let target = max(end, min(max(rows * 2, 256), maxPos))
            grow(to: target)
        }
        return (cos, sin)
    }

    private func grow(to newRows: Int) {
        let half = self.half
        cos.reserveCapacity(newRows * half); sin.reserveCapacity(newRows * half)
        for p in rows..<newRows {
            for i in 0..<half {
                // Frequencies in Double: at θ=1e5 and p≈2000, Float angles drift by 1e-4.
                let freq = pow(Double(theta), -Double(2 * i) / Double(headDim))
                let a = Double(p) * freq
                cos.append(Float(Foundation.cos(a))); sin.append(Float(Foundation.sin(a)))
            }
        }
        rows = newRows
    }

    /// Rotates every head of `x` [rows, nHeads·hd] in place; row r sits at position pos0 + r.
    /// With `inverse`, applies the transpose (used by the backward pass).
    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, nHeads: Int, pos0: Int, inverse: Bool = false) {
        guard rows > 0 else { return }
        let (cos, sin) = tables(upTo: pos0 + rows)
        let half = self.half, hd = 2 * half, width = nHeads * hd
        let sgn: Float = inverse ? -1 : 1
        cos.withUnsafeBufferPointer { cp in
            sin.withUnsafeBufferPointer { sp in
                parallelRows(rows, work: rows * width) { range in for r in range {
                    let c = cp.baseAddress! + (pos0 + r) * half, s = sp.baseAddress! + (pos0 + r) * half
                    for h in 0..<nHeads {
                        let v = x + r * width + h * hd
                        for i in 0..<half {
                            let a = v[i], b = v[i + half], si = sgn * s[i]
                            v[i] = a * c[i] - b * si
                            v[i + half] = b * c[i] + a * si
                        }
                    }
                } }
            }
        }
    }
}

