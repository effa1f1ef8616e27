// sentencepiece_shim.cc — the C shim over libsentencepiece (see
// sentencepiece_shim.h). Every entry point is noexcept in effect: the
// library's C++ exceptions (std::bad_alloc above all) are caught here and
// turned into the header's error values.
#include "engine/text/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

struct eng_spm {
    sentencepiece::SentencePieceProcessor sp;
};

// A malloc'd copy of msg for *err (NULL when even that fails).
static void set_err(char **err, const std::string &msg) {
    if (!err) return;
    *err = static_cast<char *>(std::malloc(msg.size() + 1));
    if (*err) std::memcpy(*err, msg.c_str(), msg.size() + 1);
}

extern "C" eng_spm *eng_spm_load(const void *data, size_t len, char **err) {
    eng_spm *p = nullptr;
    try {
        p = new eng_spm;
        auto st = p->sp.LoadFromSerializedProto(std::string_view(static_cast<const char *>(data), len));
        if (!st.ok()) {
            set_err(err, "not a SentencePiece model: " + st.ToString());
            delete p;
            return nullptr;
        }
        return p;
    } catch (const std::bad_alloc &) {
        set_err(err, "out of memory loading the SentencePiece model");
    } catch (const std::exception &e) {
        set_err(err, std::string("SentencePiece: ") + e.what());
    } catch (...) {
        set_err(err, "SentencePiece: unknown error");
    }
    delete p;
    return nullptr;
}

extern "C" void eng_spm_free(eng_spm *p) { delete p; }

extern "C" int eng_spm_piece_count(const eng_spm *p) { return p->sp.GetPieceSize(); }

extern "C" const char *eng_spm_id_to_piece(const eng_spm *p, int id, size_t *len) {
    const std::string &s = p->sp.IdToPiece(id);   // a reference into the model: no allocation
    *len = s.size();
    return s.data();
}

extern "C" int eng_spm_unk_id(const eng_spm *p) { return p->sp.unk_id(); }

extern "C" int eng_spm_is_control(const eng_spm *p, int id) { return p->sp.IsControl(id) ? 1 : 0; }

extern "C" int eng_spm_encode(const eng_spm *p, const char *text, size_t len,
                              int (*piece)(void *ctx, const char *s, size_t n, int id), void *ctx, char **err) {
    try {
        std::vector<std::string> pieces;
        auto st = p->sp.Encode(std::string_view(text ? text : "", len), &pieces);
        if (!st.ok()) {
            set_err(err, "SentencePiece encode: " + st.ToString());
            return ENG_SPM_E_FAIL;
        }
        for (const std::string &s : pieces) {
            int rc = piece(ctx, s.data(), s.size(), p->sp.PieceToId(s));
            if (rc != 0) return rc;
        }
        return 0;
    } catch (const std::bad_alloc &) {
        return ENG_SPM_E_NOMEM;
    } catch (const std::exception &e) {
        set_err(err, std::string("SentencePiece encode: ") + e.what());
    } catch (...) {
        set_err(err, "SentencePiece encode: unknown error");
    }
    return ENG_SPM_E_FAIL;
}

extern "C" int eng_spm_decode_pieces(const eng_spm *p, const char *const *s, const size_t *n, int count,
                                     char **out, size_t *out_len, char **err) {
    *out = nullptr;
    *out_len = 0;
    try {
        std::vector<std::string> pieces;
        pieces.reserve(static_cast<size_t>(count));
        for (int i = 0; i < count; i++) pieces.emplace_back(s[i], n[i]);
        std::string text;
        auto st = p->sp.Decode(pieces, &text);
        if (!st.ok()) {
            set_err(err, "SentencePiece decode: " + st.ToString());
            return ENG_SPM_E_FAIL;
        }
        char *buf = static_cast<char *>(std::malloc(text.size() + 1));
        if (!buf) return ENG_SPM_E_NOMEM;
        std::memcpy(buf, text.data(), text.size());
        buf[text.size()] = '\0';
        *out = buf;
        *out_len = text.size();
        return 0;
    } catch (const std::bad_alloc &) {
        return ENG_SPM_E_NOMEM;
    } catch (const std::exception &e) {
        set_err(err, std::string("SentencePiece decode: ") + e.what());
    } catch (...) {
        set_err(err, "SentencePiece decode: unknown error");
    }
    return ENG_SPM_E_FAIL;
}
