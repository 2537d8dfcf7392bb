import Foundation

// MARK: - Exact selection of the k lowest scores
//
// Pruning asks "which k scores are lowest?". Sorting answers it in O(n log n);
// these routines answer it in O(n) and, unlike threshold-by-quantile tricks,
// *exactly*: ties at the k-th value are broken by position (lower flat index
// is pruned first), so exactly k elements are chosen, deterministically.
//
// Scores are first mapped to order-preserving UInt32 keys ("order keys"):
// comparing keys is comparing scores under the chosen rank mode, so both the
// radix select (many values, across tensors) and the introselect (one row)
// work on plain integers.

/// How scores are ranked: by magnitude |s| (default) or by signed value
/// (lowest first, e.g. contrastive relevance where the most negative goes first).
public enum RankMode: String, Sendable, CaseIterable {
    case abs, signed
}

/// The k-th smallest key of a selection, and how many elements equal to it are taken.
public struct SelectionThreshold: Equatable, Sendable {
    /// Order key of the k-th smallest element (the largest selected key).
    public let key: UInt32
    /// Elements with a key strictly below `key` (all selected).
    public let below: Int
    /// Elements with key == `key` to select, the first ones in flat order.
    public let ties: Int
}

public enum Selection {

    // MARK: - Order keys

    /// Maps a score to a UInt32 whose unsigned order is the score order under `rank`.
    /// ±0 map to the same key; NaN must be rejected by the caller (it maps above +∞).
    @inline(__always)
    public static func key(_ x: Float, _ rank: RankMode) -> UInt32 {
        switch rank {
        case .abs: return absKey(x)
        case .signed: return signedKey(x)
        }
    }

    /// |x| order: the IEEE bits of a non-negative float are ordered like its value (−0 → 0).
    @inline(__always) static func absKey(_ x: Float) -> UInt32 { x.bitPattern & 0x7FFF_FFFF }

    /// Signed order without branches: negatives get all bits flipped, non-negatives the sign bit set.
    @inline(__always) static func signedKey(_ x: Float) -> UInt32 {
        let b = x == 0 ? 0 : x.bitPattern                                   // −0 → +0
        let neg = UInt32(bitPattern: Int32(bitPattern: b) >> 31)             // all ones when negative
        return b ^ (neg | 0x8000_0000)
    }

    // MARK: - Radix select across many buffers

    /// Exact threshold for selecting the `k` lowest of all values in `chunks`
    /// (taken in order as one flat sequence). Two histogram passes over the data
    /// (high 16 bits, then low 16 bits within the winning bucket): O(n), no sort.
    /// Returns nil when k == 0. Requires 0 ≤ k ≤ total count.
    public static func threshold(_ chunks: [UnsafeBufferPointer<Float>], k: Int, rank: RankMode) -> SelectionThreshold? {
        let total = chunks.reduce(0) { $0 + $1.count }
        precondition(k >= 0 && k <= total, "k = \(k) outside 0...\(total)")
        if k == 0 { return nil }
        // Pass 1: histogram of the high 16 bits.
        let high = histogram(chunks, rank: rank, bucket: nil)
        let (hb, belowHigh) = findBucket(high, rank: k)
        // Pass 2: histogram of the low 16 bits among keys in bucket `hb`.
        let low = histogram(chunks, rank: rank, bucket: UInt32(hb))
        let (lb, belowLow) = findBucket(low, rank: k - belowHigh)
        let below = belowHigh + belowLow
        return SelectionThreshold(key: UInt32(hb) << 16 | UInt32(lb), below: below, ties: k - below)
    }

    /// The smallest bucket b with cumulative count ≥ `rank` (1-based), and the count below b.
    private static func findBucket(_ h: [Int], rank: Int) -> (Int, Int) {
        var cum = 0
        for (b, c) in h.enumerated() {
            if cum + c >= rank { return (b, cum) }
            cum += c
        }
        preconditionFailure("rank \(rank) exceeds the histogram total \(cum)")
    }

