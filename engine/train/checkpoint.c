// checkpoint.c — resumable training state in one safetensors file (see checkpoint.h).
#include "engine/train/checkpoint.h"
#include <dirent.h>                 // opendir (stale temp files)
#include <errno.h>                  // errno
#include <fcntl.h>                  // open
#include <jansson.h>                // the metadata
#include <stdint.h>                 // uint64_t
#include <stdio.h>                  // FILE, snprintf
#include <stdlib.h>                 // free, mkstemp
#include <string.h>                 // strcmp, memcpy
#include <sys/stat.h>               // fchmod, stat
#include <unistd.h>                 // fsync, unlink
#include "engine/core/util.h"       // eng_errorf, eng_now, eng_xmalloc
#include "engine/io/safetensors.h"  // eng_st_open

_Static_assert(sizeof(int) == 4, "int buffers are stored as I32");

#define CKPT_FORMAT 1
#define CKPT_META_KEY "inferd_checkpoint"

void eng_ckpt_init(eng_ckpt *c, const eng_train_opts *o, const char *arch, long total_steps) {
    memset(c, 0, sizeof *c);
    c->o = o;
    snprintf(c->arch, sizeof c->arch, "%s", arch);
    c->total_steps = total_steps;
    // default: about 20 checkpoints per run
    c->every = o->checkpoint_every > 0 ? o->checkpoint_every : (total_steps + 19) / 20;
    if (c->every < 1) c->every = 1;
    c->t_start = eng_now();
}

static eng_ckpt_item *add(eng_ckpt *c, eng_ckpt_kind kind, const char *name, void *ptr, size_t n) {
    if (c->n_items == ENG_CKPT_MAX_ITEMS) abort();   // a programming error: raise ENG_CKPT_MAX_ITEMS
    eng_ckpt_item *it = &c->items[c->n_items++];
    it->kind = kind;
    snprintf(it->name, sizeof it->name, "%s", name);
    it->ptr = ptr;
    it->n = n;
    return it;
}
void eng_ckpt_floats(eng_ckpt *c, const char *name, float *data, size_t n) { add(c, ENG_CKPT_F32, name, data, n); }
void eng_ckpt_ints(eng_ckpt *c, const char *name, int *data, size_t n) { add(c, ENG_CKPT_I32, name, data, n); }
void eng_ckpt_rng(eng_ckpt *c, const char *name, eng_rng *r) { add(c, ENG_CKPT_RNG, name, r, 4); }
void eng_ckpt_double(eng_ckpt *c, const char *name, double *v) { add(c, ENG_CKPT_DOUBLE, name, v, 1); }
void eng_ckpt_long(eng_ckpt *c, const char *name, long *v) { add(c, ENG_CKPT_LONG, name, v, 1); }
void eng_ckpt_check(eng_ckpt *c, const char *name, long value) { add(c, ENG_CKPT_CHECK, name, NULL, 0)->check = value; }

static int is_tensor(eng_ckpt_kind k) { return k == ENG_CKPT_F32 || k == ENG_CKPT_I32 || k == ENG_CKPT_RNG; }
static const char *dtype_of(eng_ckpt_kind k) { return k == ENG_CKPT_F32 ? "F32" : k == ENG_CKPT_I32 ? "I32" : "I64"; }
static size_t bytes_of(const eng_ckpt_item *it) { return it->n * (it->kind == ENG_CKPT_RNG ? 8 : 4); }

// A 64-bit checksum of the data section (FNV-1a over 8-byte words), so a
// flipped bit in the weights is refused, not resumed from.
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}
#define HASH_INIT 0xcbf29ce484222325ULL

// The options a run's result depends on: a checkpoint resumes only a run with the same ones.
static json_t *fingerprint(const eng_ckpt *c) {
    const eng_train_opts *o = c->o;
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    return json_pack("{s:s,s:s,s:i,s:f,s:f,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:s?,s:s?}",
                     "task", o->task ? o->task : "", "arch", c->arch, "batch_size", o->batch_size,
                     "learning_rate", (double)o->lr, "weight_decay", (double)o->weight_decay, "seed", seed,
                     "augment", o->augment, "balance", o->balance, "dim", o->dim, "n_layers", o->n_layers, "n_heads", o->n_heads,
                     "context_len", o->context_len, "buckets", o->buckets, "minn", o->minn, "maxn", o->maxn,
                     "labels", o->labels, "base_model", o->base_model);
}

