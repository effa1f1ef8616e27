// test_fuzz_regressions.c — replays every fuzz harness's inputs in `make test`.
//
// For each harness of fuzz/targets.h, one test runs its init and then feeds
// every file of fuzz/regressions/<name>/ (inputs that once crashed it, kept
// after the fix) and of fuzz/corpus/<name>/ (the committed seeds) through
// fuzz_<name>_one, the function libFuzzer calls. A crash, a sanitizer report
// (under `make asan`) or a harness invariant (FUZZ_CHECK aborts) fails that
// test; Check runs each test in its own process. The seeds must be there:
// an empty seed folder fails, so the suite always checks something real.
#include <check.h>      // Check unit-test framework
#include <dirent.h>     // opendir
#include <stdio.h>      // snprintf
#include <stdlib.h>     // free
#include "engine/core/util.h"   // eng_read_file
#include "fuzz/targets.h"  // FUZZ_TARGETS, fuzz_<name>_init / _one

// Feeds every regular file of dir to one(); returns how many it fed.
static int replay_dir(const char *dir, void (*one)(const uint8_t *, size_t), int must_exist) {
    DIR *d = opendir(dir);
    if (!d) {
        ck_assert_msg(!must_exist, "%s is missing (run from the repository root)", dir);
        return 0;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *err = NULL;
        char *data = eng_read_file(path, &len, &err);
        ck_assert_msg(data != NULL, "%s: %s", path, err);
        one((const uint8_t *)data, len);   // on a crash: build-*-fuzz/fuzz_NAME DIR shows which file
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *name, int (*init)(void), void (*one)(const uint8_t *, size_t)) {
    ck_assert_msg(init() == 0, "fuzz_%s_init failed", name);
    char dir[256];
    snprintf(dir, sizeof dir, "fuzz/corpus/%s", name);
    int seeds = replay_dir(dir, one, 1);
    ck_assert_msg(seeds > 0, "%s holds no seed", dir);
    snprintf(dir, sizeof dir, "fuzz/regressions/%s", name);
    replay_dir(dir, one, 0);
}

#define FUZZ_TEST(name)                                                        \
    START_TEST(test_replay_##name) { replay(#name, fuzz_##name##_init, fuzz_##name##_one); } \
    END_TEST
FUZZ_TARGETS(FUZZ_TEST)

static Suite *fuzz_suite(void) {
    Suite *s = suite_create("fuzz_regressions");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 120);
#define FUZZ_ADD(name) tcase_add_test(tc, test_replay_##name);
    FUZZ_TARGETS(FUZZ_ADD)
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(fuzz_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
