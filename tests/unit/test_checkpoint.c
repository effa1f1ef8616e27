// test_checkpoint.c — engine/train/checkpoint.c and what training jobs need
// from every trainer: atomic checkpoints that refuse corrupt files, a failed
// write (file-size limit) that fails the run and keeps the previous
// checkpoint, resume = an uninterrupted run bit for bit (per trainer),
// fine-tuning from a base model, validation data, and eng_train_check's
// messages. Tiny models and a few steps each.
#include "engine/train/checkpoint.h"

#include <check.h>            // Check unit-test framework
#include <dirent.h>           // opendir (leftover temp files)
#include <ftw.h>              // nftw
#include <signal.h>           // signal(SIGXFSZ)
#include <stdint.h>           // uint8_t
#include <stdio.h>            // FILE
#include <stdlib.h>           // mkdtemp
#include <string.h>           // strstr
#include <sys/resource.h>     // setrlimit(RLIMIT_FSIZE)
#include <sys/stat.h>         // stat
#include <jansson.h>          // config.json of fine-tuned models
#include "engine/core/util.h" // eng_read_file
#include "testutil.h"           // tu_write_picture

static char dir[64];   // everything a test writes (mkdtemp)

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}
static void dir_setup(void) {
    strcpy(dir, "/tmp/test_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}
static void dir_teardown(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

// A path inside dir. A ring of buffers: options keep these pointers during a
// test, so the ring is much longer than any test's count of calls.
static char *path_in(const char *name) {
    static char buf[256][256];
    static int k;
    ck_assert_int_lt(k, 256);   // per test process (fork mode); all tests together stay under 256 too
    char *p = buf[k++];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static char *slurp(const char *path, size_t *n) {
    char *err = NULL, *s = eng_read_file(path, n, &err);
    ck_assert_msg(s != NULL, "%s", err ? err : path);
    return s;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    fclose(f);
}

// Entries of dir whose name contains ".tmp." (a temp file left behind).
static int temp_files(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) n += strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

// ---------------------------------------------------------------- the mechanism alone
typedef struct {
    float w[100];
    int order[7];
    eng_rng rng;
    double sum;
    long count;
} state;

static void state_fill(state *s, int seed) {
    memset(s, 0, sizeof *s);   // padding too: the test compares whole structs
    for (int i = 0; i < 100; i++) s->w[i] = (float)(i * seed) / 7.0f - 3.25f;
    for (int i = 0; i < 7; i++) s->order[i] = 7 * seed - i;
    eng_rng_seed(&s->rng, (uint64_t)seed);
    eng_rng_u64(&s->rng);
    s->sum = 1.0 / 3.0 * seed;
    s->count = 1234567890123L + seed;
}

static void describe(eng_ckpt *c, const eng_train_opts *o, state *s, long total) {
    eng_ckpt_init(c, o, "test", total);
    eng_ckpt_floats(c, "w", s->w, 100);
    eng_ckpt_ints(c, "order", s->order, 7);
    eng_ckpt_rng(c, "rng", &s->rng);
    eng_ckpt_double(c, "sum", &s->sum);
    eng_ckpt_long(c, "count", &s->count);
    eng_ckpt_check(c, "examples", 42);
}

START_TEST(test_roundtrip) {
    eng_train_opts o;
    eng_train_opts_init(&o);
    state a, b;
    state_fill(&a, 3);
    state_fill(&b, 5);
    eng_ckpt ca, cb;
    describe(&ca, &o, &a, 10);
    describe(&cb, &o, &b, 10);
    eng_train_progress p = {.step = 4, .total_steps = 10, .epoch = 1, .loss = 0.75f, .lr = 1e-3f, .val_loss = -1, .val_accuracy = 0.5f};
    o.progress = NULL;
    eng_ckpt_report(&ca, &p);
    char *err = NULL;
    ck_assert_msg(eng_ckpt_save(&ca, path_in("c.safetensors"), 4, &err) == 0, "%s", err);
    ck_assert_int_eq(temp_files(), 0);
    long step = -1;
    ck_assert_msg(eng_ckpt_load(&cb, path_in("c.safetensors"), &step, &err) == 0, "%s", err);
    ck_assert_int_eq(step, 4);
    ck_assert_mem_eq(&a, &b, sizeof a);   // every registered byte restored, scalars exactly
    ck_assert_int_eq(cb.n_history, 1);
    ck_assert_int_eq(cb.history[0].step, 4);
    ck_assert_float_eq(cb.history[0].loss, 0.75f);
    ck_assert_float_eq(cb.history[0].val_accuracy, 0.5f);
    // what the jobs API reads without the run
    eng_ckpt_info info;
    ck_assert_msg(eng_ckpt_peek(path_in("c.safetensors"), &info, &err) == 0, "%s", err);
    ck_assert_int_eq(info.step, 4);
    ck_assert_int_eq(info.total_steps, 10);
    ck_assert_int_eq(info.n_history, 1);
    ck_assert_float_eq(info.history[0].loss, 0.75f);
    ck_assert(info.seconds >= 0);
    eng_ckpt_info_free(&info);
    eng_ckpt_free(&ca);
    eng_ckpt_free(&cb);
}
END_TEST

// The history stays bounded: beyond ENG_CKPT_MAX_HISTORY reports, every other one is kept.
START_TEST(test_history_bounded) {
    eng_train_opts o;
    eng_train_opts_init(&o);
    eng_ckpt c;
    eng_ckpt_init(&c, &o, "test", 1000000);
    for (int s = 1; s <= ENG_CKPT_MAX_HISTORY + 3; s++) {
        eng_train_progress p = {.step = s, .total_steps = 1000000, .loss = 1.0f / s, .val_loss = -1, .val_accuracy = -1};
        eng_ckpt_report(&c, &p);
    }
    ck_assert_int_eq(c.n_history, ENG_CKPT_MAX_HISTORY / 2 + 3);
    ck_assert_int_eq(c.history[0].step, 2);
    ck_assert_int_eq(c.history[c.n_history - 1].step, ENG_CKPT_MAX_HISTORY + 3);
    for (int i = 1; i < c.n_history; i++) ck_assert_int_gt(c.history[i].step, c.history[i - 1].step);
    eng_ckpt_free(&c);
}
END_TEST

// Loading must refuse, with a message naming the problem, and leave the state alone.
static void expect_refused(eng_ckpt *c, const char *path, const char *want) {
    char *err = NULL;
    long step;
    ck_assert_int_eq(eng_ckpt_load(c, path, &step, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    free(err);
}

START_TEST(test_refuses_corrupt) {
    eng_train_opts o;
    eng_train_opts_init(&o);
    state a, b;
    state_fill(&a, 3);
    eng_ckpt ca, cb;
    describe(&ca, &o, &a, 10);
    char *err = NULL, good[256];
    snprintf(good, sizeof good, "%s", path_in("good.safetensors"));
    ck_assert_msg(eng_ckpt_save(&ca, good, 2, &err) == 0, "%s", err);
    size_t n;
    char *bytes = slurp(good, &n);

    state_fill(&b, 5);
    state before = b;
    describe(&cb, &o, &b, 10);
    // truncated
    FILE *f = fopen(path_in("trunc"), "wb");
    fwrite(bytes, 1, n - 13, f);
    fclose(f);
    expect_refused(&cb, path_in("trunc"), "truncated");
    // one flipped bit in the data
    bytes[n - 50] ^= 4;
    f = fopen(path_in("flip"), "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
    expect_refused(&cb, path_in("flip"), "checksum");
    eng_ckpt_info info;
    ck_assert_int_eq(eng_ckpt_peek(path_in("flip"), &info, &err), -1);
    ck_assert_msg(strstr(err, "checksum"), "%s", err);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_ckpt_peek(path_in("trunc"), &info, &err), -1);
    free(err);
    err = NULL;
    ck_assert_msg(eng_ckpt_peek(good, &info, &err) == 0, "%s", err);
    ck_assert_int_eq(info.step, 2);
    eng_ckpt_info_free(&info);
    bytes[n - 50] ^= 4;
    // empty, garbage, missing
    write_text(path_in("empty"), "");
    expect_refused(&cb, path_in("empty"), "checkpoint");
    f = fopen(path_in("garbage"), "wb");
    fwrite("\x10\0\0\0\0\0\0\0{\"a\":[1]}       ", 1, 24, f);
    fclose(f);
    expect_refused(&cb, path_in("garbage"), "checkpoint");
    f = fopen(path_in("model"), "wb");   // a valid safetensors file, but a model, not a checkpoint
    fwrite("\x20\0\0\0\0\0\0\0{\"__metadata__\":{\"format\":\"pt\"}}  ", 1, 40, f);
    fclose(f);
    expect_refused(&cb, path_in("model"), "not an inferd checkpoint");
    expect_refused(&cb, path_in("nothing-here"), "No such file");
    ck_assert_mem_eq(&b, &before, sizeof b);
    eng_ckpt_free(&cb);

    // another run's shapes, options, total steps, dataset
    float w2[99];
    eng_ckpt_init(&cb, &o, "test", 10);
    eng_ckpt_floats(&cb, "w", w2, 99);
    expect_refused(&cb, good, "tensor \"w\" is F32 [100], this run has F32 [99]");
    eng_ckpt_free(&cb);
    describe(&cb, &o, &b, 12);
    expect_refused(&cb, good, "made for 10 total steps, this run has 12");
    eng_ckpt_free(&cb);
    eng_train_opts o2 = o;
    o2.batch_size = 7;
    describe(&cb, &o2, &b, 10);
    expect_refused(&cb, good, "made with batch_size 64, this run has 7");
    eng_ckpt_free(&cb);
    eng_ckpt_init(&cb, &o, "test", 10);
    eng_ckpt_floats(&cb, "w", b.w, 100);
    eng_ckpt_ints(&cb, "order", b.order, 7);
    eng_ckpt_rng(&cb, "rng", &b.rng);
    eng_ckpt_double(&cb, "sum", &b.sum);
    eng_ckpt_long(&cb, "count", &b.count);
    eng_ckpt_check(&cb, "examples", 43);
    expect_refused(&cb, good, "made with examples 42, this run has 43");
    eng_ckpt_free(&cb);
    eng_ckpt_init(&cb, &o, "test", 10);
    eng_ckpt_floats(&cb, "w", b.w, 100);
    expect_refused(&cb, good, "unexpected tensor");
    eng_ckpt_free(&cb);
    free(bytes);
    eng_ckpt_free(&ca);
}
END_TEST

// A write that fails (here: the file-size limit, EFBIG with SIGXFSZ ignored)
// is an error naming the path and the reason; the previous checkpoint stays.
START_TEST(test_failed_write_keeps_previous) {
    eng_train_opts o;
    eng_train_opts_init(&o);
    state a;
    state_fill(&a, 3);
    eng_ckpt ca;
    describe(&ca, &o, &a, 10);
    char *err = NULL;
    const char *path = path_in("c.safetensors");
    ck_assert_msg(eng_ckpt_save(&ca, path, 2, &err) == 0, "%s", err);
    size_t n0;
    char *before = slurp(path, &n0);

    a.w[0] = 99;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 300;   // the header alone is larger
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = eng_ckpt_save(&ca, path, 4, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    ck_assert_int_eq(rc, -1);
    char want[300];
    snprintf(want, sizeof want, "checkpoint: %s: File too large", path);
    ck_assert_str_eq(err, want);
    free(err);
    err = NULL;
    size_t n1;
    char *after = slurp(path, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_mem_eq(before, after, n0);
    ck_assert_int_eq(temp_files(), 0);   // the partial temp file is removed

    // a directory that does not exist
    rc = eng_ckpt_save(&ca, path_in("no/such/dir/c.safetensors"), 4, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_msg(strstr(err, "No such file or directory") && strstr(err, "checkpoint: "), "%s", err);
    free(err);
    free(before); free(after);
    eng_ckpt_free(&ca);
}
END_TEST

// ---------------------------------------------------------------- datasets
static void put_be32(FILE *fp, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fwrite(b, 1, 4, fp);
}

// <sub>/<split>-images-idx3-ubyte + labels: n 8x8 images of 3 classes.
static void write_idx(const char *sub, const char *split, int n, uint32_t seed) {
    enum { IMG = 8 };
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s-images-idx3-ubyte", dir, sub, split);
    FILE *fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s/%s-labels-idx1-ubyte", dir, sub, split);
    FILE *fl = fopen(path, "wb");
    ck_assert(fi && fl);
    put_be32(fi, 0x803); put_be32(fi, (uint32_t)n); put_be32(fi, IMG); put_be32(fi, IMG);
    put_be32(fl, 0x801); put_be32(fl, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        int c = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 3;
        fputc(c, fl);
        for (int y = 0; y < IMG; y++)
            for (int x = 0; x < IMG; x++) {
                int bright = (c == 0 && x < 4) || (c == 1 && x >= 4) || (c == 2 && y < 4);
                seed = seed * 1103515245u + 12345u;
                fputc((int)((seed >> 16) % 120) + (bright ? 100 : 0), fi);
            }
    }
    fclose(fi); fclose(fl);
}

static const char *words_en[] = {"the", "cat", "sat", "on", "mat", "and", "dog", "ran", "home", "with", "a", "red", "ball"};
static const char *words_de[] = {"der", "hund", "und", "die", "katze", "sind", "zu", "haus", "mit", "einem", "roten", "ball"};

// A TSV of n lines "en\t..." / "de\t..." of 3..6 words.
static void write_tsv(const char *path, int n, uint32_t seed) {
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < n; i++) {
        int de = i % 2;
        fputs(de ? "de\t" : "en\t", f);
        int k = 3 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
        for (int w = 0; w < k; w++) {
            seed = seed * 1103515245u + 12345u;
            fprintf(f, "%s%s", w ? " " : "", de ? words_de[(seed >> 16) % 12] : words_en[(seed >> 16) % 13]);
        }
        fputc('\n', f);
    }
    fclose(f);
}

// n pairs "source<TAB>target": strings of a..h, the target reversed.
static void write_pairs(const char *path, int n, uint32_t seed) {
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < n; i++) {
        char w[8];
        int k = 3 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
        for (int j = 0; j < k; j++) w[j] = (char)('a' + ((seed = seed * 1103515245u + 12345u) >> 16) % 8);
        fprintf(f, "%.*s\t", k, w);
        for (int j = k - 1; j >= 0; j--) fputc(w[j], f);
        fputc('\n', f);
    }
    fclose(f);
}

// Plain text of about n characters.
static void write_corpus(const char *path, int n, uint32_t seed) {
    FILE *f = fopen(path, "wb");
    for (int len = 0; len < n;) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words_en[(seed >> 16) % 13];
        len += fprintf(f, "%s%s", w, (seed >> 8) % 7 == 0 ? ".\n" : " ");
    }
    fclose(f);
}

// ---------------------------------------------------------------- trainers
typedef struct {
    int stop_at;            // set *cancel when a report for this step arrives (0: never)
    volatile int cancel;
    int reports;
    float last_val_loss, last_val_acc;
} run_log;

static void on_progress(void *ctx, const eng_train_progress *p) {
    run_log *l = ctx;
    l->reports++;
    if (p->val_loss >= 0) l->last_val_loss = p->val_loss;
    if (p->val_accuracy >= 0) l->last_val_acc = p->val_accuracy;
    if (l->stop_at && p->step == l->stop_at) l->cancel = 1;
}

// Options for a tiny run of `task` (arch may be NULL), logging every `every` steps.
static void tiny_opts(eng_train_opts *o, run_log *l, const char *task, const char *arch, int steps, int every) {
    eng_train_opts_init(o);
    o->task = task;
    o->arch = arch;
    o->steps = steps;
    o->log_every = every;
    o->seed = 7;
    memset(l, 0, sizeof *l);
    l->last_val_loss = l->last_val_acc = -1;
    o->progress = on_progress;
    o->progress_ctx = l;
    o->cancel = &l->cancel;
    if (strcmp(task, "image-classification") == 0) {
        o->data = path_in("idx");
        o->batch_size = 16;
        o->augment = 1;     // augmentation draws from the RNG too: it must resume
        write_idx("idx", "train", 96, 1);
        write_idx("idx", "t10k", 30, 2);
    } else if (strcmp(task, "text-classification") == 0) {
        o->data = path_in("lang.tsv");
        o->buckets = 4096;
        o->dim = 8;
        o->lr = 1.0f;
        write_tsv(o->data, 50, 3);
    } else if (strcmp(task, "translation") == 0) {
        o->data = path_in("pairs.tsv");
        o->batch_size = 8;
        o->context_len = 16;
        o->dim = 16;
        o->lr = 1e-2f;
        write_pairs(o->data, 200, 5);
    } else if (strcmp(task, "image-stylization") == 0) {
        o->data = path_in("photos");
        o->style = path_in("style.png");
        o->batch_size = 2;
        o->lr = 1e-2f;
        o->net_width = 1.0f / 16;   // 2/4/8 channels
        o->image_size = 32;
        o->style_size = 48;
        mkdir(o->data, 0755);
        for (int i = 0; i < 3; i++) {
            char name[64];
            snprintf(name, sizeof name, "photos/p%d.png", i);
            tu_write_picture(path_in(name), 40 + 8 * i, 48, 0, 10 + (uint64_t)i);
        }
        tu_write_picture(o->style, 64, 48, 1, 3);
    } else {
        o->data = path_in("corpus.txt");
        o->batch_size = 4;
        o->context_len = 16;
        o->dim = 16;
        o->n_layers = 1;
        o->n_heads = 2;
        write_corpus(o->data, 3000, 4);
    }
}

static void train_ok(const eng_train_opts *o) {
    char *err = NULL;
    int rc = eng_train(o, &err);
    ck_assert_msg(rc == 0, "eng_train: %s", err ? err : "?");
}

// N steps straight vs N/2, cancel, resume to N: the same model.safetensors bytes.
static void resume_equals_straight(const char *task, const char *arch, int n) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, task, arch, n, n / 2);
    o.out = path_in("straight");
    train_ok(&o);

    tiny_opts(&o, &l, task, arch, n, n / 2);
    o.out = path_in("resumed");
    o.checkpoint_path = path_in("job.ckpt");
    o.checkpoint_every = n / 2;
    o.resume = 1;
    l.stop_at = n / 2;
    char *err = NULL;
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_str_eq(err, "cancelled");
    free(err);
    struct stat st;
    ck_assert_int_eq(stat(o.checkpoint_path, &st), 0);
    eng_ckpt_info info;   // where the job stands, as the jobs API sees it after a restart
    ck_assert_msg(eng_ckpt_peek(o.checkpoint_path, &info, &err) == 0, "%s", err);
    ck_assert_int_eq(info.step, n / 2);
    ck_assert_int_eq(info.total_steps, n);
    ck_assert_int_ge(info.n_history, 1);
    ck_assert_int_le(info.history[info.n_history - 1].step, n / 2);
    eng_ckpt_info_free(&info);
    ck_assert_int_ne(stat(path_in("resumed/model.safetensors"), &st), 0);   // not finished

    l.stop_at = 0;
    l.cancel = 0;
    l.reports = 0;
    write_text(path_in("job.ckpt.tmp.AbC123"), "half a checkpoint");   // as a kill mid-write leaves it
    write_text(path_in("job.ckpt.tmp.keep"), "not ours");
    train_ok(&o);
    ck_assert_int_ge(l.reports, 1);   // the second half reported
    ck_assert_int_ne(stat(path_in("job.ckpt.tmp.AbC123"), &st), 0);   // the stale temp file is gone
    ck_assert_int_eq(stat(path_in("job.ckpt.tmp.keep"), &st), 0);
    size_t na, nb;
    char *a = slurp(path_in("straight/model.safetensors"), &na), *b = slurp(path_in("resumed/model.safetensors"), &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(a, b, na) == 0, "%s/%s: resumed weights differ from the straight run", task, arch ? arch : "default");
    free(a); free(b);

    // a finished run's checkpoint (step == total) resumes to writing the model at once
    l.reports = 0;
    train_ok(&o);
    b = slurp(path_in("resumed/model.safetensors"), &nb);
    a = slurp(path_in("straight/model.safetensors"), &na);
    ck_assert_msg(na == nb && memcmp(a, b, na) == 0, "re-resumed weights differ");
    free(a); free(b);

    // a resumed run with other settings is refused, naming the setting
    o.lr *= 2;
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_msg(strstr(err, "learning_rate"), "%s", err);
    free(err);
}

START_TEST(test_resume_cnn) { resume_equals_straight("image-classification", NULL, 12); }
END_TEST
START_TEST(test_resume_gpt) { resume_equals_straight("text-generation", "gpt", 8); }
END_TEST
START_TEST(test_resume_lstm) { resume_equals_straight("text-generation", "lstm", 8); }
END_TEST
START_TEST(test_resume_fasttext) { resume_equals_straight("text-classification", NULL, 130); }
END_TEST
START_TEST(test_resume_translation) { resume_equals_straight("translation", NULL, 8); }
END_TEST
START_TEST(test_resume_stylization) { resume_equals_straight("image-stylization", NULL, 6); }
END_TEST

// A full disk mid-run fails the run with the checkpoint's error and keeps the previous one.
START_TEST(test_trainer_full_disk) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, "text-generation", "gpt", 8, 4);
    o.out = path_in("m");
    o.checkpoint_path = path_in("job.ckpt");
    o.checkpoint_every = 4;
    l.stop_at = 4;
    char *err = NULL;
    ck_assert_int_eq(eng_train(&o, &err), -1);   // cancelled after the checkpoint at step 4
    free(err);
    err = NULL;
    size_t n0;
    char *before = slurp(o.checkpoint_path, &n0);

    l.stop_at = 0;
    l.cancel = 0;
    o.resume = 0;   // a fresh run that wants to overwrite it at step 4, with the limit below its size
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = n0 / 2;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = eng_train(&o, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    ck_assert_int_eq(rc, -1);
    char want[300];
    snprintf(want, sizeof want, "checkpoint: %s: File too large", o.checkpoint_path);
    ck_assert_str_eq(err, want);
    free(err);
    size_t n1;
    char *after = slurp(o.checkpoint_path, &n1);
    ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before); free(after);
}
END_TEST

// ---------------------------------------------------------------- fine-tuning
typedef struct {
    int n;
    float first_loss;
} first_log;

static void on_first(void *ctx, const eng_train_progress *p) {
    first_log *l = ctx;
    if (p->loss >= 0 && l->n++ == 0) l->first_loss = p->loss;
}

// A model trained for `steps`, then fine-tuned from it: the fine-tune starts
// where the base ended (first loss well below a fresh run's), keeps its
// config; mismatches are errors naming what differs.
static void fine_tune(const char *task, const char *arch, int steps, const char *bad_opt) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, task, arch, steps, steps);
    o.out = path_in("base");
    train_ok(&o);

    first_log fresh = {0}, tuned = {0};
    tiny_opts(&o, &l, task, arch, 4, 1);
    if (strcmp(task, "text-classification") == 0) o.steps = 40, o.log_every = 40;   // SGD: one text per step
    o.progress = on_first;
    o.progress_ctx = &fresh;
    o.out = path_in("fresh");
    train_ok(&o);
    o.progress_ctx = &tuned;
    o.base_model = path_in("base");
    o.out = path_in("tuned");
    train_ok(&o);
    ck_assert_msg(tuned.first_loss < 0.9f * fresh.first_loss, "%s: fine-tuning starts at loss %g, a fresh run at %g",
                  task, (double)tuned.first_loss, (double)fresh.first_loss);
    json_error_t je;
    json_t *bc = json_load_file(path_in("base/config.json"), 0, &je), *tc = json_load_file(path_in("tuned/config.json"), 0, &je);
    ck_assert(bc && tc);
    json_object_del(bc, "training");
    json_object_del(tc, "training");
    ck_assert_msg(json_equal(bc, tc), "%s: the fine-tuned config differs from the base's", task);
    json_decref(bc); json_decref(tc);
    size_t n1, n2;
    char *README = slurp(path_in("tuned/README.md"), &n1);
    ck_assert_msg(strstr(README, "Fine-tuned from"), "%s", README);
    free(README);
    if (strcmp(task, "text-generation") == 0) {   // the base's vocabulary
        char *a = slurp(path_in("base/vocab.json"), &n1), *b = slurp(path_in("tuned/vocab.json"), &n2);
        ck_assert(n1 == n2 && memcmp(a, b, n1) == 0);
        free(a); free(b);
    }

    // a size (labels for the cnn) that differs from the base's is an error naming it
    char *err = NULL;
    int is_cnn = strcmp(task, "image-classification") == 0;
    if (is_cnn) o.labels = "x,y,z";
    else o.dim = 24;
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_msg(strstr(err, bad_opt) && strstr(err, "base model"), "%s", err);
    free(err);
    err = NULL;
    o.dim = 0;
    o.labels = NULL;
    // a model of another task
    o.task = strcmp(task, "text-generation") == 0 ? "image-classification" : "text-generation";
    o.arch = NULL;
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_msg(strstr(err, "base model") && strstr(err, task), "%s", err);
    free(err);
}