// ---------------------------------------------------------------- writing
// Writes fd's stream; on failure returns -1 with errno kept.
static int write_stream(FILE *f, const char *hdr, size_t hlen, size_t padded, const eng_ckpt *c) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(hdr, 1, hlen, f) != hlen) return -1;
    for (size_t i = hlen; i < padded; i++) if (fputc(' ', f) == EOF) return -1;
    for (int i = 0; i < c->n_items; i++) {
        const eng_ckpt_item *it = &c->items[i];
        if (!is_tensor(it->kind) || !it->n) continue;
        if (fwrite(it->ptr, 1, bytes_of(it), f) != bytes_of(it)) return -1;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) return -1;
    return 0;
}

int eng_ckpt_save(const eng_ckpt *c, const char *path, long step, char **err) {
    json_t *root = json_object(), *meta = json_object(), *scalars = json_object(), *checks = json_object();
    json_t *hist = json_array();
    uint64_t off = 0, h = HASH_INIT;
    for (int i = 0; i < c->n_items; i++) {
        const eng_ckpt_item *it = &c->items[i];
        if (is_tensor(it->kind)) {
            json_object_set_new(root, it->name, json_pack("{s:s,s:[I],s:[I,I]}", "dtype", dtype_of(it->kind),
                                "shape", (json_int_t)it->n, "data_offsets", (json_int_t)off, (json_int_t)(off + bytes_of(it))));
            off += bytes_of(it);
            if (it->n) h = hash_bytes(h, it->ptr, bytes_of(it));
        } else if (it->kind == ENG_CKPT_DOUBLE) {
            json_object_set_new(scalars, it->name, json_real(*(double *)it->ptr));   // 17 digits: exact
        } else if (it->kind == ENG_CKPT_LONG) {
            json_object_set_new(scalars, it->name, json_integer(*(long *)it->ptr));
        } else {
            json_object_set_new(checks, it->name, json_integer(it->check));
        }
    }
    for (int i = 0; i < c->n_history; i++) {
        const eng_train_progress *p = &c->history[i];
        json_array_append_new(hist, json_pack("[i,i,i,f,f,f,f]", p->step, p->total_steps, p->epoch, (double)p->loss,
                                              (double)p->lr, (double)p->val_loss, (double)p->val_accuracy));
    }
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)h);
    json_object_set_new(meta, "format", json_integer(CKPT_FORMAT));
    json_object_set_new(meta, "step", json_integer(step));
    json_object_set_new(meta, "total_steps", json_integer(c->total_steps));
    json_object_set_new(meta, "seconds", json_real(c->seconds_before + (eng_now() - c->t_start)));
    json_object_set_new(meta, "options", fingerprint(c));
    json_object_set_new(meta, "scalars", scalars);
    json_object_set_new(meta, "checks", checks);
    json_object_set_new(meta, "history", hist);
    json_object_set_new(meta, "data_hash", json_string(hash));
    char *meta_s = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(meta);
    json_object_set_new(root, "__metadata__", json_pack("{s:s,s:s}", "format", "inferd-checkpoint", CKPT_META_KEY, meta_s));
    free(meta_s);
    char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!hdr) return eng_errorf(err, "checkpoint: %s: cannot serialise the header", path);
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;

    // temp file next to the target (rename is atomic within one file system)
    size_t plen = strlen(path);
    char *tmp = eng_xmalloc(plen + 16), *dir = eng_xmalloc(plen + 2);
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    const char *slash = strrchr(path, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else { memcpy(dir, path, (size_t)(slash - path)); dir[slash - path] = 0; }
    int rc = -1, e = 0, fd = mkstemp(tmp);
    if (fd < 0) { e = errno; goto fail; }
    FILE *f = fdopen(fd, "wb");
    if (!f) { e = errno; close(fd); unlink(tmp); goto fail; }
    if (fchmod(fd, 0644) != 0 || write_stream(f, hdr, hlen, padded, c) != 0) {
        e = errno ? errno : EIO;
        fclose(f);
        unlink(tmp);
        goto fail;
    }
    if (fclose(f) != 0) { e = errno; unlink(tmp); goto fail; }
    if (rename(tmp, path) != 0) { e = errno; unlink(tmp); goto fail; }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);   // the rename is durable once the directory is
    if (dfd < 0 || fsync(dfd) != 0) { e = errno; if (dfd >= 0) close(dfd); goto fail; }
    close(dfd);
    rc = 0;
fail:
    if (rc != 0) eng_errorf(err, "checkpoint: %s: %s", path, strerror(e));
    free(hdr); free(tmp); free(dir);
    return rc;
}

