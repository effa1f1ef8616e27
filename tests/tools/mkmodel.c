// mkmodel — writes small random-weight text-generation models for tests and
// benchmarks (the weights are random, the formats are real):
//   mkmodel gpt2  OUT VOCAB_DIR [dim layers heads ctx seed]   HF GPT-2 dir, vocab.json+merges.txt copied from VOCAB_DIR
//   mkmodel llama OUT TOKENIZER_BIN [dim layers heads kv_heads hidden ctx seed]
//                                       HF Llama dir + llama2.c tokenizer.bin (config "tokenizer")
//   mkmodel llama2c OUT TOKENIZER_BIN [dim layers heads kv_heads hidden ctx seed]
//                                       the same weights as a legacy llama2.c checkpoint (model.bin,
//                                       tied classifier; what ../shared/tools/llamacpp/anchor reads)
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include "engine/text/tokenizer.h"
#include "engine/arch/transformer.h"
#include "engine/core/util.h"

static int copy_file(const char *from, const char *to) {
    size_t n;
    char *err = NULL, *buf = eng_read_file(from, &n, &err);
    if (!buf) { fprintf(stderr, "mkmodel: %s\n", err); free(err); return -1; }
    int rc = eng_write_file_atomic(to, buf, n, &err);
    if (rc) { fprintf(stderr, "mkmodel: %s\n", err); free(err); }
    free(buf);
    return rc;
}

static int put(FILE *f, const float *p, size_t n) { return fwrite(p, sizeof(float), n, f) == n ? 0 : -1; }

// model.bin in run.c's legacy layout: 7 int32 (dim, hidden, layers, heads,
// kv heads, vocab (> 0: classifier shared with the embedding), seq_len), the
// embedding, every per-layer kind stacked over layers, the final norm, then
// run.c's two RoPE tables. The weights are random, so the HF-vs-llama2.c
// q/k row order does not matter: they are written as they are.
static int write_llama2c(const eng_transformer *m, const char *out) {
    const eng_tf_config *c = &m->cfg;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.bin", out);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return 1; }
    int32_t h[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->context_len};
    int rc = fwrite(h, sizeof h, 1, f) == 1 ? 0 : -1;
    rc |= put(f, m->wte.val, m->wte.n);
#define STACK(field) for (int l = 0; l < c->n_layers; l++) rc |= put(f, m->layers[l].field.val, m->layers[l].field.n)
    STACK(ln1_w); STACK(wq); STACK(wk); STACK(wv); STACK(wo); STACK(ln2_w); STACK(w1); STACK(w2); STACK(w3);
#undef STACK
    rc |= put(f, m->lnf_w.val, m->lnf_w.n);
    int half = c->head_dim / 2;
    float *tab = malloc((size_t)c->context_len * half * 2 * sizeof(float));
    for (int p = 0; p < c->context_len; p++)
        for (int i = 0; i < half; i++) {
            double a = p * pow(c->rope_theta, -2.0 * i / c->head_dim);
            tab[(size_t)p * half + i] = (float)cos(a);
            tab[(size_t)(c->context_len + p) * half + i] = (float)sin(a);
        }
    rc |= put(f, tab, (size_t)c->context_len * half * 2);
    free(tab);
    rc |= fclose(f);
    if (rc) { fprintf(stderr, "mkmodel: cannot write %s\n", path); return 1; }
    snprintf(path, sizeof path, "%s/config.json", out);
    json_t *j = json_pack("{s:s, s:s, s:i, s:i}", "format", "llama2c", "tokenizer", "tokenizer.bin",
                          "max_batch_size", 16, "max_queue_delay_us", 0);
    if (json_dump_file(j, path, JSON_INDENT(2)) != 0) { fprintf(stderr, "mkmodel: cannot write %s\n", path); return 1; }
    json_decref(j);
    printf("%s: llama2c, %zu parameters\n", out, m->n_params);
    return 0;
}

