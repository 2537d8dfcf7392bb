#include <cblas.h>
// glibc's mallopt: Allocator.swift keeps BLAS-sized activation buffers in the heap.
#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif

// One spin-wait step for WorkerTeam.swift (x86 PAUSE / arm64 YIELD: a spinning
// thread yields execution resources to a sibling hardware thread). Elsewhere a
// no-op: the spin loop stays correct, only less polite.
static inline void wb_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}
