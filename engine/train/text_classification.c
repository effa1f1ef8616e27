// text_classification.c — `inferd train --task text-classification`: a
// fastText-style classifier (engine/arch/fasttext.h) on "label<TAB>text"
// lines, and `inferd eval` of any text classifier on such lines.
// Data: a TSV file, or a directory with train.tsv (+ test.tsv). Validation:
// the directory's test.tsv, else every 20th line of the file held out.
// Training is fastText's: plain SGD, one example per step, the learning
// rate falling linearly from --lr to 0 over the run, examples shuffled each
// epoch. One addition: with o->balance, a label with c texts, when the most
// frequent has C, has each text seen sqrt(C / c) times per epoch (the
// fraction by a seeded draw), so its share of an epoch grows as sqrt(c):
// without it Bulgarian (571 texts) drowns in Russian (17,872). Output: config.json (labels + hyperparameters), model.safetensors,
// README.md (command, time, validation accuracy overall / per label).
#include <errno.h>            // errno
#include <math.h>             // log
#include <stdio.h>            // snprintf, open_memstream
#include <string.h>           // strcmp, strchr
#include <sys/stat.h>         // stat
#include "engine/arch/fasttext.h"        // eng_fasttext
#include "engine/arch/model.h"           // eng_model_load (eval)
#include "engine/core/rng.h"             // eng_rng (shuffling)
#include "engine/core/util.h"            // eng_read_file, eng_errorf, eng_now
#include "engine/text/utf8.h"            // eng_utf8_decode (length in characters)
#include "engine/train/train_internal.h" // eng_train_opts, eng__train_*
#include "engine/train/checkpoint.h"     // eng_ckpt

#define LONG_TEXT_CHARS 20   // eval's second figure: texts over this many characters

// ---------------------------------------------------------------- data
// realloc of an array that aborts when memory runs out, as eng_xmalloc
// (the trainer and eval are commands, not request paths).
static void *grow(void *p, int n, size_t size) {
    void *q = realloc(p, (size_t)n * size);
    if (!q) { fprintf(stderr, "inferd: out of memory\n"); abort(); }
    return q;
}

typedef struct {
    char *buf;          // the file, split in place
    int n, cap;
    char **label;       // [n] borrowed from buf
    char **text;        // [n]
    size_t *len;        // [n] text bytes
} tsv;

static void tsv_free(tsv *t) {
    free(t->buf); free(t->label); free(t->text); free(t->len);
    memset(t, 0, sizeof *t);
}