static int arg(int argc, char **argv, int i, int def) { return argc > i ? atoi(argv[i]) : def; }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: mkmodel gpt2 OUT VOCAB_DIR [dim layers heads ctx seed]\n"
                        "       mkmodel llama OUT TOKENIZER_BIN [dim layers heads kv_heads hidden ctx seed]\n");
        return 2;
    }
    const char *kind = argv[1], *out = argv[2], *src = argv[3];
    eng_tf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int seed;
    char path[4096], *err = NULL;
    mkdir(out, 0755);
    if (strcmp(kind, "gpt2") == 0) {
        cfg.arch = ENG_TF_GPT2;
        cfg.dim = arg(argc, argv, 4, 64);
        cfg.n_layers = arg(argc, argv, 5, 2);
        cfg.n_heads = arg(argc, argv, 6, 4);
        cfg.context_len = arg(argc, argv, 7, 256);
        seed = arg(argc, argv, 8, 1);
        cfg.hidden_dim = 4 * cfg.dim;
        cfg.vocab_size = 50257;
        cfg.norm_eps = 1e-5f;
        cfg.tied = 1;
        cfg.bos_token_id = cfg.eos_token_id = 50256;
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/vocab.json", src); snprintf(b, sizeof b, "%s/vocab.json", out);
        if (copy_file(a, b)) return 1;
        snprintf(a, sizeof a, "%s/merges.txt", src); snprintf(b, sizeof b, "%s/merges.txt", out);
        if (copy_file(a, b)) return 1;
    } else if (strcmp(kind, "llama") == 0 || strcmp(kind, "llama2c") == 0) {
        cfg.arch = ENG_TF_LLAMA;
        cfg.dim = arg(argc, argv, 4, 64);
        cfg.n_layers = arg(argc, argv, 5, 2);
        cfg.n_heads = arg(argc, argv, 6, 4);
        cfg.n_kv_heads = arg(argc, argv, 7, 2);
        cfg.hidden_dim = arg(argc, argv, 8, 172);
        cfg.context_len = arg(argc, argv, 9, 256);
        seed = arg(argc, argv, 10, 1);
        cfg.vocab_size = 32000;
        cfg.norm_eps = 1e-5f;
        cfg.rope_theta = 10000;
        cfg.bos_token_id = 1;
        cfg.eos_token_id = 2;
        cfg.tied = strcmp(kind, "llama2c") == 0;   // llama2.c's stories models share the classifier
        char b[4096];
        snprintf(b, sizeof b, "%s/tokenizer.bin", out);
        if (copy_file(src, b)) return 1;
    } else {
        fprintf(stderr, "mkmodel: unknown kind %s\n", kind);
        return 2;
    }
    eng_transformer m;
    if (eng_tf_init(&m, &cfg, &err) != 0) { fprintf(stderr, "mkmodel: %s\n", err); return 1; }
    eng_tf_init_params(&m, (uint64_t)seed);
    if (strcmp(kind, "llama2c") == 0) {
        int rc = write_llama2c(&m, out);
        eng_tf_free(&m);
        return rc;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    if (eng_tf_save(&m, path, &err) != 0) { fprintf(stderr, "mkmodel: %s\n", err); return 1; }
    json_t *c = eng_tf_config_to_json(&cfg);
    if (cfg.arch == ENG_TF_LLAMA) json_object_set_new(c, "tokenizer", json_string("tokenizer.bin"));
    json_object_set_new(c, "max_batch_size", json_integer(16));
    json_object_set_new(c, "max_queue_delay_us", json_integer(0));
    snprintf(path, sizeof path, "%s/config.json", out);
    if (json_dump_file(c, path, JSON_INDENT(2)) != 0) { fprintf(stderr, "mkmodel: cannot write %s\n", path); return 1; }
    json_decref(c);
    printf("%s: %s, %zu parameters\n", out, kind, m.n_params);
    eng_tf_free(&m);
    return 0;
}
