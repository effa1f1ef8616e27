// test_weights_map.c — engine/io/weights_map.c: a checkpoint's bytes in
// memory. Both placements (a copy on huge pages, the file mapped) give the
// file's exact bytes; the copy starts on a 2 MiB boundary, sits on huge pages
// when the kernel offers them, is read-only (a write faults) and is released
// by munmap(p, len) with nothing of it left mapped; small files and "file"
// are mapped; a file shorter than asked is an error, not a short buffer;
// and a safetensors file (the loader every model family uses) gives the same
// tensors either way, with its F32 data on huge pages under "huge".
#include "engine/io/weights_map.h"
#include "engine/io/safetensors.h"   // eng_st_write / eng_st_open through both placements

#include <check.h>                 // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_tmpdir-style helpers
#include <errno.h>                 // EIO
#include <fcntl.h>                 // open
#include <setjmp.h>                // the write-fault probe
#include <signal.h>                // sigaction, SIGSEGV
#include <stdint.h>                // uintptr_t
#include <stdio.h>                 // FILE, fgets
#include <stdlib.h>                // malloc, free
#include <string.h>                // memcmp, strncmp
#include <sys/mman.h>              // munmap, mincore
#include <unistd.h>                // write, close, unlink

// A temporary file of n bytes (a fixed pattern); its path in path[64].
static int make_file(char path[64], size_t n, unsigned char **bytes) {
    snprintf(path, 64, "/tmp/test_weights_map.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unsigned char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (unsigned char)(s >> 56);
    }
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, b + off, n - off);
        ck_assert_int_gt(w, 0);
        off += (size_t)w;
    }
    *bytes = b;
    return fd;
}

// Bytes of [p, p + len) on AnonHugePages, from /proc/self/smaps (-1 if unreadable).
static long huge_kb_of(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
    }
    fclose(f);
    return kb;
}

static int thp_offered(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char line[128] = "";
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    return strstr(line, "[always]") || strstr(line, "[madvise]");
}

static sigjmp_buf fault_jmp;
static void on_fault(int sig) { (void)sig; siglongjmp(fault_jmp, 1); }

// 1 if writing one byte at p faults.
static int write_faults(volatile unsigned char *p) {
    struct sigaction sa = {.sa_handler = on_fault}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old);
    int faulted = 0;
    if (sigsetjmp(fault_jmp, 1) == 0) p[0] = 1;
    else faulted = 1;
    sigaction(SIGSEGV, &old, NULL);
    return faulted;
}

// 1 if any page of [p, p + len) is still mapped.
static int any_mapped(void *p, size_t len) {
    unsigned char v;
    for (size_t off = 0; off < len; off += 4096)
        if (mincore((char *)p + off, 1, &v) == 0) return 1;   // ENOMEM = not mapped
    return 0;
}

START_TEST(test_huge_copy) {
    const size_t n = (9u << 20) + 12345;   // over 4 MiB, not a page multiple
    char path[64];
    unsigned char *want;
    int fd = make_file(path, n, &want);
    eng_weights_pages_set(ENG_WEIGHTS_HUGE);
    ck_assert_int_eq(eng_weights_pages_for(n), ENG_WEIGHTS_HUGE);
    unsigned char *p = eng_weights_map(fd, n);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq((uintptr_t)p % (2u << 20), 0);
    ck_assert_int_eq(memcmp(p, want, n), 0);
    if (thp_offered()) {
        long kb = huge_kb_of(p);
        ck_assert_msg(kb >= 2048, "AnonHugePages of the copy: %ld kB (THP offered, want >= 2048)", kb);
    }
    ck_assert_msg(write_faults(p + 100), "the copy is writable");
    ck_assert_int_eq(munmap(p, n), 0);
    ck_assert_msg(!any_mapped(p, n + 4096), "munmap(p, len) left part of the copy mapped");
    eng_weights_pages_set(ENG_WEIGHTS_AUTO);
    close(fd);
    unlink(path);
    free(want);
}
END_TEST