START_TEST(test_base_cnn) { fine_tune("image-classification", NULL, 18, "--labels differ from the base model's labels"); }
END_TEST
START_TEST(test_base_gpt) { fine_tune("text-generation", "gpt", 80, "dim 16"); }
END_TEST
START_TEST(test_base_fasttext) { fine_tune("text-classification", NULL, 200, "has dim 8, the options ask for 24"); }
END_TEST
START_TEST(test_base_translation) { fine_tune("translation", NULL, 150, "hidden 16"); }
END_TEST

START_TEST(test_base_mismatch) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, "text-generation", "gpt", 2, 2);
    o.out = path_in("base");
    train_ok(&o);
    char *err = NULL;
    o.arch = "lstm";   // the base is a gpt
    o.base_model = path_in("base");
    o.out = path_in("m");
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_msg(strstr(err, "is arch \"gpt2\", the options ask for \"lstm\""), "%s", err);
    free(err);
    err = NULL;
    o.arch = NULL;
    write_text(path_in("other.txt"), "");
    FILE *f = fopen(path_in("other.txt"), "wb");
    for (int i = 0; i < 300; i++) fputs("Zebra quartz vexing jumpy wolf! ", f);   // letters the base never saw
    fclose(f);
    o.data = path_in("other.txt");
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_msg(strstr(err, "not in the vocabulary of the base model"), "%s", err);
    free(err);
    err = NULL;
    o.base_model = path_in("nothing");
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_msg(strstr(err, "base model"), "%s", err);
    free(err);
}
END_TEST