// ---------------------------------------------------------------- reading
// The "history" array of the metadata as progress records (malloc'd). 0 or -1 with *err.
static int parse_history(const json_t *jh, const char *path, eng_train_progress **out, size_t *n, char **err) {
    size_t nh = json_array_size(jh);
    eng_train_progress *hist = nh ? calloc(nh, sizeof *hist) : NULL;
    if (nh && !hist) return eng_errorf(err, "checkpoint %s: out of memory", path);
    for (size_t i = 0; i < nh; i++) {
        int st, tot, ep;
        double l, lr, vl, va;
        if (json_unpack(json_array_get(jh, i), "[iiiFFFF]", &st, &tot, &ep, &l, &lr, &vl, &va) != 0) {
            free(hist);
            return eng_errorf(err, "checkpoint %s: history entry %zu malformed", path, i);
        }
        hist[i] = (eng_train_progress){.step = st, .total_steps = tot, .epoch = ep, .loss = (float)l, .lr = (float)lr,
                                       .val_loss = (float)vl, .val_accuracy = (float)va};
    }
    *out = hist;
    *n = nh;
    return 0;
}

static const eng_ckpt_item *find_item(const eng_ckpt *c, const char *name) {
    for (int i = 0; i < c->n_items; i++)
        if (strcmp(c->items[i].name, name) == 0) return &c->items[i];
    return NULL;
}

// Checks the stored options against this run's, naming the first that differs.
static int check_options(const eng_ckpt *c, const char *path, json_t *stored, char **err) {
    json_t *mine = fingerprint(c);
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(mine, k, v) {
        json_t *s = json_object_get(stored, k);
        if (s && json_equal(s, v)) continue;
        char *a = s ? json_dumps(s, JSON_ENCODE_ANY) : strdup("nothing"), *b = json_dumps(v, JSON_ENCODE_ANY);
        rc = eng_errorf(err, "checkpoint %s: made with %s %s, this run has %s", path, k, a, b);
        free(a); free(b);
        break;
    }
    json_decref(mine);
    return rc;
}

