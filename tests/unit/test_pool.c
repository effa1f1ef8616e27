// test_pool.c — engine/core/pool.c (the compute pool) and engine/core/ops_par.c
// (linear layers split across it): every task runs exactly once, whatever
// the task count; two threads really run tasks at the same time; nested
// calls and several callers at once run to completion with every task done
// once; many tiny jobs in a row lose no wake-up (a lost one hangs: the case
// timeout fails it); start/stop cycles; and the split linears are
// bit-identical to eng_linear_forward_rowwise for every row count, column
// count and pool size. Run under `make asan` too; TSan (see the end) finds no race.
#include "engine/core/pool.h"

#include <check.h>                 // Check unit-test framework
#include "tests/unit/testutil.h"   // tu_fill
#include <pthread.h>               // concurrent callers
#include <stdatomic.h>             // task counters
#include <stdlib.h>                // calloc, free
#include <string.h>                // memcmp
#include <time.h>                  // nanosleep
#include "engine/core/ops.h"       // eng_linear_forward_rowwise (the reference)
#include "engine/core/ops_par.h"   // eng_par_linear(s), eng_par_swiglu
#include "engine/core/ops_seq.h"   // eng_swiglu_forward (the reference)
#include "engine/core/util.h"      // eng_now

// ---------------------------------------------------------------- exactly once
typedef struct {
    _Atomic int *count;   // [n] runs of each task
    _Atomic int bad_self; // eng_pool_self() out of range
} count_job;

static void count_task(void *ctx, int t) {
    count_job *J = ctx;
    atomic_fetch_add(&J->count[t], 1);
    int s = eng_pool_self();
    if (s < 0 || s >= eng_pool_threads()) atomic_store(&J->bad_self, 1);
}

static void check_once(int n) {
    count_job J = {.count = calloc((size_t)n, sizeof(_Atomic int))};
    eng_pool_for(n, count_task, &J);
    for (int t = 0; t < n; t++) ck_assert_msg(J.count[t] == 1, "n=%d: task %d ran %d times", n, t, (int)J.count[t]);
    ck_assert_int_eq(J.bad_self, 0);
    free(J.count);
}

static const int pool_sizes[] = {1, 2, 3};

START_TEST(test_every_task_once) {
    ck_assert_int_eq(eng_pool_start(pool_sizes[_i]), 0);
    ck_assert_int_eq(eng_pool_threads(), pool_sizes[_i]);
    static const int ns[] = {0, 1, 2, 3, 7, 64, 1000, 70000};   // 70000: more than one job word holds
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++)
        for (int rep = 0; rep < 20; rep++) check_once(ns[k]);
    eng_pool_stop();
    ck_assert_int_eq(eng_pool_threads(), 1);
}
END_TEST

// ---------------------------------------------------------------- real concurrency
// Task 0 waits (up to 10 s) until task 1 has started: only possible when a
// second thread runs task 1 while the caller is inside task 0.
typedef struct { _Atomic int started1, met; } meet_job;

static void meet_task(void *ctx, int t) {
    meet_job *J = ctx;
    if (t == 1) { atomic_store(&J->started1, 1); return; }
    double t0 = eng_now();
    while (!atomic_load(&J->started1) && eng_now() - t0 < 10) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&J->met, atomic_load(&J->started1));
}

START_TEST(test_two_threads_run_together) {
    ck_assert_int_eq(eng_pool_start(2), 0);
    for (int rep = 0; rep < 5; rep++) {
        meet_job J = {0};
        eng_pool_for(2, meet_task, &J);
        // whichever thread took task 0, the other one ran task 1 meanwhile
        ck_assert_msg(J.met, "task 1 never ran while task 0 waited: the pool runs one thread");
    }
    eng_pool_stop();
}
END_TEST

// ---------------------------------------------------------------- many tiny jobs
typedef struct { _Atomic long sum; } sum_job;
static void add_task(void *ctx, int t) { atomic_fetch_add(&((sum_job *)ctx)->sum, t + 1); }