// ---------------------------------------------------------------- validation data
static void with_val_data(const char *task, const char *arch, int steps, const char *val) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, task, arch, steps, steps);
    o.val_data = val;
    o.out = path_in("m");
    train_ok(&o);
    if (strcmp(task, "text-generation") == 0) ck_assert_float_ge(l.last_val_loss, 0);
    else if (strcmp(task, "translation") != 0) ck_assert_float_ge(l.last_val_acc, 0);   // translation: chrF in the README
    size_t n;
    char *readme = slurp(path_in("m/README.md"), &n);
    ck_assert_msg(strstr(readme, val), "README does not name the validation data:\n%s", readme);
    free(readme);
    // a validation set in the wrong format is an error
    char *err = NULL;
    write_text(path_in("junk"), "");
    o.val_data = path_in("junk");
    ck_assert_int_eq(eng_train(&o, &err), -1);
    ck_assert_msg(strstr(err, path_in("junk")), "%s", err);
    free(err);
}

START_TEST(test_val_cnn) {
    write_idx("val", "train", 40, 9);   // a directory of train-* files only
    with_val_data("image-classification", NULL, 6, path_in("val"));
}
END_TEST
START_TEST(test_val_gpt) {
    write_corpus(path_in("val.txt"), 600, 11);
    with_val_data("text-generation", "gpt", 4, path_in("val.txt"));
}
END_TEST
START_TEST(test_val_translation) {
    write_pairs(path_in("val.tsv"), 12, 13);
    with_val_data("translation", NULL, 4, path_in("val.tsv"));
    size_t n;
    char *held = slurp(path_in("m/heldout.tsv"), &n), *val = slurp(path_in("val.tsv"), &n);
    ck_assert_str_eq(held, val);   // the validation pairs are the held-out ones
    free(held); free(val);
}
END_TEST
START_TEST(test_val_fasttext) {
    write_tsv(path_in("val.tsv"), 20, 12);
    with_val_data("text-classification", NULL, 60, path_in("val.tsv"));
}
END_TEST