    /// 65536-bucket histogram of high halves (bucket == nil) or of low halves of
    /// keys whose high half equals `bucket`. Split over two workers (per-worker histograms).
    private static func histogram(_ chunks: [UnsafeBufferPointer<Float>], rank: RankMode, bucket: UInt32?) -> [Int] {
        let workers = chunks.count > 1 || (chunks.first?.count ?? 0) > 1 << 16 ? 2 : 1
        var parts = [[Int]](repeating: [], count: workers)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var h = [Int](repeating: 0, count: 1 << 16)
            h.withUnsafeMutableBufferPointer { hp in
                forEachSegment(chunks, part: w, of: workers) { buf in
                    if let bucket {
                        for x in buf {
                            let kx = key(x, rank)
                            if kx >> 16 == bucket { hp[Int(kx & 0xFFFF)] += 1 }
                        }
                    } else {
                        for x in buf { hp[Int(key(x, rank) >> 16)] += 1 }
                    }
                }
            }
            lock.lock(); parts[w] = h; lock.unlock()
        }
        var out = parts[0]
        for p in parts.dropFirst() { for i in out.indices { out[i] += p[i] } }
        return out
    }

    /// Calls `body` on the slices of `chunks` that fall in worker `part`'s share of the flat index range.
    private static func forEachSegment(_ chunks: [UnsafeBufferPointer<Float>], part: Int, of parts: Int,
                                       _ body: (UnsafeBufferPointer<Float>) -> Void) {
        let total = chunks.reduce(0) { $0 + $1.count }
        let lo = total * part / parts, hi = total * (part + 1) / parts
        var start = 0
        for c in chunks {
            let end = start + c.count
            let a = max(lo, start), b = min(hi, end)
            if a < b, let base = c.baseAddress { body(UnsafeBufferPointer(start: base + (a - start), count: b - a)) }
            start = end
            if start >= hi { break }
        }
    }

    /// Keep-masks (1 = kept, 0 = selected) for the `k` lowest values across `chunks`;
    /// ties at the threshold are selected in flat order (earlier chunk, lower index first).
    public static func lowestMasks(_ chunks: [UnsafeBufferPointer<Float>], k: Int, rank: RankMode) -> [[UInt8]] {
        guard let t = threshold(chunks, k: k, rank: rank) else {
            return chunks.map { [UInt8](repeating: 1, count: $0.count) }
        }
        // Ties per chunk, then allot the t.ties tie slots to chunks in order.
        var tiesIn = [Int](repeating: 0, count: chunks.count)
        tiesIn.withUnsafeMutableBufferPointer { tp in
            DispatchQueue.concurrentPerform(iterations: chunks.count) { c in
                var n = 0
                for x in chunks[c] where key(x, rank) == t.key { n += 1 }
                tp[c] = n
            }
        }
        var remaining = t.ties
        let allotted = tiesIn.map { n -> Int in let a = min(n, remaining); remaining -= a; return a }
        var masks = [[UInt8]](repeating: [], count: chunks.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: chunks.count) { c in
            var m = [UInt8](repeating: 1, count: chunks[c].count)
            var tieBudget = allotted[c]
            m.withUnsafeMutableBufferPointer { mp in
                for (i, x) in chunks[c].enumerated() {
                    let kx = key(x, rank)
                    if kx < t.key { mp[i] = 0 }
                    else if kx == t.key && tieBudget > 0 { mp[i] = 0; tieBudget -= 1 }
                }
            }
            lock.lock(); masks[c] = m; lock.unlock()
        }
        return masks
    }

    /// Indices of the `k` lowest of `values` (ties: lower index first), ascending by index.
    public static func lowestIndices(_ values: [Float], k: Int, rank: RankMode) -> [Int] {
        let mask = values.withUnsafeBufferPointer { lowestMasks([$0], k: k, rank: rank)[0] }
        return mask.indices.filter { mask[$0] == 0 }
    }

    // MARK: - One row: exactly k lowest, ties by position

    /// Sets keep[i] = 0 for the `k` lowest of `values` (ties: lower index first). `scratch` and
    /// `keys` need `count` elements. Introselect finds the k-th key on 32-bit keys; one scan then
    /// takes everything below it and the first ties in index order — the same set as sorting by
    /// (key, index), at a fraction of the memory traffic of 64-bit composite keys.
    @inline(__always)
    public static func markLowest(_ values: UnsafePointer<Float>, count n: Int, k: Int, rank: RankMode,
                                  keep: UnsafeMutablePointer<UInt8>, keys: UnsafeMutablePointer<UInt32>,
                                  scratch: UnsafeMutablePointer<UInt32>) {
        guard k > 0 else { return }
        if k >= n { for i in 0..<n { keep[i] = 0 }; return }
        switch rank {                                   // rank hoisted out of the loop
        case .abs: for i in 0..<n { let kx = absKey(values[i]); keys[i] = kx; scratch[i] = kx }
        case .signed: for i in 0..<n { let kx = signedKey(values[i]); keys[i] = kx; scratch[i] = kx }
        }
        nthElement(scratch, 0, n, k - 1)
        let t = scratch[k - 1]
        // Branch-free: prune everything strictly below the k-th key (≈ half the row, so a
        // branch here would mispredict constantly), then the first ties in index order.
        var below = 0
        for i in 0..<n {
            let lt = keys[i] < t
            keep[i] = lt ? 0 : keep[i]
            below += lt ? 1 : 0
        }
        var ties = k - below
        var i = 0
        while ties > 0 && i < n {
            if keys[i] == t && keep[i] != 0 { keep[i] = 0; ties -= 1 }
            i += 1
        }
    }

    // MARK: - Introselect on unique 64-bit keys (one row at a time)

    /// Composite key: order key in the high half, position in the low half, so every key is
    /// unique and "ties → lower index first" falls out of plain integer order.
    @inline(__always)
    public static func composite(_ x: Float, index: Int, _ rank: RankMode) -> UInt64 {
        UInt64(key(x, rank)) << 32 | UInt64(UInt32(truncatingIfNeeded: index))
    }

    /// Rearranges a[0..<n] so that a[0..<k] hold the k smallest keys (in no particular order).
    /// Quickselect with median-of-3 pivots; once the partitioning work exceeds 12·n it switches
    /// to median-of-medians pivots, which bounds the worst case at O(n).
    public static func partitionLowest(_ a: UnsafeMutablePointer<UInt64>, count n: Int, k: Int) {
        precondition(k >= 0 && k <= n)
        if k == 0 || k == n { return }
        nthElement(a, 0, n, k)
    }

    /// Places the element of rank `nth` (0-based) at a[nth], smaller-or-equal ones before,
    /// larger-or-equal after (keys need not be unique).
    /// `medianOfMediansOnly` forces the worst-case-linear pivots from the start (tests).
    static func nthElement<T: FixedWidthInteger & UnsignedInteger>(_ a: UnsafeMutablePointer<T>, _ lo0: Int, _ hi0: Int, _ nth: Int,
                                                                   medianOfMediansOnly: Bool = false) {
        var lo = lo0, hi = hi0
        var guaranteed = medianOfMediansOnly   // true once median-of-medians pivots are in use
        // Work budget: quickselect touches ~2–3.5·n elements on average; past 12·n the pivots
        // are going badly and the remaining rounds use median-of-medians (worst case O(n)).
        let budget = 12 * (hi - lo)
        var work = 0
        while hi - lo > 16 {
            let pivot = guaranteed ? medianOfMedians(a, lo, hi) : medianOf3(a[lo], a[(lo + hi) / 2], a[hi - 1])
            work += hi - lo
            // Hoare partition around the pivot value, which occurs in the range. (Measured: ~10%
            // faster here than branch-free Lomuto passes; equal keys split evenly, so ties are cheap.)
            var i = lo, j = hi - 1
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j { let t = a[i]; a[i] = a[j]; a[j] = t; i += 1; j -= 1 }
            }
            // Now a[lo...j] ≤ pivot ≤ a[i..<hi], j < i, and anything between equals the pivot.
            if nth <= j { hi = j + 1 } else if nth >= i { lo = i } else { return }
            if !guaranteed && work > budget { guaranteed = true }
        }
        // Small range: insertion sort.
        if hi - lo > 1 {
            for x in (lo + 1)..<hi {
                let v = a[x]
                var y = x - 1
                while y >= lo && a[y] > v { a[y + 1] = a[y]; y -= 1 }
                a[y + 1] = v
            }
        }
    }

    @inline(__always)
    static func medianOf3<T: Comparable>(_ x: T, _ y: T, _ z: T) -> T {
        max(min(x, y), min(max(x, y), z))
    }

    /// BFPRT pivot: medians of groups of 5 moved to the front, then their median (recursively).
    static func medianOfMedians<T: FixedWidthInteger & UnsignedInteger>(_ a: UnsafeMutablePointer<T>, _ lo: Int, _ hi: Int) -> T {
        var m = lo
        var g = lo
        while g < hi {
            let e = min(g + 5, hi)
            for x in (g + 1)..<e {                           // sort the group of ≤ 5
                let v = a[x]
                var y = x - 1
                while y >= g && a[y] > v { a[y + 1] = a[y]; y -= 1 }
                a[y + 1] = v
            }
            let med = g + (e - g - 1) / 2
            let t = a[m]; a[m] = a[med]; a[med] = t
            m += 1
            g = e
        }
        let mid = lo + (m - lo - 1) / 2
        nthElement(a, lo, m, mid)
        return a[mid]
    }
}
