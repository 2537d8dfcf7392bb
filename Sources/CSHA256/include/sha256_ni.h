#ifndef WORKBENCH_SHA256_NI_H
#define WORKBENCH_SHA256_NI_H

#include <stddef.h>
#include <stdint.h>

/// The 64 SHA-256 round constants K (FIPS 180-4 §4.2.2), for the portable Swift path too.
const uint32_t *wb_sha256_round_constants(void);

/// 1 when the CPU has the x86 SHA extensions (and SSE4.1), else 0.
int wb_sha256_ni_available(void);

/// Compresses `blocks` 64-byte blocks at `data` into `state` (the eight words a…h) with the SHA
/// extensions. Only call when wb_sha256_ni_available() returned 1.
void wb_sha256_ni_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

#endif