// ---------------------------------------------------------------- eng_train_check
static void check_says(const eng_train_opts *o, const char *want) {
    char *err = NULL;
    ck_assert_int_eq(eng_train_check(o, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    free(err);
}

START_TEST(test_check_tsv) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, "text-classification", NULL, 10, 10);
    o.out = path_in("m");
    char *err = NULL;
    ck_assert_msg(eng_train_check(&o, &err) == 0, "%s", err);
    char want[300];
    write_text(o.data, "en\tthe cat\nde\tder hund\n\nen the dog\n");
    snprintf(want, sizeof want, "%s:4: expected label<TAB>text", o.data);
    check_says(&o, want);
    write_text(o.data, "en\tthe cat\n\tder hund\n");
    snprintf(want, sizeof want, "%s:2: empty label", o.data);
    check_says(&o, want);
    write_text(o.data, "en\tthe cat\r\nde\t\r\n");
    snprintf(want, sizeof want, "%s:2: empty text", o.data);
    check_says(&o, want);
    write_text(o.data, "en\tthe cat\nde\tder hund\nde\tgro\xdf\n");
    snprintf(want, sizeof want, "%s:3: invalid UTF-8 (byte 0xdf at byte 7 of the line)", o.data);
    check_says(&o, want);
    write_text(o.data, "en\tthe cat\nen\tthe dog\n");
    check_says(&o, "at least two labels");
    write_text(o.data, "");
    check_says(&o, "no label<TAB>text lines");
    // the validation file is checked too
    write_tsv(o.data, 10, 1);
    write_text(path_in("val.tsv"), "en\tok\nbad line\n");
    o.val_data = path_in("val.tsv");
    snprintf(want, sizeof want, "%s:2: expected label<TAB>text", o.val_data);
    check_says(&o, want);
}
END_TEST

