// spshim.h — plain C ABI over libsentencepiece (C++), for use from Swift.
//
// Conventions:
//  * Every function is safe to call with a NULL processor (returns 0 / -1 / false).
//  * Functions that fill a caller buffer return the TOTAL size needed (count of
//    ids or bytes, excluding any NUL). If that is larger than `cap`, the output
//    was truncated: grow the buffer and call again. A negative return is an error.
//  * Errors from loading are written NUL-terminated into `err` (capacity `err_cap`).
#ifndef SPSHIM_H
#define SPSHIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spm_processor spm_processor;

/// Loads a `.model` file. Returns NULL and fills `err` on failure.
spm_processor *spm_load(const char *path, char *err, size_t err_cap);
/// Loads a serialized ModelProto from memory. Returns NULL and fills `err` on failure.
spm_processor *spm_load_from_bytes(const void *data, size_t len, char *err, size_t err_cap);
/// Frees a processor (NULL is ignored).
void spm_free(spm_processor *p);

int32_t spm_piece_count(const spm_processor *p);
int32_t spm_bos_id(const spm_processor *p);
int32_t spm_eos_id(const spm_processor *p);
int32_t spm_unk_id(const spm_processor *p);
int32_t spm_pad_id(const spm_processor *p);

/// Encodes UTF-8 `text` (length `len`) to ids. Returns the total id count, or -1 on error (message in `err`).
int64_t spm_encode(const spm_processor *p, const char *text, size_t len,
                   int32_t *out, size_t cap, char *err, size_t err_cap);
/// Decodes ids to UTF-8. Returns the total byte count, or -1 on error (message in `err`).
int64_t spm_decode(const spm_processor *p, const int32_t *ids, size_t n,
                   char *out, size_t cap, char *err, size_t err_cap);
/// The raw piece of `id` (with U+2581 for spaces). Returns its byte length, or -1 if `id` is out of range.
int64_t spm_id_to_piece(const spm_processor *p, int32_t id, char *out, size_t cap);
/// The id of a piece, or the unk id when absent; -1 on error.
int32_t spm_piece_to_id(const spm_processor *p, const char *piece, size_t len);

float spm_score(const spm_processor *p, int32_t id);
bool spm_is_control(const spm_processor *p, int32_t id);
bool spm_is_byte(const spm_processor *p, int32_t id);
bool spm_is_unknown(const spm_processor *p, int32_t id);
bool spm_is_unused(const spm_processor *p, int32_t id);

#ifdef __cplusplus
}
#endif

#endif // SPSHIM_H