// Reads "label<TAB>text" lines (empty lines skipped, CR before LF dropped);
// keep(i) says which lines (0-based among the non-empty ones) to keep: every
// one (mod 0), those with i % mod == rem, or those with i % mod != rem (rem < 0: -rem-1).
static int tsv_load(tsv *t, const char *path, int mod, int rem, char **err) {
    memset(t, 0, sizeof *t);
    size_t n;
    if (!(t->buf = eng_read_file(path, &n, err))) return -1;
    int line_no = 0, idx = 0;
    for (char *p = t->buf, *end = t->buf + n; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
        line_no++;
        if (e > p && e[-1] == '\r') e[-1] = 0, e--;
        *e = 0;
        if (e > p) {
            char *tab = strchr(p, '\t');
            if (!tab || tab == p || !tab[1]) { tsv_free(t); return eng_errorf(err, "%s:%d: expected label<TAB>text", path, line_no); }
            *tab = 0;
            int take = mod == 0 || (rem >= 0 ? idx % mod == rem : idx % mod != -rem - 1);
            idx++;
            if (take) {
                if (t->n == t->cap) {
                    t->cap = t->cap ? 2 * t->cap : 1024;
                    t->label = grow(t->label, t->cap, sizeof *t->label);
                    t->text = grow(t->text, t->cap, sizeof *t->text);
                    t->len = grow(t->len, t->cap, sizeof *t->len);
                }
                t->label[t->n] = p;
                t->text[t->n] = tab + 1;
                t->len[t->n] = (size_t)(e - tab - 1);
                t->n++;
            }
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (t->n == 0) { tsv_free(t); return eng_errorf(err, "%s: no label<TAB>text lines", path); }
    return 0;
}

// The training and validation sets of --data (see the file comment); with
// val_data, all of --data trains and val_data (a TSV, or a directory's
// test.tsv) validates.
static int load_sets(const char *data, const char *val_data, tsv *tr, tsv *va, char **valname, char **err) {
    struct stat st;
    if (stat(data, &st) != 0) return eng_errorf(err, "%s: no such file or directory", data);
    char path[4096];
    memset(va, 0, sizeof *va);
    int dir = S_ISDIR(st.st_mode);
    if (dir) snprintf(path, sizeof path, "%s/train.tsv", data);
    if (tsv_load(tr, dir ? path : data, val_data || dir ? 0 : 20, val_data || dir ? 0 : -20, err) != 0) return -1;
    if (val_data) {
        snprintf(path, sizeof path, stat(val_data, &st) == 0 && S_ISDIR(st.st_mode) ? "%s/test.tsv" : "%s", val_data);
        if (tsv_load(va, path, 0, 0, err) != 0) { tsv_free(tr); return -1; }
        *valname = strdup(path);
        return 0;
    }
    if (dir) {
        snprintf(path, sizeof path, "%s/test.tsv", data);
        if (stat(path, &st) != 0) return 0;
        if (tsv_load(va, path, 0, 0, err) != 0) { tsv_free(tr); return -1; }
        *valname = strdup(path);
        return 0;
    }
    char *no_val = NULL;   // a file too small for a held-out line trains on everything
    if (tsv_load(va, data, 20, 19, &no_val) != 0) memset(va, 0, sizeof *va);   // all but every 20th line train
    free(no_val);
    *valname = strdup("every 20th line of the data file");
    return 0;
}

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// The label set: --labels when given, else the training labels sorted.
static char **label_set(const eng_train_opts *o, const tsv *tr, int *n_labels, char **err) {
    char **labels = NULL;
    int n = 0;
    if (o->labels) {
        char *copy = strdup(o->labels), *save = NULL;
        for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
            labels = grow(labels, n + 1, sizeof *labels);
            labels[n++] = strdup(s);
        }
        free(copy);
    } else {
        char **all = eng_xmalloc((size_t)tr->n * sizeof *all);
        memcpy(all, tr->label, (size_t)tr->n * sizeof *all);
        qsort(all, (size_t)tr->n, sizeof *all, by_str);
        for (int i = 0; i < tr->n; i++)
            if (i == 0 || strcmp(all[i], all[i - 1]) != 0) {
                labels = grow(labels, n + 1, sizeof *labels);
                labels[n++] = strdup(all[i]);
            }
        free(all);
    }
    if (n < 2) {
        for (int i = 0; i < n; i++) free(labels[i]);
        free(labels);
        eng_errorf(err, "a classifier needs at least two labels (found %d)", n);
        return NULL;
    }
    *n_labels = n;
    return labels;
}

static int label_index(char *const *labels, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(labels[i], s) == 0) return i;
    return -1;
}

// The examples of one epoch (see the file comment for o->balance).
static int *epoch_order(const eng_train_opts *o, const int *y, int n, int n_labels, eng_rng *rng, int *n_order) {
    long *count = eng_xcalloc((size_t)n_labels, sizeof *count), most = 0, len = 0;
    for (int i = 0; i < n; i++) count[y[i]]++;
    for (int c = 0; c < n_labels; c++) if (count[c] > most) most = count[c];
    int *order = NULL;
    for (int pass = 0; pass < 2; pass++) {   // count, then fill
        len = 0;
        for (int i = 0; i < n; i++) {
            double f = o->balance ? sqrt((double)most / (double)count[y[i]]) : 1.0;
            int copies = (int)f + (eng_rng_uniform(rng) < f - (int)f);
            for (int k = 0; k < copies; k++, len++) if (order) order[len] = i;
        }
        if (!order) { order = eng_xmalloc((size_t)(len + n) * sizeof *order); eng_rng_seed(rng, o->seed ^ 0xba1u); }
    }
    free(count);
    *n_order = (int)len;
    return order;
}

