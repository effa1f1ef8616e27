// pool.c — the compute pool (see pool.h for the design).
//
// A job is published in one 64-bit word: generation (high 32 bits), task
// count (16 bits) and the next unclaimed task (16 bits). A thread claims a
// task with a compare-and-swap on that word; a claim that succeeds for task
// t < n proves the job is still the current one (its caller waits for task
// t), so fn/ctx, written before the word, are valid. A helper that wakes
// late finds no task left (or a new generation) and goes back to waiting;
// nothing of an old job is touched after its caller returns.
//
// Sleeping uses futexes with a Dekker-style check (seq_cst atomics): the
// sleeper announces itself, then sleeps only if the word it waits on still
// has the value it saw; the waker changes the word, then wakes if anyone
// announced. So a wake-up is never lost and an awake pool makes no syscall.
#include "engine/core/pool.h"

#include <limits.h>        // INT_MAX
#include <linux/futex.h>   // FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE
#include <pthread.h>       // pthread_create, pthread_join
#include <stdatomic.h>     // atomics
#include <stdint.h>        // uint64_t, uint32_t
#include <stdlib.h>        // calloc, free
#include <sys/syscall.h>   // SYS_futex
#include <unistd.h>        // syscall
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>     // _mm_pause
#define POOL_PAUSE() _mm_pause()
#else
#define POOL_PAUSE() ((void)0)
#endif

enum {
    POOL_MAX_THREADS = 256,
    POOL_MAX_TASKS = 0xffff,   // the task count's 16 bits; more run in rounds
    // Pause iterations a helper spins for the next job before sleeping, and
    // the caller for the last task before sleeping: ~30-60 µs on this Zen 4
    // (a pause is ~10-20 ns). Long enough to span the serial bits between
    // two ops of a step, short enough not to steal a shared core for long.
    POOL_SPIN = 3000,
};

static struct {
    int threads;                 // 1 + helpers
    pthread_t *tid;              // [threads - 1]
    _Atomic uint64_t job;        // gen << 32 | n << 16 | next
    _Atomic uint32_t gen;        // futex word helpers sleep on: bumped per job and at stop
    _Atomic uint32_t done;       // tasks of the current job finished; futex word of the caller
    _Atomic int sleepers;        // helpers inside (or about to enter) a futex wait
    _Atomic int caller_sleeps;   // the caller is inside (or about to enter) its wait
    _Atomic int busy;            // a caller holds the pool
    _Atomic int stop;
    void (*fn)(void *ctx, int task);
    void *ctx;
} P = {.threads = 1};

static _Atomic double min_flops = 2e5;
static _Atomic int active;               // callers between eng_pool_enter and eng_pool_leave
static _Thread_local int self_index;     // 0: a caller; 1..: helper
static _Thread_local int in_task;        // inside a task: nested calls run inline

static void futex_wait(_Atomic uint32_t *w, uint32_t seen) {
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w, int n) {
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

// Claims and runs tasks of the published job until none is left (the last
// finisher wakes a sleeping caller).
static void run_tasks(void) {
    uint64_t j = atomic_load(&P.job);
    for (;;) {
        uint32_t n = (uint32_t)(j >> 16) & 0xffff, next = (uint32_t)j & 0xffff;
        if (next >= n) return;
        if (!atomic_compare_exchange_weak(&P.job, &j, j + 1)) continue;   // j reloaded
        in_task = 1;
        P.fn(P.ctx, (int)next);
        in_task = 0;
        if (atomic_fetch_add(&P.done, 1) + 1 == n && atomic_load(&P.caller_sleeps)) futex_wake(&P.done, 1);
        j = atomic_load(&P.job);
    }
}

static uint32_t start_gen;   // gen when the helpers were started: jobs after it are theirs

static void *helper_main(void *arg) {
    self_index = (int)(intptr_t)arg;
    uint32_t seen = start_gen;   // not gen now: a job (or stop) may already be published
    for (;;) {
        uint32_t g;
        for (int i = 0; i < POOL_SPIN && (g = atomic_load(&P.gen)) == seen; i++) POOL_PAUSE();
        while ((g = atomic_load(&P.gen)) == seen) {
            atomic_fetch_add(&P.sleepers, 1);
            futex_wait(&P.gen, seen);   // returns at once if gen moved on
            atomic_fetch_sub(&P.sleepers, 1);
        }
        seen = g;
        if (atomic_load(&P.stop)) return NULL;
        run_tasks();
    }
}

int eng_pool_start(int threads) {
    if (P.threads > 1 || threads <= 1) return 0;
    if (threads > POOL_MAX_THREADS) threads = POOL_MAX_THREADS;
    P.tid = calloc((size_t)threads - 1, sizeof *P.tid);
    if (!P.tid) return -1;
    atomic_store(&P.stop, 0);
    start_gen = atomic_load(&P.gen);
    int started = 0;
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&P.tid[i - 1], NULL, helper_main, (void *)(intptr_t)i) != 0) break;
        started++;
    }
    P.threads = 1 + started;
    if (started == 0) { free(P.tid); P.tid = NULL; return -1; }
    return 0;
}

