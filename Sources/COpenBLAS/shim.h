#include <cblas.h>
// glibc's mallopt: Allocator.swift keeps BLAS-sized activation buffers in the heap.
#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif
