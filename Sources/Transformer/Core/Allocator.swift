import COpenBLAS

// MARK: - Allocator policy for repeated large passes

public enum Allocator {
    /// Keeps freed activation buffers in the heap instead of returning them to
    /// the kernel. glibc serves every block above 128 KB (growing to ≤ 32 MB
    /// with use) from a fresh mmap and unmaps it on free, so each LRP sample
    /// re-faulted and re-zeroed ~1.5 GB of pages: measured 10% of an LRP pass
    /// in `clear_page_erms` and 1.7 of 2 cores busy. With the threshold at its
    /// 32 MB ceiling and trimming off, the next sample reuses the same pages.
    /// Peak RSS (VmHWM) is unchanged: it already counts those pages once.
    /// Call once at start-up, before large allocations; a no-op off glibc.
    public static func retainFreedBuffers() {
        #if os(Linux)
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }
}