void eng_pool_stop(void) {
    if (P.threads <= 1) return;
    atomic_store(&P.stop, 1);
    atomic_fetch_add(&P.gen, 1);
    futex_wake(&P.gen, INT_MAX);
    for (int i = 0; i < P.threads - 1; i++) pthread_join(P.tid[i], NULL);
    free(P.tid);
    P.tid = NULL;
    P.threads = 1;
}

int eng_pool_threads(void) { return P.threads; }

double eng_pool_min_flops(void) { return atomic_load(&min_flops); }

void eng_pool_set_min_flops(double flops) { atomic_store(&min_flops, flops); }

int eng_pool_width(double flops) {
    if (P.threads <= 1 || in_task || flops < atomic_load(&min_flops)) return 1;
    int a = atomic_load(&active), w = a > 1 ? P.threads / a : P.threads;
    return w > 1 ? w : 1;
}

void eng_pool_enter(void) { atomic_fetch_add(&active, 1); }

void eng_pool_leave(void) { atomic_fetch_sub(&active, 1); }

int eng_pool_self(void) { return self_index; }

static void run_inline(int n_tasks, void (*fn)(void *ctx, int task), void *ctx) {
    int was = in_task;
    in_task = 1;
    for (int t = 0; t < n_tasks; t++) fn(ctx, t);
    in_task = was;
}

// One job of n <= POOL_MAX_TASKS tasks (the pool held by this caller).
static void run_job(int n, void (*fn)(void *ctx, int task), void *ctx) {
    P.fn = fn;
    P.ctx = ctx;
    atomic_store(&P.done, 0);
    uint64_t g = (atomic_load(&P.job) >> 32) + 1;
    atomic_store(&P.job, g << 32 | (uint64_t)n << 16);   // publishes fn/ctx (seq_cst store)
    atomic_fetch_add(&P.gen, 1);
    if (atomic_load(&P.sleepers)) futex_wake(&P.gen, INT_MAX);
    run_tasks();
    // the helpers' last tasks: spin, then sleep until the last one wakes us
    for (int i = 0; i < POOL_SPIN && atomic_load(&P.done) != (uint32_t)n; i++) POOL_PAUSE();
    for (uint32_t d; (d = atomic_load(&P.done)) != (uint32_t)n;) {
        atomic_store(&P.caller_sleeps, 1);
        if (atomic_load(&P.done) == d) futex_wait(&P.done, d);
        atomic_store(&P.caller_sleeps, 0);
    }
}

// Tasks t0.. of a call with more tasks than one job word holds.
typedef struct {
    void (*fn)(void *ctx, int task);
    void *ctx;
    int t0;
} offset_ctx;

static void offset_task(void *c, int task) {
    offset_ctx *o = c;
    o->fn(o->ctx, o->t0 + task);
}

void eng_pool_for(int n_tasks, void (*fn)(void *ctx, int task), void *ctx) {
    if (n_tasks <= 0) return;
    if (n_tasks == 1 || P.threads <= 1 || in_task || atomic_exchange(&P.busy, 1)) {
        run_inline(n_tasks, fn, ctx);
        return;
    }
    for (int t0 = 0; t0 < n_tasks; t0 += POOL_MAX_TASKS) {
        int n = n_tasks - t0 < POOL_MAX_TASKS ? n_tasks - t0 : POOL_MAX_TASKS;
        offset_ctx o = {fn, ctx, t0};
        if (t0 == 0) run_job(n, fn, ctx);
        else run_job(n, offset_task, &o);
    }
    atomic_store(&P.busy, 0);
}