START_TEST(test_file_and_small) {
    char path[64];
    unsigned char *want;
    const size_t n = 5u << 20;
    int fd = make_file(path, n, &want);
    eng_weights_pages_set(ENG_WEIGHTS_FILE);
    ck_assert_int_eq(eng_weights_pages_for(n), ENG_WEIGHTS_FILE);
    unsigned char *p = eng_weights_map(fd, n);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(memcmp(p, want, n), 0);
    ck_assert_msg(write_faults(p), "the mapping is writable");
    munmap(p, n);
    eng_weights_pages_set(ENG_WEIGHTS_HUGE);
    ck_assert_int_eq(eng_weights_pages_for(100000), ENG_WEIGHTS_FILE);   // small files: mapped
    p = eng_weights_map(fd, 100000);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(memcmp(p, want, 100000), 0);
    munmap(p, 100000);
    eng_weights_pages_set(ENG_WEIGHTS_AUTO);
    ck_assert_int_eq(eng_weights_pages_for(n), thp_offered() ? ENG_WEIGHTS_HUGE : ENG_WEIGHTS_FILE);
    close(fd);
    unlink(path);
    free(want);
}
END_TEST

// Asking for more than the file holds: NULL and EIO, nothing mapped.
START_TEST(test_short_file) {
    char path[64];
    unsigned char *want;
    const size_t n = 6u << 20;
    int fd = make_file(path, n, &want);
    eng_weights_pages_set(ENG_WEIGHTS_HUGE);
    errno = 0;
    ck_assert_ptr_null(eng_weights_map(fd, n + (1u << 20)));
    ck_assert_int_eq(errno, EIO);
    ck_assert_ptr_null(eng_weights_map(fd, 0));
    eng_weights_pages_set(ENG_WEIGHTS_AUTO);
    close(fd);
    unlink(path);
    free(want);
}
END_TEST

START_TEST(test_parse) {
    eng_weights_pages p = ENG_WEIGHTS_FILE;
    ck_assert_int_eq(eng_weights_pages_parse("auto", &p), 0);
    ck_assert_int_eq(p, ENG_WEIGHTS_AUTO);
    ck_assert_int_eq(eng_weights_pages_parse("huge", &p), 0);
    ck_assert_int_eq(p, ENG_WEIGHTS_HUGE);
    ck_assert_int_eq(eng_weights_pages_parse("file", &p), 0);
    ck_assert_int_eq(p, ENG_WEIGHTS_FILE);
    ck_assert_int_eq(eng_weights_pages_parse("Huge", &p), -1);
    ck_assert_int_eq(eng_weights_pages_parse("", &p), -1);
    ck_assert_int_eq(eng_weights_pages_parse(NULL, &p), -1);
}
END_TEST

// A 6 MiB safetensors file: the same tensors mapped and copied; the copy's
// data (aligned F32 points into the buffer) is where the copy is.
START_TEST(test_safetensors_both_ways) {
    const int rows = 1536, cols = 1024;   // 6 MiB of F32
    float *w = malloc((size_t)rows * cols * sizeof(float));
    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < rows * cols; i++) w[i] = (float)(i % 977) * 0.25f - 100.0f;
    float b[3] = {1.5f, -2.0f, 3.25f};
    eng_st_entry e[2] = {{.name = "w", .ndim = 2, .shape = {rows, cols}, .data = w},
                         {.name = "b", .ndim = 1, .shape = {3}, .data = b}};
    char path[] = "/tmp/test_weights_map_st.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *err = NULL;
    ck_assert_msg(eng_st_write(path, e, 2, NULL, &err) == 0, "%s", err ? err : "");
    for (int mode = 0; mode < 2; mode++) {
        eng_weights_pages_set(mode ? ENG_WEIGHTS_FILE : ENG_WEIGHTS_HUGE);
        eng_st_file f;
        ck_assert_msg(eng_st_open(&f, path, &err) == 0, "%s", err ? err : "");
        const float *got = eng_st_get(&f, "w", 2, (const int64_t[]){rows, cols}, &err);
        ck_assert_ptr_nonnull(got);
        ck_assert_int_eq(memcmp(got, w, (size_t)rows * cols * sizeof(float)), 0);
        ck_assert_int_eq(memcmp(eng_st_get(&f, "b", 1, (const int64_t[]){3}, &err), b, sizeof b), 0);
        ck_assert_msg((const char *)got >= (const char *)f.map && (const char *)got < (const char *)f.map + f.map_len,
                      "F32 data is not in the file's buffer");
        if (!mode) ck_assert_int_eq((uintptr_t)f.map % (2u << 20), 0);
        eng_st_close(&f);
    }
    eng_weights_pages_set(ENG_WEIGHTS_AUTO);
    unlink(path);
    free(w);
}
END_TEST

static Suite *weights_map_suite(void) {
    Suite *s = suite_create("weights_map");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_huge_copy);
    tcase_add_test(tc, test_file_and_small);
    tcase_add_test(tc, test_short_file);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_safetensors_both_ways);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(weights_map_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
