// test_style_train.c — the image-stylization trainer
// (engine/train/image_stylization.c) on tiny synthetic data: the loss falls
// over a short run, the model directory it writes is served as it is, and
// bad options and data are refused with a message naming them.
#include "engine/train/train.h"

#include <check.h>            // Check unit-test framework
#include <ftw.h>              // nftw
#include <math.h>             // isfinite
#include <stdio.h>            // snprintf
#include <stdlib.h>           // mkdtemp
#include <string.h>           // strstr
#include <sys/stat.h>         // mkdir
#include <archive.h>          // archive_write_* (a tar of photos)
#include <archive_entry.h>    // archive_entry_*
#include "engine/arch/model.h"   // eng_model_load
#include "engine/core/util.h"    // eng_read_file
#include "engine/core/tape.h"    // eng_tape
#include "testutil.h"            // tu_write_picture

static char dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}
static void dir_setup(void) {
    strcpy(dir, "/tmp/test_style_train_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}
static void dir_teardown(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static char *path_in(const char *name) {
    static char buf[64][256];
    static int k;
    ck_assert_int_lt(k, 64);
    char *p = buf[k++];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

typedef struct { int n; float first, last, first_style, last_style, first_structure, last_structure; } losses;

static void on_progress(void *ctx, const eng_train_progress *p) {
    losses *l = ctx;
    ck_assert(p->stylization);
    ck_assert(isfinite(p->loss) && isfinite(p->content_loss) && isfinite(p->style_loss));
    if (l->n++ == 0) l->first = p->loss, l->first_style = p->style_loss, l->first_structure = p->structure_loss;
    l->last = p->loss, l->last_style = p->style_loss, l->last_structure = p->structure_loss;
}

// Four synthetic photos and a striped style; a tiny network (width 1/8: 4/8/16 channels).
static void tiny_opts(eng_train_opts *o, losses *l) {
    eng_train_opts_init(o);
    o->task = "image-stylization";
    o->data = path_in("photos");
    o->style = path_in("style.png");
    o->out = path_in("model");
    o->batch_size = 2;
    o->lr = 2e-2f;
    o->net_width = 1.0f / 8;
    o->style_weight = 5;
    o->image_size = 32;
    o->style_size = 64;
    o->steps = 100;
    o->log_every = 25;
    o->seed = 3;
    mkdir(o->data, 0755);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/more", o->data);   // searched recursively
    mkdir(sub, 0755);
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, i < 2 ? "photos/p%d.png" : "photos/more/p%d.png", i);
        tu_write_picture(path_in(name), 48 + 8 * i, 40, 0, 20 + (uint64_t)i);
    }
    tu_write_picture(o->style, 96, 64, 1, 5);
    memset(l, 0, sizeof *l);
    o->progress = on_progress;
    o->progress_ctx = l;
}

START_TEST(test_loss_falls) {
    eng_train_opts o;
    losses l;
    tiny_opts(&o, &l);
    char *err = NULL;
    ck_assert_int_eq(eng_train_check(&o, &err), 0);
    int rc = eng_train(&o, &err);
    ck_assert_msg(rc == 0, "eng_train: %s", err ? err : "?");
    ck_assert_int_eq(l.n, 4);
    fprintf(stderr, "style training, 100 tiny steps: loss %.4f -> %.4f (style %.4f -> %.4f, structure %.4f -> %.4f)\n",
            (double)l.first, (double)l.last, (double)l.first_style, (double)l.last_style, (double)l.first_structure,
            (double)l.last_structure);
    // (the loss network's covariance Grams fall slowly for a 4/8/16-channel
    // network: measured -28% and -32% over these 100 steps)
    ck_assert_msg(l.last < 0.85f * l.first, "loss %g -> %g: did not fall by 15%%", (double)l.first, (double)l.last);
    ck_assert_msg(l.last_style < 0.85f * l.first_style, "style loss %g -> %g", (double)l.first_style, (double)l.last_style);
    // what it wrote is served as it is
    eng_model *m = NULL;
    ck_assert_msg(eng_model_load(&m, o.out, &err) == 0, "load: %s", err ? err : "?");
    ck_assert_int_eq(m->task, ENG_TASK_IMAGE_STYLIZATION);
    float x[3 * 36 * 44], y[3 * 36 * 44];
    tu_fill(x, sizeof x / sizeof *x, 0, 255);
    eng_tape t;
    eng_tape_init(&t, 0, 0);
    m->arch->image_to_image(m, &t, x, 1, 36, 44, y);
    for (size_t i = 0; i < sizeof y / sizeof *y; i++) ck_assert(isfinite(y[i]));
    eng_tape_free(&t);
    eng_model_free(m);
    json_t *c = tu_load_json(path_in("model/config.json"));
    ck_assert_str_eq(json_string_value(json_object_get(c, "arch")), "transformer_net");
    ck_assert(fabs(json_number_value(json_object_get(c, "width")) - 1.0 / 8) < 1e-9);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(c, "training"), "steps")), 100);
    json_decref(c);
    struct stat st;
    ck_assert_int_eq(stat(path_in("model/README.md"), &st), 0);
}
END_TEST