// ---------------------------------------------------------------- fine-tuning and checkpoints
// The base model's config.json (a fastText text classifier), or NULL with *err.
static json_t *base_config(const char *dir, char **err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    if (!cfg) { eng_errorf(err, "base model %s: %s", path, jerr.text); return NULL; }
    const char *task = json_string_value(json_object_get(cfg, "task")), *arch = json_string_value(json_object_get(cfg, "arch"));
    const json_t *labels = json_object_get(cfg, "labels");
    if (!task || strcmp(task, "text-classification") != 0 || !arch || strcmp(arch, "fasttext") != 0 ||
        !json_is_array(labels) || json_array_size(labels) < 2) {
        json_decref(cfg);
        eng_errorf(err, "base model %s is not a fasttext text classifier with \"labels\"", dir);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(labels); i++)
        if (!json_is_string(json_array_get(labels, i))) {
            json_decref(cfg);
            eng_errorf(err, "base model %s: labels[%zu] is not a string", dir, i);
            return NULL;
        }
    return cfg;
}

// Copies the base model's weights (its model.safetensors) into ft's owned arena.
static int load_weights(eng_fasttext *ft, const char *path, char **err) {
    eng_fasttext src = *ft;
    src.owned = NULL;
    if (eng_ft_load(&src, path, err) != 0) return -1;
    memcpy(ft->emb, src.emb, (size_t)ft->buckets * (size_t)ft->dim * sizeof(float));
    memcpy(ft->out_w, src.out_w, (size_t)ft->n_labels * (size_t)ft->dim * sizeof(float));
    memcpy(ft->out_b, src.out_b, (size_t)ft->n_labels * sizeof(float));
    eng_ft_free(&src);
    return 0;
}

// Epoch e's order: the balanced list shuffled by a generator seeded with
// (seed, e) alone, so a resumed run sees the same order as an unbroken one.
static void shuffle_epoch(int *order, const int *base, int n, uint64_t seed, long epoch) {
    memcpy(order, base, (size_t)n * sizeof *order);
    eng_rng rng;
    eng_rng_seed(&rng, seed ^ 0x5eedu ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull));
    for (int i = n - 1; i > 0; i--) {   // Fisher-Yates
        int j = (int)eng_rng_below(&rng, (uint64_t)i + 1), t = order[i];
        order[i] = order[j]; order[j] = t;
    }
}

// ---------------------------------------------------------------- validation during training
static void validate(const eng_fasttext *ft, const tsv *va, char *const *labels, float *loss, float *acc) {
    double sum = 0;
    long n = 0, ok = 0;
    float h[ENG_FT_MAX_DIM], *p = eng_xmalloc((size_t)ft->n_labels * sizeof(float));
    for (int i = 0; i < va->n; i++) {
        int y = label_index(labels, ft->n_labels, va->label[i]), *ids, nid;
        if (y < 0 || eng_ft_features(ft, va->text[i], va->len[i], &ids, &nid, NULL) != 0) continue;
        eng_ft_forward(ft, ids, nid, h, p);
        free(ids);
        int best = 0;
        for (int c = 1; c < ft->n_labels; c++) if (p[c] > p[best]) best = c;
        ok += best == y;
        sum += -log(p[y] > 1e-30f ? (double)p[y] : 1e-30);
        n++;
    }
    free(p);
    *loss = n ? (float)(sum / (double)n) : -1;
    *acc = n ? (float)ok / (float)n : -1;
}

