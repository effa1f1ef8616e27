// mkmodel — writes small random-weight text-generation models for tests and
// benchmarks (the weights are random, the formats are real):
//   mkmodel gpt2  OUT VOCAB_DIR [dim layers heads ctx seed]   HF GPT-2 dir, vocab.json+merges.txt copied from VOCAB_DIR
//   mkmodel llama OUT TOKENIZER_BIN [dim layers heads kv_heads hidden ctx seed]
//                                       HF Llama dir + llama2.c tokenizer.bin (config "tokenizer")
#include <stdio.h>
#include <stdlib.h>
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
    } else if (strcmp(kind, "llama") == 0) {
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
