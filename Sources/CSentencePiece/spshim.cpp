// spshim.cpp — C ABI shim over sentencepiece::SentencePieceProcessor.
// Every C++ call is wrapped in try/catch; no exception crosses the C boundary.
#include "spshim.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <exception>
#include <string>
#include <vector>

struct spm_processor {
    sentencepiece::SentencePieceProcessor sp;
};

namespace {

void write_err(char *err, size_t cap, const std::string &msg) {
    if (err == nullptr || cap == 0) return;
    size_t n = msg.size() < cap - 1 ? msg.size() : cap - 1;
    std::memcpy(err, msg.data(), n);
    err[n] = '\0';
}

bool valid_id(const spm_processor *p, int32_t id) {
    return p != nullptr && id >= 0 && id < p->sp.GetPieceSize();
}

// A query of the processor that cannot report an error: `fallback` for a null
// processor or when sentencepiece throws.
template <typename T, typename Query>
T query_or(const spm_processor *p, T fallback, Query query) {
    if (p == nullptr) return fallback;
    try { return query(p->sp); } catch (...) { return fallback; }
}

// The same for a query about one piece: `fallback` also when `id` is out of range.
template <typename T, typename Query>
T piece_query_or(const spm_processor *p, int32_t id, T fallback, Query query) {
    if (!valid_id(p, id)) return fallback;
    try { return query(p->sp); } catch (...) { return fallback; }
}

// Runs `body`; a C++ exception becomes its message in `err` and `failed` the result.
template <typename T, typename Body>
T reporting_exceptions(char *err, size_t err_cap, T failed, Body body) {
    try {
        return body();
    } catch (const std::exception &e) {
        write_err(err, err_cap, e.what());
    } catch (...) {
        write_err(err, err_cap, "unknown C++ exception");
    }
    return failed;
}

using Processor = sentencepiece::SentencePieceProcessor;

} // namespace

// Creates a processor and runs `load` on it; every failure (status or C++
// exception) becomes a message in `err` and a null result.
template <typename Load>
static spm_processor *load_guarded(char *err, size_t err_cap, Load load) {
    spm_processor *p = nullptr;
    spm_processor *loaded = reporting_exceptions<spm_processor *>(err, err_cap, nullptr, [&]() -> spm_processor * {
        p = new spm_processor();
        auto status = load(p->sp);
        if (status.ok()) return p;
        write_err(err, err_cap, status.ToString());
        return nullptr;
    });
    if (loaded == nullptr) delete p;
    return loaded;
}

extern "C" {

spm_processor *spm_load(const char *path, char *err, size_t err_cap) {
    if (path == nullptr) { write_err(err, err_cap, "null path"); return nullptr; }
    return load_guarded(err, err_cap, [&](sentencepiece::SentencePieceProcessor &sp) { return sp.Load(path); });
}

spm_processor *spm_load_from_bytes(const void *data, size_t len, char *err, size_t err_cap) {
    if (data == nullptr && len > 0) { write_err(err, err_cap, "null data"); return nullptr; }
    return load_guarded(err, err_cap, [&](sentencepiece::SentencePieceProcessor &sp) {
        return sp.LoadFromSerializedProto(std::string(static_cast<const char *>(data), len));
    });
}

void spm_free(spm_processor *p) {
    try { delete p; } catch (...) {}
}

int32_t spm_piece_count(const spm_processor *p) {
    return query_or<int32_t>(p, 0, [](const Processor &sp) { return sp.GetPieceSize(); });
}
int32_t spm_bos_id(const spm_processor *p) { return query_or<int32_t>(p, -1, [](const Processor &sp) { return sp.bos_id(); }); }
int32_t spm_eos_id(const spm_processor *p) { return query_or<int32_t>(p, -1, [](const Processor &sp) { return sp.eos_id(); }); }
int32_t spm_unk_id(const spm_processor *p) { return query_or<int32_t>(p, -1, [](const Processor &sp) { return sp.unk_id(); }); }
int32_t spm_pad_id(const spm_processor *p) { return query_or<int32_t>(p, -1, [](const Processor &sp) { return sp.pad_id(); }); }

int64_t spm_encode(const spm_processor *p, const char *text, size_t len,
                   int32_t *out, size_t cap, char *err, size_t err_cap) {
    if (p == nullptr) { write_err(err, err_cap, "null processor"); return -1; }
    if (text == nullptr && len > 0) { write_err(err, err_cap, "null text"); return -1; }
    return reporting_exceptions<int64_t>(err, err_cap, -1, [&]() -> int64_t {
        std::vector<int> ids;
        auto status = p->sp.Encode(absl::string_view(text == nullptr ? "" : text, len), &ids);
        if (!status.ok()) { write_err(err, err_cap, status.ToString()); return -1; }
        if (out != nullptr) {
            size_t n = ids.size() < cap ? ids.size() : cap;
            for (size_t i = 0; i < n; ++i) out[i] = ids[i];
        }
        return static_cast<int64_t>(ids.size());
    });
}

int64_t spm_decode(const spm_processor *p, const int32_t *ids, size_t n,
                   char *out, size_t cap, char *err, size_t err_cap) {
    if (p == nullptr) { write_err(err, err_cap, "null processor"); return -1; }
    if (ids == nullptr && n > 0) { write_err(err, err_cap, "null ids"); return -1; }
    return reporting_exceptions<int64_t>(err, err_cap, -1, [&]() -> int64_t {
        std::vector<int> v(ids, ids + n);
        std::string text;
        auto status = p->sp.Decode(v, &text);
        if (!status.ok()) { write_err(err, err_cap, status.ToString()); return -1; }
        if (out != nullptr) {
            size_t m = text.size() < cap ? text.size() : cap;
            std::memcpy(out, text.data(), m);
        }
        return static_cast<int64_t>(text.size());
    });
}

int64_t spm_id_to_piece(const spm_processor *p, int32_t id, char *out, size_t cap) {
    if (!valid_id(p, id)) return -1;
    try {
        const std::string &piece = p->sp.IdToPiece(id);
        if (out != nullptr) {
            size_t m = piece.size() < cap ? piece.size() : cap;
            std::memcpy(out, piece.data(), m);
        }
        return static_cast<int64_t>(piece.size());
    } catch (...) {
        return -1;
    }
}

int32_t spm_piece_to_id(const spm_processor *p, const char *piece, size_t len) {
    if (p == nullptr || (piece == nullptr && len > 0)) return -1;
    try {
        return p->sp.PieceToId(absl::string_view(piece == nullptr ? "" : piece, len));
    } catch (...) {
        return -1;
    }
}

float spm_score(const spm_processor *p, int32_t id) {
    return piece_query_or(p, id, 0.0f, [id](const Processor &sp) { return sp.GetScore(id); });
}
bool spm_is_control(const spm_processor *p, int32_t id) {
    return piece_query_or(p, id, false, [id](const Processor &sp) { return sp.IsControl(id); });
}
bool spm_is_byte(const spm_processor *p, int32_t id) {
    return piece_query_or(p, id, false, [id](const Processor &sp) { return sp.IsByte(id); });
}
bool spm_is_unknown(const spm_processor *p, int32_t id) {
    return piece_query_or(p, id, false, [id](const Processor &sp) { return sp.IsUnknown(id); });
}
bool spm_is_unused(const spm_processor *p, int32_t id) {
    return piece_query_or(p, id, false, [id](const Processor &sp) { return sp.IsUnused(id); });
}

} // extern "C"
