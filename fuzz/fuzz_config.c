// fuzz_config.c — config.json of a model directory, loaded the way
// POST /v1/models and the daemon's start-up load it (srv_registry_load:
// eng_model_load picks the architecture from task/arch or the Hugging Face /
// llama2.c keys, parses "input", "labels", "layers", the transformer or LSTM
// hyperparameters, the tokenizer choice, then the registry's batching keys).
//
// The first byte of an input picks the directory (even: "cfg-image" with
// fashion-cnn's weights; odd: "cfg-text" with fortune-gpt's weights and
// vocabulary, a llama2.c model.bin and tokenizer.bin, see fuzz_common.c); the
// rest is written as its config.json. The weights never change, so what is
// fuzzed is the config's claims about them: a config that does not match the
// files must be refused with a message. An accepted model is unloaded again.
#include <stdio.h>             // fopen
#include "fuzz/fuzz.h"         // fuzz_registry, FUZZ_CHECK
#include "server/registry.h"   // srv_registry_*

static const char *repo;

int fuzz_config_init(void) { return (repo = fuzz_registry()) ? 0 : -1; }

void fuzz_config_one(const uint8_t *data, size_t size) {
    if (size < 1) return;
    const char *dir = data[0] & 1 ? "cfg-text" : "cfg-image";
    char path[256];
    snprintf(path, sizeof path, "%s/%s/config.json", repo, dir);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    char *err = NULL;
    if (srv_registry_load("fuzz-config", dir, NULL, &err) == 0) {
        srv_model *m = srv_registry_get("fuzz-config");
        FUZZ_CHECK(m && m->m && m->max_batch_size >= 1 && m->timeout_ms >= 1);
        if (m->m->task == ENG_TASK_IMAGE_CLASSIFICATION) FUZZ_CHECK(m->m->n_labels >= 1 && eng_model_input_size(m->m) > 0);
        if (m->m->arch->lm) FUZZ_CHECK(m->m->tok && m->m->lm);
        srv_model_unref(m);
        FUZZ_CHECK(srv_registry_unload("fuzz-config") == 0);
    } else {
        FUZZ_CHECK(err != NULL);
        free(err);
    }
}

FUZZ_ENTRY(config)