START_TEST(test_check_pairs) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, "translation", NULL, 10, 10);
    o.out = path_in("m");
    char *err = NULL;
    ck_assert_msg(eng_train_check(&o, &err) == 0, "%s", err);
    char want[300];
    write_text(o.data, "abc\tcba\nabd\tdba\nab\tba\tx\n");
    snprintf(want, sizeof want, "%s:3: expected \"source<TAB>target\"", o.data);
    check_says(&o, want);
    write_text(o.data, "abc\tcba\n\nab\t\n");
    snprintf(want, sizeof want, "%s:3: expected", o.data);
    check_says(&o, want);
    write_text(o.data, "abc\tcba\nab\xc3\tba\n");
    snprintf(want, sizeof want, "%s:2: invalid UTF-8", o.data);
    check_says(&o, want);
    write_pairs(o.data, 5, 1);
    check_says(&o, "training pairs is less than one batch of 8");
}
END_TEST

START_TEST(test_check_text_and_idx) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, "text-generation", "gpt", 10, 10);
    o.out = path_in("m");
    char *err = NULL;
    ck_assert_msg(eng_train_check(&o, &err) == 0, "%s", err);
    write_text(o.data, "");
    check_says(&o, "no text");
    write_text(o.data, "line one\nline two \xff\xfe\n");
    char want[300];
    snprintf(want, sizeof want, "%s:2: invalid UTF-8 (byte 0xff at byte 10 of the line)", o.data);
    check_says(&o, want);
    write_text(o.data, "too short\n");
    check_says(&o, "too little text");

    tiny_opts(&o, &l, "image-classification", NULL, 10, 10);
    o.out = path_in("m");
    ck_assert_msg(eng_train_check(&o, &err) == 0, "%s", err);
    FILE *f = fopen(path_in("idx/train-labels-idx1-ubyte"), "r+b");
    fputc(7, f);   // magic 07 00 ...
    fclose(f);
    check_says(&o, "train-labels-idx1-ubyte: bad IDX magic 07 00");
    write_idx("idx", "train", 10, 1);
    check_says(&o, "training data: 10 images is less than one batch of 16");
    write_idx("idx", "train", 96, 1);
    o.val_data = path_in("nowhere");
    check_says(&o, "nowhere");
}
END_TEST