// ---------------------------------------------------------------- the model directory
static int write_model(const eng_train_opts *o, const eng_fasttext *ft, char **labels, const tsv *tr,
                       const char *valname, long total, double train_s, char **err) {
    if (eng__train_mkdirs(o->out, err) != 0) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (eng_ft_save(ft, path, err) != 0) return -1;
    json_t *cfg = json_pack("{s:s,s:s}", "task", "text-classification", "arch", "fasttext");
    json_t *jl = json_array();
    for (int i = 0; i < ft->n_labels; i++) json_array_append_new(jl, json_string(labels[i]));
    json_object_set_new(cfg, "labels", jl);
    eng_ft_config(ft, cfg);
    json_object_set_new(cfg, "training", json_pack("{s:I,s:i,s:f,s:I,s:f}", "steps", (json_int_t)total,
                        "epochs", o->epochs, "learning_rate", (double)o->lr, "seed", (json_int_t)o->seed, "seconds", train_s));
    int rc = eng__train_write_json(o->out, "config.json", cfg, err);
    json_decref(cfg);
    if (rc != 0) return -1;

    eng_eval_report r;
    char *eerr = NULL;
    int have_eval = valname && strstr(valname, "every 20th") == NULL &&
                    eng_eval_text(o->out, valname, &r, &eerr) == 0;
    free(eerr);
    char *readme = NULL;
    size_t rl = 0;
    FILE *mf = open_memstream(&readme, &rl);
    fprintf(mf,
        "# %s\n\nText classifier (fastText-style: words and character %d..%d-grams hashed into %d buckets, "
        "%d-dimensional embeddings averaged, linear layer + softmax; %zu parameters) trained by inferd's own trainer.\n\n"
        "## Reproduce\n\n```\n%s\n```\n\n"
        "Data: `%s` (%d training texts, %d labels). %ld SGD steps (one text each, %d epochs%s), learning rate %g "
        "falling linearly to 0, seed %llu. Training took %.0f s on this machine.\n\n",
        strrchr(o->out, '/') ? strrchr(o->out, '/') + 1 : o->out, ft->minn, ft->maxn, ft->buckets, ft->dim,
        eng_ft_n_params(ft), o->command ? o->command : "inferd train --task text-classification ...",
        o->data, tr->n, ft->n_labels, total, o->epochs,
        o->balance ? "; rare labels oversampled, each label's share growing as the square root of its count" : "", (double)o->lr, (unsigned long long)o->seed, train_s);
    if (o->base_model) fprintf(mf, "Fine-tuned from `%s` (its labels and hyperparameters).\n\n", o->base_model);
    if (have_eval) {
        fprintf(mf, "## Held-out accuracy\n\n`inferd eval --model %s --data %s`: **%.2f%%** on %ld texts, "
                "**%.2f%%** on the %ld texts over %d characters.\n\n| label | texts | accuracy |\n|---|---|---|\n",
                o->out, valname, 100.0 * (double)r.correct / (double)r.n, r.n,
                r.n_long ? 100.0 * (double)r.correct_long / (double)r.n_long : 0.0, r.n_long, LONG_TEXT_CHARS);
        for (int i = 0; i < r.n_labels; i++)
            fprintf(mf, "| %s | %ld | %.2f%% |\n", r.labels[i], r.label_n[i],
                    r.label_n[i] ? 100.0 * (double)r.label_correct[i] / (double)r.label_n[i] : 0.0);
        eng_eval_report_free(&r);
    }
    fclose(mf);
    snprintf(path, sizeof path, "%s/README.md", o->out);
    rc = eng_write_file_atomic(path, readme, rl, err);
    free(readme);
    return rc;
}

