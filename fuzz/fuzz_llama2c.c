// fuzz_llama2c.c — llama2.c legacy checkpoints (model.bin of a model
// directory whose config.json says {"format":"llama2c"}).
//
// Each input starts with the 7 int32 header fields (dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, vocab_size, seq_len) followed by weights.
// The loader refuses any file whose size differs from what the header
// implies, so random inputs would almost never get past that check: when the
// header implies at most 64 MiB, the harness pads the file to that size with
// a sparse zero tail (an in-memory file, no disk). eng_tf_open_llama2c maps
// it; an accepted file must place every tensor entirely inside the mapping,
// after the header. The model is freed after each input.
#include "engine/arch/transformer.h"  // eng_tf_open_llama2c
#include "fuzz/fuzz.h"           // fuzz_memfile, FUZZ_CHECK

int fuzz_llama2c_init(void) { return 0; }

// The file size a header implies, in run.c's layout, or 0 when absurd.
static size_t implied_size(const uint8_t *data, size_t size) {
    if (size < 28) return 0;
    int32_t h[7];
    memcpy(h, data, sizeof h);
    double C = h[0], H = h[1], L = h[2], NH = h[3], NKV = h[4], V = h[5] < 0 ? -(double)h[5] : h[5], T = h[6];
    if (C <= 0 || H <= 0 || L <= 0 || NH <= 0 || NKV <= 0 || T <= 0 || h[0] % h[3] != 0) return 0;
    double hd = C / NH, qd = NH * hd, kvd = NKV * hd;
    double floats = V * C + L * C + L * qd * C + 2 * L * kvd * C + L * C * qd + L * C + 3 * L * H * C + C + T * hd +
                    (h[5] > 0 ? 0 : V * C);
    double bytes = 28 + 4 * floats;
    return bytes <= 64.0 * 1024 * 1024 ? (size_t)bytes : 0;
}

void fuzz_llama2c_one(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_memfile(data, size, implied_size(data, size), path, sizeof path);
    if (fd < 0) return;
    eng_transformer m;
    char *err = NULL;
    if (eng_tf_open_llama2c(&m, path, &err) == 0) {
        const char *lo = (const char *)m.map + 28, *hi = (const char *)m.map + m.map_len;
        FUZZ_CHECK(m.map && m.n_tensors > 0);
        for (int i = 0; i < m.n_tensors; i++) {
            const eng_tf_tensor *t = &m.tensors[i];
            FUZZ_CHECK(t->val && (const char *)t->val >= lo && (const char *)(t->val + t->n) <= hi);
        }
        eng_tf_free(&m);
    } else {
        FUZZ_CHECK(err != NULL);
        free(err);
    }
    close(fd);
}

FUZZ_ENTRY(llama2c)
