// MARK: - Activation buffers with one address for their lifetime
//
// Activations used to be `[Float]`, so every kernel call re-borrowed them in a
// `ptr { }` / `cptr { }` closure and a block backward became a pyramid four
// closures deep. A `Buffer` owns one allocation from init to deinit, so its
// pointer `p` can be passed straight to kernels and a backward reads as a flat
// list of calls (llm.c's `gpt2_backward`). It is a class: copying a reference
// never copies the floats, and nothing can reallocate them behind the pointer.

/// A fixed-size Float buffer owning one allocation (freed in deinit). An empty
/// buffer (count 0) stands for "this hook is not kept".
public final class Buffer: RandomAccessCollection, MutableCollection {
    public let count: Int
    /// The elements [count]; valid while the buffer is alive.
    public let p: UnsafeMutablePointer<Float>

    /// Uninitialised contents: for buffers the forward writes in full before anything reads them.
    public init(uninitialized count: Int) {
        precondition(count >= 0)
        self.count = count
        p = .allocate(capacity: Swift.max(count, 1))
    }

    /// Zero-filled contents.
    public convenience init(count: Int) {
        self.init(uninitialized: count)
        p.initialize(repeating: 0, count: count)
    }

    deinit { p.deallocate() }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(i: Int) -> Float {
        get { p[i] }
        set { p[i] = newValue }
    }

    /// Copies `count` floats from `src` (nothing when the buffer is empty, i.e. the hook is not kept).
    @inline(__always)
    func keep(_ src: UnsafePointer<Float>) {
        if count > 0 { copyParallel(p, src, count) }
    }

    /// Sets every element to zero.
    func zero() { p.update(repeating: 0, count: count) }
}

/// A buffer several `BlockBuffers` write in turn (the LRP pass's shared MLP activation).
typealias SharedBuffer = Buffer

extension Buffer {
    /// A new buffer with the same contents.
    func copy() -> Buffer {
        let b = Buffer(uninitialized: count)
        b.p.update(from: p, count: count)
        return b
    }

    /// Overwrites the contents with `values` (same count).
    public func assign(_ values: [Float]) {
        precondition(values.count == count, "assign: \(values.count) values into a buffer of \(count)")
        values.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: count) }
    }
}