// ---------------------------------------------------------------- the task
int eng__train_text_classification(const eng_train_opts *o, char **err) {
    if (o->arch && strcmp(o->arch, "fasttext") != 0) return eng_errorf(err, "text-classification trains arch \"fasttext\" only");
    tsv tr, va;
    char *valname = NULL, **labels = NULL;
    int n_labels = 0, rc = -1, *y = NULL, *order = NULL, *base_order = NULL;
    json_t *base = NULL;
    eng_fasttext ft;
    memset(&ft, 0, sizeof ft);
    eng_ckpt ck;
    eng_ckpt_init(&ck, o, "fasttext", 0);
    if (load_sets(o->data, o->val_data, &tr, &va, &valname, err) != 0) return -1;
    if (o->base_model) {   // fine-tuning: the base's labels and hyperparameters
        if (!(base = base_config(o->base_model, err))) goto done;
        const json_t *bl = json_object_get(base, "labels");
        n_labels = (int)json_array_size(bl);
        labels = eng_xcalloc((size_t)n_labels, sizeof *labels);
        for (int i = 0; i < n_labels; i++) labels[i] = strdup(json_string_value(json_array_get(bl, (size_t)i)));
    } else if (!(labels = label_set(o, &tr, &n_labels, err))) goto done;
    y = eng_xmalloc((size_t)tr.n * sizeof *y);
    for (int i = 0; i < tr.n; i++)
        if ((y[i] = label_index(labels, n_labels, tr.label[i])) < 0) {
            eng_errorf(err, "label \"%s\" of the data is not in %s", tr.label[i], o->base_model ? "the base model's labels" : "--labels");
            goto done;
        }
    json_t *hp = base ? json_incref(base) : json_object();
    if (!base) {   // fine-tuning keeps the base's sizes (given ones must agree, below)
        if (o->dim) json_object_set_new(hp, "dim", json_integer(o->dim));
        if (o->buckets) json_object_set_new(hp, "buckets", json_integer(o->buckets));
        if (o->minn) json_object_set_new(hp, "minn", json_integer(o->minn));
        if (o->maxn) json_object_set_new(hp, "maxn", json_integer(o->maxn));
    }
    int irc = eng_ft_init(&ft, hp, n_labels, err);
    json_decref(hp);
    if (irc != 0) goto done;
    if (base) {
        const char *what[4] = {"dim", "buckets", "minn", "maxn"};
        int given[4] = {o->dim, o->buckets, o->minn, o->maxn}, have[4] = {ft.dim, ft.buckets, ft.minn, ft.maxn};
        for (int i = 0; i < 4; i++)
            if (given[i] && given[i] != have[i]) {
                eng_errorf(err, "base model %s has %s %d, the options ask for %d", o->base_model, what[i], have[i], given[i]);
                goto done;
            }
    }
    if (eng_ft_alloc(&ft, o->seed) != 0) { eng_errorf(err, "out of memory for %zu parameters", eng_ft_n_params(&ft)); goto done; }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o->base_model ? o->base_model : "");
    if (o->base_model && load_weights(&ft, path, err) != 0) goto done;

    eng_rng rng;
    eng_rng_seed(&rng, o->seed ^ 0x5eedu);
    int n_order = 0;
    base_order = epoch_order(o, y, tr.n, n_labels, &rng, &n_order);
    order = eng_xmalloc((size_t)n_order * sizeof *order);
    long total = o->steps > 0 ? o->steps : (long)o->epochs * n_order, step0 = 0;
    double t0 = eng_now(), t_rep = t0, loss_sum = 0;
    long loss_n = 0, rep_from = 0;
    // what the next step depends on, for checkpoints and resume (the order
    // of an epoch is recomputed from the seed and the epoch)
    eng_ckpt_init(&ck, o, "fasttext", total);
    eng_ckpt_floats(&ck, "params", ft.owned, eng_ft_n_params(&ft));
    eng_ckpt_check(&ck, "data.order", n_order);
    eng_ckpt_double(&ck, "loss_sum", &loss_sum);
    eng_ckpt_long(&ck, "loss_n", &loss_n);
    eng_ckpt_long(&ck, "rep_from", &rep_from);
    if (eng_ckpt_resume(&ck, &step0, err) != 0) goto done;
    for (long step = step0; step < total; step++) {
        long pos = step % n_order;
        if (pos == 0 || step == step0) shuffle_epoch(order, base_order, n_order, o->seed, step / n_order);
        int ex = order[pos], *ids, nid;
        float lr = o->lr * (1.0f - (float)step / (float)total);
        int frc = eng_ft_features(&ft, tr.text[ex], tr.len[ex], &ids, &nid, NULL);
        if (frc == 0) {
            loss_sum += eng_ft_sgd_step(&ft, ids, nid, y[ex], lr);
            loss_n++;
            free(ids);
        }
        int epoch_end = pos == n_order - 1 || step == total - 1;
        if ((step + 1) % o->log_every == 0 || epoch_end) {
            if (o->cancel && *o->cancel) { eng_errorf(err, "cancelled"); goto done; }
            double now = eng_now();
            eng_train_progress p = {.step = (int)(step + 1 < 2147483647 ? step + 1 : 2147483647),
                                    .total_steps = (int)(total < 2147483647 ? total : 2147483647),
                                    .epoch = (int)(step / n_order) + 1, .loss = loss_n ? (float)(loss_sum / (double)loss_n) : 0,
                                    .lr = lr, .examples_per_s = (double)(step + 1 - rep_from) / (now - t_rep + 1e-9),
                                    .eta_s = (now - t0) / (double)(step + 1 - step0) * (double)(total - step - 1),
                                    .val_loss = -1, .val_accuracy = -1};
            if (epoch_end && va.n > 0) validate(&ft, &va, labels, &p.val_loss, &p.val_accuracy);
            eng_ckpt_report(&ck, &p);
            loss_sum = 0; loss_n = 0; rep_from = step + 1; t_rep = eng_now();
        }
        if (eng_ckpt_after_step(&ck, step + 1, err) != 0) goto done;
    }
    rc = write_model(o, &ft, labels, &tr, valname, total, eng_ckpt_seconds(&ck), err);
    if (rc == 0 && va.n > 0 && o->progress) {
        eng_train_progress p = {.step = 0, .loss = -1, .val_loss = -1};
        validate(&ft, &va, labels, &p.val_loss, &p.val_accuracy);
        o->progress(o->progress_ctx, &p);
    }