int eng_ckpt_load(eng_ckpt *c, const char *path, long *step, char **err) {
    eng_st_file f;
    char *serr = NULL;
    if (eng_st_open(&f, path, &serr) != 0) {
        int rc = eng_errorf(err, "checkpoint %s: %s", path, serr);
        free(serr);
        return rc;
    }
    int rc = -1;
    json_error_t je;
    json_t *meta = NULL;
    const char *ms = eng_st_meta(&f, CKPT_META_KEY);
    if (!ms) { eng_errorf(err, "checkpoint %s: not an inferd checkpoint (no %s metadata)", path, CKPT_META_KEY); goto done; }
    if (!(meta = json_loads(ms, 0, &je))) { eng_errorf(err, "checkpoint %s: bad metadata: %s", path, je.text); goto done; }
    json_t *jf = json_object_get(meta, "format"), *js = json_object_get(meta, "step"),
           *jt = json_object_get(meta, "total_steps"), *jsec = json_object_get(meta, "seconds"),
           *jo = json_object_get(meta, "options"), *jsc = json_object_get(meta, "scalars"),
           *jc = json_object_get(meta, "checks"), *jh = json_object_get(meta, "history"),
           *jd = json_object_get(meta, "data_hash");
    if (!json_is_integer(jf) || json_integer_value(jf) != CKPT_FORMAT) {
        eng_errorf(err, "checkpoint %s: format version is not %d", path, CKPT_FORMAT); goto done;
    }
    if (!json_is_integer(js) || !json_is_integer(jt) || !json_is_number(jsec) || !json_is_object(jo) ||
        !json_is_object(jsc) || !json_is_object(jc) || !json_is_array(jh) || !json_is_string(jd)) {
        eng_errorf(err, "checkpoint %s: metadata lacks step, total_steps, seconds, options, scalars, checks, history or data_hash", path);
        goto done;
    }
    if (check_options(c, path, jo, err) != 0) goto done;
    if (json_integer_value(jt) != c->total_steps) {
        eng_errorf(err, "checkpoint %s: made for %lld total steps, this run has %ld", path,
                   (long long)json_integer_value(jt), c->total_steps);
        goto done;
    }
    long s = (long)json_integer_value(js);
    if (s < 0 || s > c->total_steps) { eng_errorf(err, "checkpoint %s: step %ld outside 0..%ld", path, s, c->total_steps); goto done; }

    // every registered item present with its dtype and size; nothing else
    int n_tensors = 0;
    uint64_t h = HASH_INIT;
    for (int i = 0; i < c->n_items; i++) {
        const eng_ckpt_item *it = &c->items[i];
        if (is_tensor(it->kind)) {
            n_tensors++;
            const eng_st_tensor *t = eng_st_find(&f, it->name);
            if (!t) { eng_errorf(err, "checkpoint %s: tensor \"%s\" missing", path, it->name); goto done; }
            if (strcmp(t->dtype, dtype_of(it->kind)) != 0 || t->ndim != 1 || (size_t)t->shape[0] != it->n) {
                eng_errorf(err, "checkpoint %s: tensor \"%s\" is %s [%lld%s], this run has %s [%zu]", path, it->name,
                           t->dtype, t->ndim ? (long long)t->shape[0] : 0LL, t->ndim > 1 ? ", ..." : "",
                           dtype_of(it->kind), it->n);
                goto done;
            }
            if (it->n) h = hash_bytes(h, t->raw, bytes_of(it));
        } else if (it->kind == ENG_CKPT_CHECK) {
            json_t *v = json_object_get(jc, it->name);
            if (!json_is_integer(v) || json_integer_value(v) != it->check) {
                eng_errorf(err, "checkpoint %s: made with %s %lld, this run has %ld", path, it->name,
                           v ? (long long)json_integer_value(v) : -1LL, it->check);
                goto done;
            }
        } else {
            json_t *v = json_object_get(jsc, it->name);
            if (it->kind == ENG_CKPT_DOUBLE ? !json_is_number(v) : !json_is_integer(v)) {
                eng_errorf(err, "checkpoint %s: scalar \"%s\" missing", path, it->name);
                goto done;
            }
        }
    }
    for (int i = 0; i < f.n; i++)
        if (!find_item(c, f.tensors[i].name)) {
            eng_errorf(err, "checkpoint %s: unexpected tensor \"%s\" (a checkpoint of another model?)", path, f.tensors[i].name);
            goto done;
        }
    if (f.n != n_tensors) { eng_errorf(err, "checkpoint %s: %d tensors, expected %d", path, f.n, n_tensors); goto done; }
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)h);
    if (strcmp(hash, json_string_value(jd)) != 0) {
        eng_errorf(err, "checkpoint %s: data checksum mismatch (corrupt file)", path);
        goto done;
    }
    size_t nh;
    eng_train_progress *hist;
    if (parse_history(jh, path, &hist, &nh, err) != 0) goto done;

    // everything checked: restore
    for (int i = 0; i < c->n_items; i++) {
        eng_ckpt_item *it = &c->items[i];
        if (is_tensor(it->kind)) {
            if (it->n) memcpy(it->ptr, eng_st_find(&f, it->name)->raw, bytes_of(it));
        } else if (it->kind == ENG_CKPT_DOUBLE) {
            *(double *)it->ptr = json_number_value(json_object_get(jsc, it->name));
        } else if (it->kind == ENG_CKPT_LONG) {
            *(long *)it->ptr = (long)json_integer_value(json_object_get(jsc, it->name));
        }
    }
    free(c->history);
    c->history = hist;
    c->n_history = c->cap_history = (int)nh;
    c->seconds_before = json_number_value(jsec);
    c->t_start = eng_now();
    *step = s;
    rc = 0;
done:
    json_decref(meta);
    eng_st_close(&f);
    return rc;
}

// ---------------------------------------------------------------- in the loop
// Removes <path>.tmp.XXXXXX files a killed run left behind mid-write (the
// checkpoint itself is whole: the rename never happened).
static void remove_stale_temps(const char *path) {
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, base, bl) == 0 && strncmp(de->d_name + bl, ".tmp.", 5) == 0 && strlen(de->d_name + bl) == 11) {
            char full[8192];
            snprintf(full, sizeof full, "%s/%s", dir, de->d_name);
            unlink(full);
        }
    closedir(d);
}

int eng_ckpt_resume(eng_ckpt *c, long *start, char **err) {
    *start = 0;
    c->t_start = eng_now();
    if (c->o->checkpoint_path) remove_stale_temps(c->o->checkpoint_path);
    struct stat st;
    if (!c->o->resume || !c->o->checkpoint_path || stat(c->o->checkpoint_path, &st) != 0) return 0;
    return eng_ckpt_load(c, c->o->checkpoint_path, start, err);
}

int eng_ckpt_after_step(eng_ckpt *c, long step, char **err) {
    if (!c->o->checkpoint_path || (step % c->every != 0 && step != c->total_steps)) return 0;
    return eng_ckpt_save(c, c->o->checkpoint_path, step, err);
}

