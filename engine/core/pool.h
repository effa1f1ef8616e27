// pool.h — the process-wide compute pool: a parallel-for over a few
// threads, so that one model step uses every core.
//
// DESIGN. One pool per process (threads = the daemon's compute_threads,
// default the online CPUs; 1 = no pool thread at all). eng_pool_for(n, fn,
// ctx) runs fn(ctx, 0..n-1), each task exactly once, and returns when all
// have finished; the calling thread takes tasks too, so a pool of T threads
// has T-1 helper threads. Tasks are claimed one at a time from a shared
// counter: a helper that is slow to wake (the machine is shared) simply gets
// fewer tasks, the caller never waits for a thread that has not started.
// Results must not depend on which thread runs a task (batch invariance:
// callers split work into tasks by fixed ranges, never by thread).
//
// Waiting: helpers spin for a short bounded time after a job (the next op of
// a step follows within microseconds), then sleep on a futex; OpenBLAS must
// be single-threaded when its calls run inside tasks (PERF-NOTES: spinning
// pools fight on 2 vCPUs).
//
// Who runs inline (no helper woken, tasks in order on the calling thread):
// a pool of 1 thread; n <= 1; a call from inside a task (nesting); and a
// call made while another thread holds the pool: the second one runs its
// tasks on its own thread. Callers ask eng_pool_width how many tasks an op
// is worth: tiny ops (a 1 MB model) stay inline, where waking a helper would
// cost more than the op; and when two server workers step two models at
// once (both inside eng_pool_enter/leave) each gets threads / 2, so the
// cores are not asked for more threads than they have.
#ifndef ENG_POOL_H
#define ENG_POOL_H

// Starts the pool with `threads` threads in all (the caller included):
// threads - 1 helpers. threads <= 1 or a second call: nothing. Returns 0, or
// -1 when no helper could be started (the pool then runs everything inline).
int eng_pool_start(int threads);
// Stops and joins the helpers (no eng_pool_for may be running); the pool then
// runs inline until started again.
void eng_pool_stop(void);
// Threads a parallel-for can use: 1 + helpers (1 when not started).
int eng_pool_threads(void);

// Runs fn(ctx, task) for task = 0..n_tasks-1, each exactly once, on the pool
// (the caller takes part) or inline (see above); returns when all are done.
void eng_pool_for(int n_tasks, void (*fn)(void *ctx, int task), void *ctx);

// How many tasks an op of `flops` floating-point operations is worth
// splitting into: 1 below the threshold (eng_pool_min_flops), when the pool
// is off, or inside a task; else eng_pool_threads() shared out among the
// callers inside eng_pool_enter/leave (2 threads, 2 callers: 1 each).
int eng_pool_width(double flops);
// Brackets a unit of work that splits its ops (a model step). While several
// callers are inside, each splits into threads / callers (at least 1): two
// workers stepping two models on 2 cores then run one thread each instead
// of three threads fighting for two cores.
void eng_pool_enter(void);
void eng_pool_leave(void);
// The threshold (default 2e5: ~5 µs of work on one core, the order of a
// futex wake). Tests set it to 0 to force splitting.
double eng_pool_min_flops(void);
void eng_pool_set_min_flops(double flops);

// Inside a task: the index (0 = the caller, 1.. = helpers) of the thread
// running it, below eng_pool_threads(): for per-thread scratch buffers.
// Outside the pool: 0.
int eng_pool_self(void);

#endif
