#include <cblas.h>
// glibc's mallopt: Allocator.swift keeps BLAS-sized activation buffers in the heap.
#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif

// One spin-wait step for WorkerTeam.swift (the x86 PAUSE hint: a spinning
// thread yields execution resources to a sibling hyper-thread).
static inline void wb_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
