// test_idx.c — eng_idx_load on IDX files written here byte by byte (raw, and
// gzip'd with zlib's gzwrite), damaged variants of them, and the real
// Fashion-MNIST test labels when the dataset is installed.
#include "engine/io/idx.h"

#include <check.h>    // Check unit-test framework
#include <stdio.h>    // FILE
#include <stdlib.h>   // mkdtemp
#include <string.h>   // strstr
#include <unistd.h>   // access, unlink, rmdir
#include <zlib.h>     // gzopen/gzwrite: the independent gzip writer

#define FASHION_LABELS "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"

static char dir[64];
static char path[128];

static void setup(void) {
    strcpy(dir, "/tmp/test_idx_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char p[160];
    const char *names[] = {"a.idx", "a.idx.gz", "cut.gz"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

// Header 00 00 type ndim + big-endian dims, then `data_len` bytes i*7+1.
static size_t make_idx(uint8_t *b, int type, int ndim, const uint32_t *dims, size_t data_len) {
    size_t n = 0;
    b[n++] = 0, b[n++] = 0, b[n++] = (uint8_t)type, b[n++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        b[n++] = dims[i] >> 24, b[n++] = (dims[i] >> 16) & 0xff, b[n++] = (dims[i] >> 8) & 0xff;
        b[n++] = dims[i] & 0xff;
    }
    for (size_t i = 0; i < data_len; i++) b[n++] = (uint8_t)(i * 7 + 1);
    return n;
}

static const char *write_raw(const uint8_t *b, size_t n) {
    snprintf(path, sizeof path, "%s/a.idx", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(b, 1, n, f), n);
    fclose(f);
    return path;
}

static const char *write_gz(const uint8_t *b, size_t n) {
    snprintf(path, sizeof path, "%s/a.idx.gz", dir);
    gzFile g = gzopen(path, "wb9");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, b, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
    return path;
}

static void expect_refused(const char *p, const char *want) {
    eng_idx x;
    char *err = NULL;
    ck_assert_int_eq(eng_idx_load(&x, p, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
    ck_assert_ptr_null(x.data);
    free(err);
}

START_TEST(test_raw_and_gz) {
    uint8_t b[64];
    const uint32_t dims[3] = {2, 3, 4};
    size_t n = make_idx(b, 0x08, 3, dims, 24);
    for (int gz = 0; gz < 2; gz++) {
        const char *p = gz ? write_gz(b, n) : write_raw(b, n);
        eng_idx x;
        char *err = NULL;
        ck_assert_msg(eng_idx_load(&x, p, &err) == 0, "%s", err);
        ck_assert_int_eq(x.ndim, 3);
        ck_assert_int_eq(x.dims[0], 2);
        ck_assert_int_eq(x.dims[1], 3);
        ck_assert_int_eq(x.dims[2], 4);
        ck_assert_int_eq(x.n, 24);
        for (int i = 0; i < 24; i++) ck_assert_int_eq(x.data[i], (uint8_t)(i * 7 + 1));
        eng_idx_free(&x);
        eng_idx_free(&x);
    }
    eng_idx_free(NULL);
}
END_TEST

START_TEST(test_labels_1d) {
    uint8_t b[16];
    const uint32_t dims[1] = {5};
    size_t n = make_idx(b, 0x08, 1, dims, 5);
    eng_idx x;
    char *err = NULL;
    ck_assert_int_eq(eng_idx_load(&x, write_gz(b, n), &err), 0);
    ck_assert_int_eq(x.ndim, 1);
    ck_assert_int_eq(x.dims[0], 5);
    const uint8_t want[5] = {1, 8, 15, 22, 29};
    ck_assert_int_eq(memcmp(x.data, want, 5), 0);
    eng_idx_free(&x);
}
END_TEST

START_TEST(test_large_gz) {
    // More than one gzread chunk of internal buffering: 300 x 28 x 28.
    size_t dn = 300 * 28 * 28;
    uint8_t *b = malloc(16 + dn);
    const uint32_t dims[3] = {300, 28, 28};
    size_t n = make_idx(b, 0x08, 3, dims, dn);
    eng_idx x;
    char *err = NULL;
    ck_assert_int_eq(eng_idx_load(&x, write_gz(b, n), &err), 0);
    ck_assert_int_eq(x.n, dn);
    ck_assert_int_eq(memcmp(x.data, b + 16, dn), 0);
    eng_idx_free(&x);
    free(b);
}
END_TEST

START_TEST(test_truncated) {
    uint8_t b[64];
    const uint32_t dims[3] = {2, 3, 4};
    size_t n = make_idx(b, 0x08, 3, dims, 24);
    expect_refused(write_raw(b, n - 1), "truncated");
    expect_refused(write_gz(b, n - 1), "truncated");
    expect_refused(write_raw(b, 3), "too short");
    expect_refused(write_raw(b, 0), "too short");
    expect_refused(write_raw(b, 9), "truncated IDX header");
    b[n] = 0;
    expect_refused(write_raw(b, n + 1), "past");   // one byte too many

    // The compressed stream itself cut short.
    size_t dn = 5000;
    uint8_t *big = malloc(16 + dn);
    const uint32_t d1[1] = {(uint32_t)dn};
    size_t bn = make_idx(big, 0x08, 1, d1, dn);
    unsigned seed = 1;
    for (size_t i = 16; i < bn; i++) big[i] = (uint8_t)rand_r(&seed);   // keep it incompressible
    write_gz(big, bn);
    FILE *f = fopen(path, "rb");
    uint8_t *gzb = malloc(2 * bn + 100);
    size_t gl = fread(gzb, 1, 2 * bn + 100, f);
    fclose(f);
    char cut[160];
    snprintf(cut, sizeof cut, "%s/cut.gz", dir);
    f = fopen(cut, "wb");
    fwrite(gzb, 1, gl / 2, f);
    fclose(f);
    eng_idx x;
    char *err = NULL;
    ck_assert_int_eq(eng_idx_load(&x, cut, &err), -1);
    ck_assert_ptr_nonnull(err);
    free(err);
    free(gzb);
    free(big);
}
END_TEST

START_TEST(test_bad_headers) {
    uint8_t b[64];
    const uint32_t dims[2] = {2, 2};
    size_t n = make_idx(b, 0x08, 2, dims, 4);
    b[0] = 1;
    expect_refused(write_raw(b, n), "magic");
    b[0] = 0, b[1] = 0x08;
    expect_refused(write_gz(b, n), "magic");
    n = make_idx(b, 0x0d, 2, dims, 16);   // float elements
    expect_refused(write_raw(b, n), "0x0d");
    n = make_idx(b, 0x08, 0, dims, 0);
    expect_refused(write_raw(b, n), "dimensions");
    n = make_idx(b, 0x08, 2, dims, 4);
    b[3] = 5;
    expect_refused(write_raw(b, n), "dimensions");
    // Claims 2^31-1 x 2^31-1 bytes: refused by the size cap.
    const uint32_t huge[2] = {0x7fffffff, 0x7fffffff};
    n = make_idx(b, 0x08, 2, huge, 4);
    expect_refused(write_raw(b, n), "more than");
    const uint32_t neg[1] = {0x80000000u};
    n = make_idx(b, 0x08, 1, neg, 4);
    expect_refused(write_raw(b, n), "too large");
    // Claims 100000 x 28 x 28 = 78 MB but holds 4 bytes: truncated, cheaply.
    const uint32_t lie[3] = {100000, 28, 28};
    n = make_idx(b, 0x08, 3, lie, 4);
    expect_refused(write_gz(b, n), "truncated");
    expect_refused("/nonexistent/dir/x.idx", "/nonexistent/dir/x.idx");
}
END_TEST

START_TEST(test_fashion_mnist_labels) {
    // scripts/install-deps.sh installs dataset-fashion-mnist for `make test`:
    // a missing file is a broken set-up, never a silent pass
    ck_assert_msg(access(FASHION_LABELS, R_OK) == 0, "%s is missing: run scripts/install-deps.sh (package dataset-fashion-mnist)",
                  FASHION_LABELS);
    eng_idx x;
    char *err = NULL;
    ck_assert_msg(eng_idx_load(&x, FASHION_LABELS, &err) == 0, "%s", err);
    ck_assert_int_eq(x.ndim, 1);
    ck_assert_int_eq(x.dims[0], 10000);
    ck_assert_int_eq(x.n, 10000);
    int count[10] = {0};
    for (size_t i = 0; i < x.n; i++) {
        ck_assert_int_lt(x.data[i], 10);
        count[x.data[i]]++;
    }
    for (int c = 0; c < 10; c++) ck_assert_int_eq(count[c], 1000);   // the test split is balanced
    eng_idx_free(&x);
}
END_TEST

static Suite *idx_suite(void) {
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_raw_and_gz);
    tcase_add_test(tc, test_labels_1d);
    tcase_add_test(tc, test_large_gz);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_bad_headers);
    tcase_add_test(tc, test_fashion_mnist_labels);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(idx_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
