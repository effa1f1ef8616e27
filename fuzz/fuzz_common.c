// fuzz_common.c — the model registry the server-side harnesses share.
//
// The JSON harnesses go through the handlers' parse functions, which look
// models up in server/registry.c exactly as the daemon does; the config.json
// harness loads models through srv_registry_load, as POST /v1/models does.
// They all use one temporary model repository: symlinks to the repository's
// models/fashion-cnn, models/fortune-gpt, tests/ref/marian_tiny and
// models/langid (all loaded here, once), and two
// scratch directories whose config.json the config harness rewrites per
// input: "cfg-image" (fashion-cnn's weights) and "cfg-text" (fortune-gpt's
// weights and vocabulary, the llama2.c reference model.bin and a tiny
// llama2.c tokenizer.bin), so any task/arch a fuzzed config names finds files.
#include <limits.h>            // PATH_MAX
#include <stdio.h>             // snprintf
#include <stdlib.h>            // realpath, mkdtemp
#include <unistd.h>            // symlink, unlink, rmdir
#include <sys/stat.h>          // mkdir
#include "engine/text/tokenizer.h"  // eng_tok_encode, eng_tok_decode
#include "fuzz/fuzz.h"         // declarations
#include "server/log.h"        // srv_log_set_level
#include "server/registry.h"   // srv_registry_*

static char repo[64];

// What the repository holds: directory, link name, target (relative to the
// inferd checkout, the harnesses' working directory).
static const struct { const char *dir, *name, *target; } links[] = {
    {NULL, "fashion-cnn", "models/fashion-cnn"},
    {NULL, "fortune-gpt", "models/fortune-gpt"},
    {NULL, "marian-tiny", "tests/ref/marian_tiny"},
    {NULL, "langid", "models/langid"},
    {"cfg-image", "model.safetensors", "models/fashion-cnn/model.safetensors"},
    {"cfg-text", "model.safetensors", "models/fortune-gpt/model.safetensors"},
    {"cfg-text", "vocab.json", "models/fortune-gpt/vocab.json"},
    {"cfg-text", "model.bin", "tests/ref/transformer_ref/llama2c/model.bin"},
    {"cfg-text", "tokenizer.bin", "fuzz/corpus/tok_llama2c/tiny.bin"},
};

static void remove_repo(void) {
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        snprintf(p, sizeof p, "%s/%s%s%s", repo, links[i].dir ? links[i].dir : "", links[i].dir ? "/" : "", links[i].name);
        unlink(p);
    }
    const char *dirs[] = {"cfg-image", "cfg-text"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/config.json", repo, dirs[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", repo, dirs[i]);
        rmdir(p);
    }
    rmdir(repo);
}

const char *fuzz_registry(void) {
    if (repo[0]) return repo;
    srv_log_set_level("error");   // a load per input would flood stderr at info
    snprintf(repo, sizeof repo, "/tmp/inferd-fuzz-XXXXXX");
    if (!mkdtemp(repo)) { repo[0] = 0; return NULL; }
    atexit(remove_repo);
    char p[PATH_MAX], target[PATH_MAX];
    snprintf(p, sizeof p, "%s/cfg-image", repo);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/cfg-text", repo);
    mkdir(p, 0700);
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        if (!realpath(links[i].target, target)) {
            fprintf(stderr, "fuzz: %s not found (run from the inferd checkout)\n", links[i].target);
            return NULL;
        }
        snprintf(p, sizeof p, "%s/%s%s%s", repo, links[i].dir ? links[i].dir : "", links[i].dir ? "/" : "", links[i].name);
        if (symlink(target, p) != 0) return NULL;
    }
    srv_registry_init(repo);
    const char *ids[] = {"fashion-cnn", "fortune-gpt", "marian-tiny", "langid"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char *err = NULL;
        if (srv_registry_load(ids[i], ids[i], NULL, &err) != 0) {
            fprintf(stderr, "fuzz: cannot load %s: %s\n", ids[i], err);
            free(err);
            return NULL;
        }
    }
    return repo;
}

// Encodes text with t (plain, then with BOS/EOS and special tokens), checks
// every id is inside the vocabulary and that the ids decode. With
// `roundtrip`, decode(encode(text)) must give text back (tokenizer.h promises
// it for the byte-level kinds).
void fuzz_tok_exercise(const eng_tokenizer *t, const uint8_t *text, size_t len, int roundtrip) {
    const int flags[] = {0, ENG_TOK_FLAG_ADD_BOS | ENG_TOK_FLAG_ADD_EOS | ENG_TOK_FLAG_SPECIAL};
    int V = eng_tok_vocab_size(t);
    for (int f = 0; f < 2; f++) {
        int *ids = NULL, n = 0;
        char *err = NULL;
        int rc = eng_tok_encode(t, (const char *)text, len, flags[f], 1 << 16, &ids, &n, &err);
        if (rc != 0) {
            FUZZ_CHECK((rc == -1 || rc == ENG_TOK_E_TOO_LONG || rc == ENG_TOK_E_NOMEM) && err && !ids);
            free(err);
            continue;
        }
        for (int i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < V);
        char *out = NULL;
        size_t out_len = 0;
        if (eng_tok_decode(t, ids, n, &out, &out_len, &err) == 0) {
            if (roundtrip && f == 0) FUZZ_CHECK(out_len == len && memcmp(out, text, len) == 0);
            free(out);
        } else {
            FUZZ_CHECK(err != NULL);
            free(err);
        }
        free(ids);
    }
}