done:
    eng_ckpt_free(&ck);
    eng_ft_free(&ft);
    for (int i = 0; i < n_labels; i++) free(labels[i]);
    free(labels);
    free(y);
    free(order);
    free(base_order);
    json_decref(base);
    free(valname);
    tsv_free(&tr);
    tsv_free(&va);
    return rc;
}

// ---------------------------------------------------------------- the dataset check (jobs)
// One TSV file's lines: "label<TAB>text" in UTF-8, both parts non-empty,
// naming the line at fault.
static int check_tsv(const char *path, char **err) {
    size_t n;
    char *buf = eng_read_file(path, &n, err);
    if (!buf) return -1;
    int rc = -1, line_no = 0;
    if (eng__train_check_utf8(path, buf, n, err) != 0) goto done;
    for (char *p = buf, *end = buf + n; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
        line_no++;
        if (e > p && e[-1] == '\r') e--;
        if (e > p) {
            char *tab = memchr(p, '\t', (size_t)(e - p));
            if (!tab) { eng_errorf(err, "%s:%d: expected label<TAB>text (no tab on the line)", path, line_no); goto done; }
            if (tab == p) { eng_errorf(err, "%s:%d: empty label before the tab", path, line_no); goto done; }
            if (tab + 1 == e) { eng_errorf(err, "%s:%d: empty text after the label", path, line_no); goto done; }
        }
        if (!nl) break;
        p = nl + 1;
    }
    rc = 0;
done:
    free(buf);
    return rc;
}