START_TEST(test_check_options) {
    eng_train_opts o;
    run_log l;
    tiny_opts(&o, &l, "text-classification", NULL, 10, 10);
    o.out = path_in("m");
    o.batch_size = 0;
    check_says(&o, "batch size must be in 1..65536");
    o.batch_size = 8;
    o.lr = -1;
    check_says(&o, "learning rate");
    o.lr = 0.1f;
    o.resume = 1;
    check_says(&o, "resume needs a checkpoint path");
    o.resume = 0;
    o.checkpoint_every = -3;
    check_says(&o, "checkpoint interval");
    o.checkpoint_every = 0;
    o.checkpoint_path = path_in("no/such/dir/run.ckpt");
    check_says(&o, "No such file or directory");
    o.checkpoint_path = NULL;
    o.task = "painting";
    check_says(&o, "unknown task \"painting\"");
    o.task = "text-classification";
    o.arch = "bert";
    check_says(&o, "fasttext");
}
END_TEST

static Suite *ckpt_suite(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("mechanism");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_history_bounded);
    tcase_add_test(tc, test_refuses_corrupt);
    tcase_add_test(tc, test_failed_write_keeps_previous);
    suite_add_tcase(s, tc);
    tc = tcase_create("trainers");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_resume_cnn);
    tcase_add_test(tc, test_resume_gpt);
    tcase_add_test(tc, test_resume_lstm);
    tcase_add_test(tc, test_resume_fasttext);
    tcase_add_test(tc, test_resume_translation);
    tcase_add_test(tc, test_resume_stylization);
    tcase_add_test(tc, test_trainer_full_disk);
    tcase_add_test(tc, test_base_cnn);
    tcase_add_test(tc, test_base_gpt);
    tcase_add_test(tc, test_base_fasttext);
    tcase_add_test(tc, test_base_translation);
    tcase_add_test(tc, test_base_mismatch);
    tcase_add_test(tc, test_val_cnn);
    tcase_add_test(tc, test_val_gpt);
    tcase_add_test(tc, test_val_fasttext);
    tcase_add_test(tc, test_val_translation);
    suite_add_tcase(s, tc);
    tc = tcase_create("check");
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_check_tsv);
    tcase_add_test(tc, test_check_pairs);
    tcase_add_test(tc, test_check_text_and_idx);
    tcase_add_test(tc, test_check_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(ckpt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