void eng_ckpt_report(eng_ckpt *c, const eng_train_progress *p) {
    if (c->n_history == ENG_CKPT_MAX_HISTORY) {   // keep every other report: the curve, in bounded space
        for (int i = 0; i < c->n_history / 2; i++) c->history[i] = c->history[2 * i + 1];
        c->n_history /= 2;
    }
    if (c->n_history == c->cap_history) {
        int cap = c->cap_history ? 2 * c->cap_history : 64;
        eng_train_progress *h = realloc(c->history, (size_t)cap * sizeof *h);
        if (h) { c->history = h; c->cap_history = cap; }
    }
    if (c->n_history < c->cap_history) c->history[c->n_history++] = *p;   // out of memory: not recorded
    if (c->o->progress) c->o->progress(c->o->progress_ctx, p);
}

double eng_ckpt_seconds(const eng_ckpt *c) { return c->seconds_before + (eng_now() - c->t_start); }

void eng_ckpt_free(eng_ckpt *c) {
    free(c->history);
    c->history = NULL;
    c->n_history = c->cap_history = 0;
}

// ---------------------------------------------------------------- peeking (the jobs API)
static int by_address(const void *a, const void *b) {
    const char *x = (*(const eng_st_tensor *const *)a)->raw, *y = (*(const eng_st_tensor *const *)b)->raw;
    return x < y ? -1 : x > y;
}

int eng_ckpt_peek(const char *path, eng_ckpt_info *info, char **err) {
    memset(info, 0, sizeof *info);
    eng_st_file f;
    char *serr = NULL;
    if (eng_st_open(&f, path, &serr) != 0) {
        int rc = eng_errorf(err, "checkpoint %s: %s", path, serr);
        free(serr);
        return rc;
    }
    int rc = -1;
    json_error_t je;
    json_t *meta = NULL;
    const eng_st_tensor **order = NULL;
    const char *ms = eng_st_meta(&f, CKPT_META_KEY);
    if (!ms) { eng_errorf(err, "checkpoint %s: not an inferd checkpoint (no %s metadata)", path, CKPT_META_KEY); goto done; }
    if (!(meta = json_loads(ms, 0, &je))) { eng_errorf(err, "checkpoint %s: bad metadata: %s", path, je.text); goto done; }
    json_t *jf = json_object_get(meta, "format"), *js = json_object_get(meta, "step"), *jt = json_object_get(meta, "total_steps"),
           *jsec = json_object_get(meta, "seconds"), *jh = json_object_get(meta, "history"), *jd = json_object_get(meta, "data_hash");
    if (!json_is_integer(jf) || json_integer_value(jf) != CKPT_FORMAT) { eng_errorf(err, "checkpoint %s: format version is not %d", path, CKPT_FORMAT); goto done; }
    if (!json_is_integer(js) || !json_is_integer(jt) || !json_is_number(jsec) || !json_is_array(jh) || !json_is_string(jd)) {
        eng_errorf(err, "checkpoint %s: metadata lacks step, total_steps, seconds, history or data_hash", path);
        goto done;
    }
    // the checksum runs over the tensors in the order they were written: their order in the file
    order = malloc(((size_t)f.n + 1) * sizeof *order);
    if (!order) { eng_errorf(err, "checkpoint %s: out of memory", path); goto done; }
    for (int i = 0; i < f.n; i++) order[i] = &f.tensors[i];
    qsort(order, (size_t)f.n, sizeof *order, by_address);
    uint64_t h = HASH_INIT;
    for (int i = 0; i < f.n; i++) {
        size_t bytes = order[i]->numel * (strcmp(order[i]->dtype, "I64") == 0 ? 8 : 4);
        if (bytes) h = hash_bytes(h, order[i]->raw, bytes);
    }
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)h);
    if (strcmp(hash, json_string_value(jd)) != 0) { eng_errorf(err, "checkpoint %s: data checksum mismatch (corrupt file)", path); goto done; }
    size_t nh;
    if (parse_history(jh, path, &info->history, &nh, err) != 0) goto done;
    info->n_history = (int)nh;
    info->step = (long)json_integer_value(js);
    info->total_steps = (long)json_integer_value(jt);
    info->seconds = json_number_value(jsec);
    rc = 0;
done:
    free(order);
    json_decref(meta);
    eng_st_close(&f);
    return rc;
}

void eng_ckpt_info_free(eng_ckpt_info *info) {
    free(info->history);
    memset(info, 0, sizeof *info);
}
