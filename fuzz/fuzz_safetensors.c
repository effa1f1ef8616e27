// fuzz_safetensors.c — safetensors files (model.safetensors of a model
// directory given to POST /v1/models).
//
// Each input is a whole file: the u64 header length, the JSON header, the
// data. eng_st_parse validates it in memory (the same checks eng_st_open runs
// on the mapping). A file it accepts must be safe to use: every tensor has a
// name eng_st_find returns, numel equal to the product of its shape, and a
// float tensor's numel values are readable (ASan checks each one);
// __metadata__ values are strings. The file is closed after each input.
#include <math.h>              // isnan
#include "engine/io/safetensors.h"
#include "fuzz/fuzz.h"         // FUZZ_CHECK

int fuzz_safetensors_init(void) { return 0; }

void fuzz_safetensors_one(const uint8_t *data, size_t size) {
    eng_st_file f;
    char *err = NULL;
    if (eng_st_parse(&f, data, size, &err) != 0) {
        FUZZ_CHECK(err != NULL);
        free(err);
        return;
    }
    volatile float sink = 0;
    for (int i = 0; i < f.n; i++) {
        const eng_st_tensor *t = &f.tensors[i];
        FUZZ_CHECK(t->name && eng_st_find(&f, t->name) == t);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ENG_ST_MAX_DIMS);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            numel *= (size_t)t->shape[d];
        }
        FUZZ_CHECK(numel == t->numel);
        if (t->data)
            for (size_t k = 0; k < t->numel; k++) sink += t->data[k];
    }
    for (int i = 0; i < f.n_meta; i++) FUZZ_CHECK(f.meta[2 * i] && f.meta[2 * i + 1] && eng_st_meta(&f, f.meta[2 * i]));
    (void)sink;
    eng_st_close(&f);
}

FUZZ_ENTRY(safetensors)
