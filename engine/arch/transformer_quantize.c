// transformer_quantize.c — `inferd quantize`: a GPT-2 / Llama model
// directory (Hugging Face, llama2.c checkpoint, or trained by inferd) to one
// with int8 weight matrices (see transformer.h, eng_tf_quantize_dir).
#include "engine/arch/transformer.h"

#include <errno.h>              // errno
#include <limits.h>             // PATH_MAX
#include <stdio.h>              // snprintf
#include <stdlib.h>             // free, realpath
#include <string.h>             // strcmp, strerror
#include <sys/stat.h>           // mkdir, stat
#include "engine/core/util.h"   // eng_errorf, eng_read_file, eng_write_file_atomic

// Files a model directory may carry besides the weights and config.json:
// tokenizers of every kind we load (copied as they are).
static const char *const tokenizer_files[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
    "tokenizer.bin", "tokenizer.model", "generation_config.json", NULL,
};

static int mkdirs(const char *path, char **err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return eng_errorf(err, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return eng_errorf(err, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}

// Copies in/name to out/name when it exists (0), or -1 with *err.
static int copy_if_present(const char *in, const char *out, const char *name, char **err) {
    char src[4096], dst[4096];
    struct stat st;
    snprintf(src, sizeof src, "%s/%s", in, name);
    if (stat(src, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    snprintf(dst, sizeof dst, "%s/%s", out, name);
    size_t len;
    char *data = eng_read_file(src, &len, err);
    if (!data) return -1;
    int rc = eng_write_file_atomic(dst, data, len, err);
    free(data);
    return rc;
}

// Whether tensor t is quantized: weight matrices read by a matmul (GPT-2's
// position table is added, not multiplied: it stays fp32) whose input width
// is a multiple of the group.
static int quantizable(const eng_transformer *m, const eng_tf_tensor *t, int group) {
    if (t->ndim != 2 || (t->kind != ENG_TF_T_MATRIX && t->kind != ENG_TF_T_RESID)) return 0;
    if (t->n_views > 0 && t->views[0].var == &m->wpe) return 0;
    return t->shape[1] % group == 0;
}

int eng_tf_quantize_dir(const char *in_dir, const char *out_dir, int group, eng_tf_quant_report *rep, char **err) {
    memset(rep, 0, sizeof *rep);
    if (group != 32 && group != 64) return eng_errorf(err, "the group size must be 32 or 64");
    char path[4096], rin[PATH_MAX], rout[PATH_MAX];
    struct stat st;
    if (stat(in_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return eng_errorf(err, "%s: %s", in_dir, stat(in_dir, &st) != 0 ? strerror(errno) : "not a directory");
    snprintf(path, sizeof path, "%s/config.json", in_dir);
    json_error_t je;
    json_t *config = json_load_file(path, 0, &je);
    if (!config) return eng_errorf(err, "%s: %s", path, je.text);
    int rc = -1;
    eng_transformer *m = NULL;
    eng_st_entry *e = NULL;
    int8_t **qs = NULL;
    float **ss = NULL;
    json_t *out_cfg = NULL;
    if (json_object_get(config, "quantization")) {
        eng_errorf(err, "%s is already quantized (its config.json has \"quantization\")", in_dir);
        goto done;
    }
    const char *mt = json_string_value(json_object_get(config, "model_type"));
    const char *fmt = json_string_value(json_object_get(config, "format"));
    if (!(fmt && strcmp(fmt, "llama2c") == 0) && !(mt && (strcmp(mt, "gpt2") == 0 || strcmp(mt, "llama") == 0))) {
        eng_errorf(err, "%s: not a model `inferd quantize` handles (GPT-2 and Llama language models: Hugging Face "
                   "directories, llama2.c checkpoints, models trained by inferd); its config.json has %s \"%s\"", in_dir,
                   mt ? "model_type" : fmt ? "format" : "no model_type", mt ? mt : fmt ? fmt : "");
        goto done;
    }
    if (eng_tf_load_dir(&m, in_dir, config, err) != 0) goto done;
    if (m->q8_group) { eng_errorf(err, "%s is already quantized (its weights are int8)", in_dir); goto done; }
    if (mkdirs(out_dir, err) != 0) goto done;
    if (!realpath(in_dir, rin) || !realpath(out_dir, rout)) { eng_errorf(err, "%s: %s", out_dir, strerror(errno)); goto done; }
    if (strcmp(rin, rout) == 0) { eng_errorf(err, "--out must differ from --model (%s)", in_dir); goto done; }
    eng_tf_make_owned(m);   // llama2.c q/k rows to HF order: the output is a Hugging Face-style directory

    // F32 tensors first (their data stays 4-byte aligned in the file), then I8.
    int n = m->n_tensors, ne = 0;
    e = calloc(2 * (size_t)n, sizeof *e);
    qs = calloc((size_t)n, sizeof *qs);
    ss = calloc((size_t)n, sizeof *ss);
    char (*snames)[96] = calloc((size_t)n, sizeof *snames);
    if (!e || !qs || !ss || !snames) { free(snames); eng_errorf(err, "out of memory"); goto done; }
    json_t *kept = json_array();
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            const eng_tf_tensor *t = &m->tensors[i];
            int q = quantizable(m, t, group);
            if (pass == 0 && !q) {
                e[ne++] = (eng_st_entry){.name = t->name, .ndim = t->ndim, .shape = {t->shape[0], t->shape[1]}, .data = t->val};
                json_array_append_new(kept, json_string(t->name));
                rep->fp32_params += t->n;
            } else if (pass == 0) {   // its scales
                int N = t->shape[0], K = t->shape[1];
                qs[i] = malloc(t->n);
                ss[i] = malloc((size_t)N * (K / group) * sizeof(float));
                if (!qs[i] || !ss[i]) { free(snames); json_decref(kept); eng_errorf(err, "out of memory"); goto done; }
                eng_q8_quantize(qs[i], ss[i], t->val, N, K, group);
                snprintf(snames[i], sizeof snames[i], "%s_scale", t->name);
                e[ne++] = (eng_st_entry){.name = snames[i], .ndim = 2, .shape = {N, K / group}, .data = ss[i]};
                rep->n_quantized++;
                rep->q8_params += t->n;
            } else if (q) {
                e[ne++] = (eng_st_entry){.name = t->name, .ndim = 2, .shape = {t->shape[0], t->shape[1]}, .i8 = qs[i]};
            }
        }
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    const char *meta[] = {"format", "pt", "quantization", "int8 groupwise symmetric (inferd quantize)", NULL};
    int wrc = eng_st_write(path, e, ne, meta, err);
    free(snames);
    if (wrc != 0) { json_decref(kept); goto done; }

    // config.json: the input's keys (task, tokenizer ...), the model's HF keys, and "quantization"
    out_cfg = json_deep_copy(config);
    json_object_del(out_cfg, "format");
    json_object_del(out_cfg, "checkpoint");
    json_t *hf = eng_tf_config_to_json(&m->cfg);
    json_object_update(out_cfg, hf);
    json_decref(hf);
    json_object_set_new(out_cfg, "quantization", json_pack(
        "{s:s, s:i, s:i, s:s, s:s, s:o, s:s}", "method", "int8 groupwise symmetric", "bits", 8, "group_size", group,
        "weights", "I8 tensors [out, in] (rows are outputs; GPT-2 Conv1D weights transposed), values in [-127, 127]",
        "scales", "F32 tensor <name>_scale [out, in / group_size]: value = q * scale, scale = max|w| / 127 per group",
        "fp32", kept, "source", in_dir));
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    char *js = json_dumps(out_cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!js) { eng_errorf(err, "out of memory"); goto done; }
    size_t jl = strlen(js);
    js[jl] = '\n';   // json_dumps' buffer has room for its NUL
    int crc = eng_write_file_atomic(path, js, jl + 1, err);
    free(js);
    if (crc != 0) goto done;
    for (int i = 0; tokenizer_files[i]; i++)
        if (copy_if_present(in_dir, out_dir, tokenizer_files[i], err) != 0) goto done;
    const char *tokname = json_string_value(json_object_get(config, "tokenizer"));   // a named llama2.c tokenizer
    if (tokname && !strchr(tokname, '/') && copy_if_present(in_dir, out_dir, tokname, err) != 0) goto done;
    rep->group = group;
    rc = 0;
done:
    for (int i = 0; m && i < m->n_tensors; i++) {
        if (qs) free(qs[i]);
        if (ss) free(ss[i]);
    }
    free(qs);
    free(ss);
    free(e);
    json_decref(out_cfg);
    json_decref(config);
    eng_tf_destroy(m);
    return rc;
}