// The files of --data (a TSV, or a directory's train.tsv and test.tsv) or of --val-data (a TSV or a directory's test.tsv).
static int check_files(const char *data, int is_val, char **err) {
    struct stat st;
    if (stat(data, &st) != 0) return eng_errorf(err, "%s: %s", data, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return check_tsv(data, err);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data, is_val ? "test.tsv" : "train.tsv");
    if (check_tsv(path, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/test.tsv", data);
    return is_val || stat(path, &st) != 0 ? 0 : check_tsv(path, err);
}

int eng__check_text_classification(const eng_train_opts *o, char **err) {
    if (o->arch && strcmp(o->arch, "fasttext") != 0) return eng_errorf(err, "text-classification trains arch \"fasttext\" only");
    // every line's format first, then the sets as training reads them (labels, base model)
    if (check_files(o->data, 0, err) != 0 || (o->val_data && check_files(o->val_data, 1, err) != 0)) return -1;
    tsv tr, va;
    char *valname = NULL, **labels = NULL;
    int n_labels = 0, rc = -1;
    json_t *base = NULL;
    if (load_sets(o->data, o->val_data, &tr, &va, &valname, err) != 0) return -1;
    if (o->base_model) {
        if (!(base = base_config(o->base_model, err))) goto done;
        const json_t *bl = json_object_get(base, "labels");
        n_labels = (int)json_array_size(bl);
        labels = eng_xcalloc((size_t)n_labels, sizeof *labels);
        for (int i = 0; i < n_labels; i++) labels[i] = strdup(json_string_value(json_array_get(bl, (size_t)i)));
    } else if (!(labels = label_set(o, &tr, &n_labels, err))) goto done;
    for (int i = 0; i < tr.n; i++)
        if (label_index(labels, n_labels, tr.label[i]) < 0) {
            eng_errorf(err, "label \"%s\" of the data is not in %s", tr.label[i], o->base_model ? "the base model's labels" : "--labels");
            goto done;
        }
    rc = 0;
done:
    for (int i = 0; i < n_labels; i++) free(labels[i]);
    free(labels);
    json_decref(base);
    free(valname);
    tsv_free(&tr);
    tsv_free(&va);
    return rc;
}

// ---------------------------------------------------------------- eval
static long utf8_chars(const char *s, size_t len) {
    long n = 0;
    for (size_t i = 0; i < len; n++) {
        uint32_t c;
        int l = eng_utf8_decode(s + i, len - i, &c);
        i += l > 0 ? (size_t)l : 1;
    }
    return n;
}

void eng_eval_report_free(eng_eval_report *r) {
    free(r->label_n);
    free(r->label_correct);
    for (int i = 0; i < r->n_labels; i++) free(r->labels[i]);
    free(r->labels);
    memset(r, 0, sizeof *r);
}

int eng_eval_text(const char *model_dir, const char *data, eng_eval_report *r, char **err) {
    memset(r, 0, sizeof *r);
    eng_model *m;
    if (eng_model_load(&m, model_dir, err) != 0) return -1;
    if (m->task != ENG_TASK_TEXT_CLASSIFICATION || !m->arch->classify_text) {
        eng_errorf(err, "%s is a %s model, not a text classifier", model_dir, eng_task_name(m->task));
        eng_model_free(m);
        return -1;
    }
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, stat(data, &st) == 0 && S_ISDIR(st.st_mode) ? "%s/test.tsv" : "%s", data);
    tsv te;
    if (tsv_load(&te, path, 0, 0, err) != 0) { eng_model_free(m); return -1; }
    r->n_labels = m->n_labels;
    r->labels = eng_xcalloc((size_t)m->n_labels, sizeof *r->labels);
    for (int i = 0; i < m->n_labels; i++) r->labels[i] = strdup(m->labels[i]);
    r->label_n = eng_xcalloc((size_t)m->n_labels, sizeof *r->label_n);
    r->label_correct = eng_xcalloc((size_t)m->n_labels, sizeof *r->label_correct);
    float *p = eng_xmalloc((size_t)m->n_labels * sizeof(float));
    eng_tape tape;
    eng_tape_init(&tape, 0, 0);
    for (int i = 0; i < te.n; i++) {
        int y = label_index(m->labels, m->n_labels, te.label[i]), *ids = NULL, nid = 0, best = -1;
        char *terr = NULL;
        if (eng_model_text_ids(m, te.text[i], te.len[i], &ids, &nid, &terr) == 0) {
            const int *const idv[1] = {ids};
            m->arch->classify_text(m, &tape, idv, &nid, 1, p);
            best = 0;
            for (int c = 1; c < m->n_labels; c++) if (p[c] > p[best]) best = c;
        }
        free(ids);
        free(terr);
        int ok = y >= 0 && best == y, is_long = utf8_chars(te.text[i], te.len[i]) > LONG_TEXT_CHARS;
        r->n++; r->correct += ok;
        r->n_long += is_long; r->correct_long += ok && is_long;
        if (y >= 0) { r->label_n[y]++; r->label_correct[y] += ok; }
    }
    eng_tape_free(&tape);
    free(p);
    tsv_free(&te);
    eng_model_free(m);
    return 0;
}
