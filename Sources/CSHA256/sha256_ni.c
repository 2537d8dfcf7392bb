// SHA-256 block compression with the x86 SHA extensions (FIPS 180-4 rounds done by
// sha256rnds2, the message schedule by sha256msg1/msg2): about 5x the plain Swift
// implementation, which matters because relevance files and attribute checkpoints
// (0.4-0.8 GB for SmolLM2) are hashed on every write and check. The functions carry
// their own target attribute, so the rest of the package is built for any x86-64 and
// the Swift caller picks this path only when CPUID reports the extensions.
#include "sha256_ni.h"

// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

const uint32_t *wb_sha256_round_constants(void) { return K; }

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

int wb_sha256_ni_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 29) & 1;   // CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29]
}


__attribute__((target("sha,sse4.1,ssse3")))
void wb_sha256_ni_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) {
    // sha256rnds2 keeps the state as two vectors, lanes 3..0 = (A, B, E, F) and (C, D, G, H).
    __m128i abcd = _mm_loadu_si128((const __m128i *)&state[0]);             // lanes 0..3: a b c d
    __m128i efgh = _mm_loadu_si128((const __m128i *)&state[4]);             // e f g h
    __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);                           // b a d c
    __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1B);                           // h g f e
    __m128i abef = _mm_alignr_epi8(badc, hgfe, 8);                          // f e b a
    __m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xF0);                       // h g d c
    // Big-endian words: reverse the bytes of each 32-bit lane.
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);

    for (size_t n = 0; n < blocks; n++, data += 64) {
        const __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i w[4];   // message words of the last four groups, w[i % 4] = W[4i .. 4i+3]
        for (int i = 0; i < 16; i++) {
            __m128i x;
            if (i < 4) {
                x = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), bswap);
            } else {
                // W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16], four at a time:
                // msg1 adds σ0, alignr supplies W[t-7 .. t-4], msg2 adds σ1 (chained inside).
                const __m128i x0 = w[i & 3], x1 = w[(i - 3) & 3], x2 = w[(i - 2) & 3], x3 = w[(i - 1) & 3];
                x = _mm_sha256msg1_epu32(x0, x1);
                x = _mm_add_epi32(x, _mm_alignr_epi8(x3, x2, 4));
                x = _mm_sha256msg2_epu32(x, x3);
            }
            w[i & 3] = x;
            __m128i m = _mm_add_epi32(x, _mm_loadu_si128((const __m128i *)&K[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, m);       // rounds 4i, 4i+1 (low two lanes)
            m = _mm_shuffle_epi32(m, 0x0E);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, m);       // rounds 4i+2, 4i+3
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);                           // a b e f
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);                           // g h c d
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));   // a b c d
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));      // e f g h
}

#else
int wb_sha256_ni_available(void) { return 0; }
void wb_sha256_ni_blocks(uint32_t state[8], const uint8_t *data, size_t blocks) { (void)state; (void)data; (void)blocks; }
#endif