START_TEST(test_many_tiny_jobs) {
    ck_assert_int_eq(eng_pool_start(2), 0);
    sum_job J = {0};
    long want = 0;
    for (int rep = 0; rep < 200000; rep++) {
        int n = 2 + rep % 3;
        eng_pool_for(n, add_task, &J);
        want += (long)n * (n + 1) / 2;
        if (rep % 20000 == 0) {   // let the helper fall asleep now and then: the futex path
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
    ck_assert_int_eq(J.sum, want);
    eng_pool_stop();
}
END_TEST

// ---------------------------------------------------------------- nesting
static void nested_task(void *ctx, int t) {
    count_job *outer = ctx;
    atomic_fetch_add(&outer->count[t], 1);
    check_once(5);   // runs inline: every inner task still exactly once
}

START_TEST(test_nested) {
    ck_assert_int_eq(eng_pool_start(2), 0);
    count_job J = {.count = calloc(16, sizeof(_Atomic int))};
    eng_pool_for(16, nested_task, &J);
    for (int t = 0; t < 16; t++) ck_assert_int_eq(J.count[t], 1);
    free(J.count);
    eng_pool_stop();
}
END_TEST

// ---------------------------------------------------------------- several callers
static void *caller_main(void *arg) {
    (void)arg;
    for (int rep = 0; rep < 3000; rep++) check_once(1 + rep % 9);
    return NULL;
}

START_TEST(test_concurrent_callers) {
    ck_assert_int_eq(eng_pool_start(2), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, caller_main, NULL), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    eng_pool_stop();
}
END_TEST

START_TEST(test_start_stop_cycles) {
    for (int c = 0; c < 50; c++) {
        ck_assert_int_eq(eng_pool_start(2 + c % 2), 0);
        check_once(10);
        eng_pool_stop();
    }
    check_once(10);   // stopped: inline
    ck_assert_int_eq(eng_pool_start(1), 0);   // 1 = no pool
    ck_assert_int_eq(eng_pool_threads(), 1);
}
END_TEST

START_TEST(test_width) {
    ck_assert_int_eq(eng_pool_width(1e12), 1);   // not started
    ck_assert_int_eq(eng_pool_start(2), 0);
    ck_assert_int_eq(eng_pool_width(1e12), 2);
    ck_assert_int_eq(eng_pool_width(eng_pool_min_flops() / 2), 1);   // tiny ops stay inline
    eng_pool_enter();                                   // one step running: the whole pool
    ck_assert_int_eq(eng_pool_width(1e12), 2);
    eng_pool_enter();                                   // two at once: one thread each
    ck_assert_int_eq(eng_pool_width(1e12), 1);
    eng_pool_leave();
    ck_assert_int_eq(eng_pool_width(1e12), 2);
    eng_pool_leave();
    eng_pool_stop();
    ck_assert_int_eq(eng_pool_start(4), 0);             // 4 threads, 2 steps: 2 each
    eng_pool_enter();
    eng_pool_enter();
    ck_assert_int_eq(eng_pool_width(1e12), 2);
    eng_pool_leave();
    eng_pool_leave();
    eng_pool_stop();
}
END_TEST

// ---------------------------------------------------------------- split linears
// eng_par_linears == eng_linear_forward_rowwise bit for bit, for row counts
// 1..17, column counts around the 16-column rounding, biases or not, with
// the pool off and on (every op split: threshold 0).
START_TEST(test_par_linear_bits) {
    enum { C = 67, MAXN = 17 };
    static const int ocs[] = {1, 5, 16, 33, 130, 257};
    enum { NOC = sizeof ocs / sizeof ocs[0] };
    float *in = malloc(MAXN * C * sizeof(float)), *w[NOC], *b[NOC], *want[NOC], *got[NOC];
    tu_fill(in, MAXN * C, -1, 1);
    for (int k = 0; k < NOC; k++) {
        w[k] = malloc((size_t)ocs[k] * C * sizeof(float));
        b[k] = malloc((size_t)ocs[k] * sizeof(float));
        want[k] = malloc((size_t)MAXN * ocs[k] * sizeof(float));
        got[k] = malloc((size_t)MAXN * ocs[k] * sizeof(float));
        tu_fill(w[k], (size_t)ocs[k] * C, -1, 1);
        tu_fill(b[k], (size_t)ocs[k], -1, 1);
    }
    eng_pool_set_min_flops(0);
    for (int pool = 1; pool <= 3; pool++) {
        ck_assert_int_eq(eng_pool_start(pool), 0);
        for (int N = 1; N <= MAXN; N++)
            for (int bias = 0; bias < 2; bias++) {
                eng_par_lin lins[NOC];
                for (int k = 0; k < NOC; k++) {
                    eng_linear_forward_rowwise(want[k], in, w[k], bias ? b[k] : NULL, N, C, ocs[k]);
                    lins[k] = (eng_par_lin){.out = got[k], .w = w[k], .b = bias ? b[k] : NULL, .OC = ocs[k]};
                    memset(got[k], 0xff, (size_t)N * ocs[k] * sizeof(float));
                }
                eng_par_linears(lins, NOC, in, N, C);   // all at once (one cut over every column)
                for (int k = 0; k < NOC; k++)
                    ck_assert_msg(!memcmp(got[k], want[k], (size_t)N * ocs[k] * sizeof(float)),
                                  "pool %d N %d OC %d bias %d: eng_par_linears differs", pool, N, ocs[k], bias);
                for (int k = 0; k < NOC; k++) {   // one at a time
                    memset(got[k], 0xff, (size_t)N * ocs[k] * sizeof(float));
                    eng_par_linear(got[k], in, w[k], bias ? b[k] : NULL, N, C, ocs[k]);
                    ck_assert_msg(!memcmp(got[k], want[k], (size_t)N * ocs[k] * sizeof(float)),
                                  "pool %d N %d OC %d bias %d: eng_par_linear differs", pool, N, ocs[k], bias);
                }
            }
        eng_pool_stop();
    }
    for (int k = 0; k < NOC; k++) { free(w[k]); free(b[k]); free(want[k]); free(got[k]); }
    free(in);
}
END_TEST

// The fused activations: a GELU layer and eng_par_swiglu == the linears
// followed by eng_gelu_forward / eng_swiglu_forward over the whole output,
// bit for bit, for every row count and pool size (the tasks apply them to
// the column ranges they computed).
START_TEST(test_par_fused_act_bits) {
    enum { C = 45, MAXN = 9, H = 147 };
    float *in = malloc(MAXN * C * sizeof(float)), *wg = malloc(H * C * sizeof(float)), *wu = malloc(H * C * sizeof(float));
    float *bg = malloc(H * sizeof(float)), *want = malloc(MAXN * H * sizeof(float)), *up = malloc(MAXN * H * sizeof(float));
    float *got = malloc(MAXN * H * sizeof(float)), *scratch = malloc(MAXN * H * sizeof(float));
    tu_fill(in, MAXN * C, -2, 2);
    tu_fill(wg, H * C, -1, 1);
    tu_fill(wu, H * C, -1, 1);
    tu_fill(bg, H, -1, 1);
    eng_pool_set_min_flops(0);
    for (int pool = 1; pool <= 3; pool++) {
        ck_assert_int_eq(eng_pool_start(pool), 0);
        for (int N = 1; N <= MAXN; N++) {
            eng_linear_forward_rowwise(want, in, wg, bg, N, C, H);   // GELU(in Wg^T + b)
            eng_gelu_forward(want, want, (size_t)N * H);
            memset(got, 0xff, (size_t)N * H * sizeof(float));
            eng_par_lin fc = {.out = got, .w = wg, .b = bg, .OC = H, .act = ENG_PAR_ACT_GELU};
            eng_par_linears(&fc, 1, in, N, C);
            ck_assert_msg(!memcmp(got, want, (size_t)N * H * sizeof(float)), "pool %d N %d: fused GELU differs", pool, N);
            eng_linear_forward_rowwise(want, in, wg, NULL, N, C, H);   // silu(in Wg^T) * in Wu^T
            eng_linear_forward_rowwise(up, in, wu, NULL, N, C, H);
            eng_swiglu_forward(want, want, up, (size_t)N * H);
            memset(got, 0xff, (size_t)N * H * sizeof(float));
            eng_par_lin g = {.out = got, .w = wg, .OC = H}, u = {.out = scratch, .w = wu, .OC = H};
            eng_par_swiglu(&g, &u, in, NULL, N, C);
            ck_assert_msg(!memcmp(got, want, (size_t)N * H * sizeof(float)), "pool %d N %d: eng_par_swiglu differs", pool, N);
        }
        eng_pool_stop();
    }
    free(in); free(wg); free(wu); free(bg); free(want); free(up); free(got); free(scratch);
}
END_TEST

static Suite *pool_suite(void) {
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 120);   // a lost wake-up hangs: the timeout turns it into a failure
    tcase_add_loop_test(tc, test_every_task_once, 0, sizeof pool_sizes / sizeof pool_sizes[0]);
    tcase_add_test(tc, test_two_threads_run_together);
    tcase_add_test(tc, test_many_tiny_jobs);
    tcase_add_test(tc, test_nested);
    tcase_add_test(tc, test_concurrent_callers);
    tcase_add_test(tc, test_start_stop_cycles);
    tcase_add_test(tc, test_width);
    tcase_add_test(tc, test_par_linear_bits);
    tcase_add_test(tc, test_par_fused_act_bits);
    suite_add_tcase(s, tc);
    return s;
}

// TSan: cc -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=thread -I. -I/usr/include/x86_64-linux-gnu/openblas-pthread
//   tests/unit/test_pool.c engine/core/pool.c engine/core/ops_par.c engine/core/ops.c engine/core/gemm.c engine/core/cpu.c
//   engine/core/util.c
//   $(pkg-config --cflags --libs check jansson) -lopenblas -lm -lpthread -o /tmp/test_pool_tsan && CK_FORK=no /tmp/test_pool_tsan
int main(void) {
    SRunner *sr = srunner_create(pool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