// eng_train_check and eng_train refuse, naming the problem.
static void refused(eng_train_opts *o, const char *want) {
    char *err = NULL;
    ck_assert_int_eq(eng_train_check(o, &err), -1);
    ck_assert_msg(strstr(err, want), "check: \"%s\" does not say \"%s\"", err, want);
    free(err);
    err = NULL;
    ck_assert_int_eq(eng_train(o, &err), -1);
    ck_assert_msg(strstr(err, want), "train: \"%s\" does not say \"%s\"", err, want);
    free(err);
}

START_TEST(test_refuses_bad_input) {
    eng_train_opts o;
    losses l;
    tiny_opts(&o, &l);
    const char *style = o.style;
    o.style = NULL;
    refused(&o, "--style");
    o.style = path_in("missing.png");
    refused(&o, "missing.png");
    o.style = path_in("photos/notes.jpg");   // not an image
    FILE *f = fopen(o.style, "w");
    fputs("not a jpeg", f);
    fclose(f);
    refused(&o, "notes.jpg");
    o.style = style;
    o.image_size = 30;
    refused(&o, "--size");
    o.image_size = 64;   // larger than the photos
    refused(&o, "smaller than the 64x64 training crops");
    o.image_size = 32;
    o.net_width = 8;
    refused(&o, "--width");
    o.net_width = 1.0f / 8;
    o.arch = "cnn";
    refused(&o, "transformer_net");
    o.arch = NULL;
    o.data = path_in("empty");
    mkdir(o.data, 0755);
    refused(&o, "no .png, .jpg or .jpeg");
    o.data = path_in("photos/p0.png");
    refused(&o, "must be a directory");
}
END_TEST

// A gzip'd tar at path: the given files of dir under "photos/", a text file,
// and (when `link`) a symlink.
static void write_photo_tar(const char *path, const char *const *files, int n, int link) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    ck_assert_int_eq(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (int i = 0; i <= n + link; i++) {
        struct archive_entry *e = archive_entry_new();
        size_t len = 0;
        char *data = NULL, name[128], *err = NULL;
        if (i < n) {
            data = eng_read_file(path_in(files[i]), &len, &err);
            ck_assert_ptr_nonnull(data);
            snprintf(name, sizeof name, "photos/%s", strrchr(files[i], '/') + 1);
        } else if (i == n) {
            data = strdup("not a photo");
            len = strlen(data);
            snprintf(name, sizeof name, "photos/README.txt");
        } else {
            snprintf(name, sizeof name, "photos/link.png");
        }
        archive_entry_set_pathname(e, name);
        archive_entry_set_perm(e, 0644);
        if (i > n) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, "p0.png");
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)len);
        }
        ck_assert_int_eq(archive_write_header(a, e), ARCHIVE_OK);
        if (len) ck_assert_int_eq(archive_write_data(a, data, len), (la_ssize_t)len);
        archive_entry_free(e);
        free(data);
    }
    archive_write_close(a);
    archive_write_free(a);
}

// A training job uploads the photos as a tar: the same training, read in memory.
START_TEST(test_tar_of_photos) {
    eng_train_opts o;
    losses l;
    tiny_opts(&o, &l);
    const char *files[] = {"photos/p0.png", "photos/p1.png", "photos/more/p2.png", "photos/more/p3.png"};
    o.data = path_in("photos.tar.gz");
    write_photo_tar(o.data, files, 4, 0);
    o.steps = 4;
    o.log_every = 4;
    char *err = NULL;
    ck_assert_msg(eng_train_check(&o, &err) == 0, "check: %s", err ? err : "?");
    ck_assert_msg(eng_train(&o, &err) == 0, "train: %s", err ? err : "?");
    ck_assert_int_eq(l.n, 1);
    o.data = path_in("link.tar.gz");
    write_photo_tar(o.data, files, 2, 1);
    refused(&o, "photos/link.png");
    o.data = path_in("none.tar.gz");
    write_photo_tar(o.data, files, 0, 0);
    refused(&o, "no .png, .jpg or .jpeg member");
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("style_train");
    TCase *tc = tcase_create("trainer");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
    tcase_add_test(tc, test_loss_falls);
    tcase_add_test(tc, test_refuses_bad_input);
    tcase_add_test(tc, test_tar_of_photos);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
