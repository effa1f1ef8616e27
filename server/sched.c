// sched.c — queues, batcher, workers (see sched.h for the design).
#include "server/sched.h"
#include <pthread.h>          // threads, mutex, condvar
#include <setjmp.h>           // the out-of-memory recovery point of a batch
#include <time.h>             // clock_gettime
#include "engine/core/util.h"      // eng_now, eng_xcalloc, eng_aligned
#include "server/log.h"       // log_debug
#include "server/metrics.h"   // srv_metrics_batch, srv_metrics_queue_depth

// One per model that was ever queued on (srv_model.slot), freed with the model.
typedef struct srv_sched_slot {
    srv_model *model;            // owner (no reference: the slot dies with the model)
    srv_request *head, *tail;    // FIFO of queued requests (lock)
    int depth;                   // queued items (lock)
    struct srv_sched_slot *qnext;   // link in qlist (lock)
    int in_qlist;                // 1 while linked there (lock)
    int stepping;                // continuous runner: a worker is running a step now (lock)
    int n_running;               // continuous runner: requests being generated (lock)
    void *runner_state;          // continuous runner's private state, or NULL (the stepping worker)
    void (*runner_state_free)(void *state);
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;             // CLOCK_MONOTONIC condvar: work arrived / stop
static slot *qlist;                   // models with queued or running work
static int stopping, draining, queued_total;
static pthread_t *threads;
static srv_worker *workers;
static int n_workers;
static srv_task_runner runners[ENG_TASK__COUNT];
static srv_task_stepper steppers[ENG_TASK__COUNT];
static srv_task_abort aborters[ENG_TASK__COUNT];

void srv_sched_set_stepper(int task, srv_task_stepper step, srv_task_abort abort) {
    if (task >= 0 && task < ENG_TASK__COUNT) { steppers[task] = step; aborters[task] = abort; }
}

void srv_sched_set_runner(int task, srv_task_runner run) {
    if (task >= 0 && task < ENG_TASK__COUNT) runners[task] = run;
}

// Grows a worker buffer; NULL (buffer dropped) when memory runs out.
static float *grow(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        free(*buf);
        *buf = eng_aligned(n * sizeof(float));
        *cap = *buf ? n : 0;
    }
    return *buf;
}

float *srv_worker_buf(srv_worker *w, size_t n) { return grow(&w->buf, &w->buf_cap, n); }
float *srv_worker_out(srv_worker *w, size_t n) { return grow(&w->out, &w->out_cap, n); }

// Runs one batch with a recovery point for memory running out mid-forward
// (engine/core/arena.h): the batch is answered 503, the worker keeps serving.
static void run_guarded(srv_task_runner run, srv_worker *w, srv_model *m, srv_request **batch, int n) {
    jmp_buf jb;
    if (setjmp(jb) == 0) {
        eng_arena_set_oom_jump(&jb);
        run(w, m, batch, n);
    } else {
        eng_tape_reset(&w->tape);
        for (int i = 0; i < n; i++)
            srv_request_fail(batch[i], SRV_E_UNAVAILABLE, NULL, "out of memory while running model %s; retry later", m->id);
    }
    eng_arena_set_oom_jump(NULL);
}

// ---------------------------------------------------------------- per-model slots
static void slot_free(slot *q) {
    if (!q) return;
    if (q->runner_state_free) q->runner_state_free(q->runner_state);
    free(q);
}

// m's slot, created on first use; NULL when memory runs out. Lock held.
static slot *slot_of(srv_model *m) {
    if (!m->slot) {
        slot *q = calloc(1, sizeof *q);
        if (!q) return NULL;
        q->model = m;
        m->slot = q;
        m->slot_free = slot_free;
    }
    return m->slot;
}

void *srv_sched_runner_state(srv_model *m) { return m->slot ? m->slot->runner_state : NULL; }

void srv_sched_set_runner_state(srv_model *m, void *state, void (*free_fn)(void *state)) {
    m->slot->runner_state = state;
    m->slot->runner_state_free = free_fn;
}

// ---------------------------------------------------------------- queue ops (lock held)
static void qlist_remove(slot *q) {
    for (slot **p = &qlist; *p; p = &(*p)->qnext)
        if (*p == q) { *p = q->qnext; break; }
    q->qnext = NULL;
    q->in_qlist = 0;
}

static void qlist_add(slot *q) {
    if (!q->in_qlist) { q->qnext = qlist; qlist = q; q->in_qlist = 1; }
}

static void set_depth(slot *q, int depth) {
    q->depth = depth;
    atomic_store(&q->model->queue_depth, depth);
}

// Unlinks r from q (r must be in it; prev is the request before it or NULL).
static void queue_remove(slot *q, srv_request *r, srv_request *prev) {
    if (prev) prev->queue.next = r->queue.next; else q->head = r->queue.next;
    if (q->tail == r) q->tail = prev;
    r->queue.next = NULL;
    set_depth(q, q->depth - r->n_items);
    queued_total -= r->n_items;
    if (!q->head && q->n_running == 0 && !q->stepping) qlist_remove(q);
}

// Pops q's head for running.
static srv_request *queue_pop(slot *q) {
    srv_request *r = q->head;
    queue_remove(q, r, NULL);
    atomic_store(&r->state, SRV_REQ_RUNNING);
    return r;
}

srv_err srv_sched_submit(srv_request *r) {
    srv_model *m = r->model;
    pthread_mutex_lock(&mu);
    if (stopping) { pthread_mutex_unlock(&mu); return SRV_E_UNAVAILABLE; }
    slot *q = slot_of(m);
    if (!q) { pthread_mutex_unlock(&mu); return SRV_E_UNAVAILABLE; }
    if (q->depth + r->n_items > m->max_queue_size) { pthread_mutex_unlock(&mu); return SRV_E_QUEUE_FULL; }
    atomic_store(&r->state, SRV_REQ_QUEUED);
    r->queue.t_queued = eng_now();
    r->queue.next = NULL;
    if (q->tail) q->tail->queue.next = r; else q->head = r;
    q->tail = r;
    set_depth(q, q->depth + r->n_items);
    queued_total += r->n_items;
    qlist_add(q);
    srv_request_ref(r);   // the scheduler's reference: dropped after completion
    int depth = q->depth;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    srv_metrics_queue_depth(m->id, depth);
    return SRV_OK;
}

// Moves requests that are past their deadline or known to be abandoned
// (no system call: the `gone` flags were set outside the lock) from the
// queues into *out (a linked list), setting their responses. Lock held.
static void collect_dead(double now, srv_request **out) {
    for (slot *q = qlist, *qnext; q; q = qnext) {
        qnext = q->qnext;
        srv_request *prev = NULL;
        for (srv_request *r = q->head, *rnext; r; r = rnext) {
            rnext = r->queue.next;
            int late = now >= r->deadline, gone = !late && srv_request_known_gone(r);
            if (!late && !gone) { prev = r; continue; }
            queue_remove(q, r, prev);
            srv_metrics_queue_depth(q->model->id, q->depth);
            if (late) srv_request_fail(r, SRV_E_TIMEOUT, NULL, "request waited past its deadline (%d ms) in the queue of model %s", q->model->timeout_ms, q->model->id);
            else srv_request_fail(r, SRV_E_CLIENT_GONE, NULL, "client closed the connection");
            r->queue.next = *out;
            *out = r;
        }
    }
}

// Completes each request of the list and drops the scheduler's reference. No lock held.
static void complete_list(srv_request *r) {
    while (r) {
        srv_request *next = r->queue.next;
        r->queue.next = NULL;
        srv_request_complete(r);
        srv_request_unref(r);
        r = next;
    }
}

// Answers the requests of reqs[0..n) whose client has gone (a socket peek
// each: no lock held) and compacts the rest to the front. Returns how many remain.
static int drop_gone(srv_request **reqs, int n) {
    int kept = 0;
    for (int i = 0; i < n; i++) {
        srv_request *r = reqs[i];
        if (!srv_request_check_gone(r)) { reqs[kept++] = r; continue; }
        srv_request_fail(r, SRV_E_CLIENT_GONE, NULL, "client closed the connection");
        srv_request_complete(r);
        srv_request_unref(r);
    }
    return kept;
}

int srv_sched_take(srv_model *m, srv_request **out, int max) {
    int n = 0, popped = 1;
    while (n < max && popped) {   // again when a taken client had gone: the queue may hold more
        srv_request *dead = NULL;
        int from = n;
        pthread_mutex_lock(&mu);
        collect_dead(eng_now(), &dead);
        slot *q = m->slot;   // exists: the stepper runs because m was queued on
        while (q->head && n < max) out[n++] = queue_pop(q);
        popped = n - from;
        int depth = q->depth;
        pthread_mutex_unlock(&mu);
        complete_list(dead);
        if (popped) srv_metrics_queue_depth(m->id, depth);
        n = from + drop_gone(out + from, popped);
        for (int i = n; i < from + popped; i++) out[i] = NULL;   // answered: no stale pointer for the caller
    }
    return n;
}

void srv_sched_sweep(void) {
    // 1. peek every queued client's socket outside the lock (each request
    //    held by a reference meanwhile); 2. answer the late and the gone
    static srv_request **peek;
    static int peek_cap;
    int n = 0;
    pthread_mutex_lock(&mu);
    for (slot *q = qlist; q; q = q->qnext)
        for (srv_request *r = q->head; r; r = r->queue.next) {
            if (n == peek_cap) {   // grows to the most ever queued, then stays
                srv_request **bigger = realloc(peek, (size_t)(peek_cap ? 2 * peek_cap : 256) * sizeof *bigger);
                if (!bigger) goto peeked;   // out of memory: peek these now, the rest on a later sweep
                peek = bigger;
                peek_cap = peek_cap ? 2 * peek_cap : 256;
            }
            srv_request_ref(r);
            peek[n++] = r;
        }
peeked:
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++) {
        srv_request_check_gone(peek[i]);
        srv_request_unref(peek[i]);
    }
    srv_request *dead = NULL;
    pthread_mutex_lock(&mu);
    collect_dead(eng_now(), &dead);
    pthread_mutex_unlock(&mu);
    complete_list(dead);
}

// Picks the ready model whose head waited longest; sets *wait_until to the
// earliest time a non-ready queue becomes ready (or 0 if none). Lock held.
static slot *pick_ready(double now, double *wait_until) {
    slot *best = NULL;
    *wait_until = 0;
    for (slot *q = qlist; q; q = q->qnext) {
        if (q->stepping) continue;            // a worker is stepping it
        if (!q->head) {                       // only running sequences: always ready
            if (!best) best = q;
            continue;
        }
        double arrived = q->head->queue.t_queued;   // the head is the oldest (and first to expire)
        double ready_at = arrived + q->model->max_queue_delay_us / 1e6;
        if (q->depth >= q->model->max_batch_size || now >= ready_at || draining || q->n_running > 0) {
            if (!best || !best->head || arrived < best->head->queue.t_queued) best = q;
            continue;
        }
        double wake = ready_at < q->head->deadline ? ready_at : q->head->deadline;
        if (*wait_until == 0 || wake < *wait_until) *wait_until = wake;
    }
    return best;
}

static void timed_wait(double until_monotonic) {
    // eng_now() is CLOCK_MONOTONIC; the condvar uses CLOCK_MONOTONIC too
    struct timespec ts;
    ts.tv_sec = (time_t)until_monotonic;
    ts.tv_nsec = (long)((until_monotonic - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_cond_timedwait(&cv, &mu, &ts);
}

// Whether a model other than q has work a worker could start now (or once
// its batching delay ends). Lock held.
static int other_ready(const slot *q) {
    for (const slot *o = qlist; o; o = o->qnext)
        if (o != q && !o->stepping) return 1;
    return 0;
}

// One step of the continuous runner of q's model: lock held on entry and on return.
static void run_step(srv_worker *w, slot *q, srv_task_stepper step) {
    srv_model *m = q->model;
    q->stepping = 1;
    srv_model_ref(m);
    pthread_mutex_unlock(&mu);
    int running = step(w, m);
    pthread_mutex_lock(&mu);
    q->stepping = 0;
    q->n_running = running;
    if (q->head || running > 0) qlist_add(q); else qlist_remove(q);
    // This worker looks for work again at once (and takes q's next step when
    // nothing waited longer), so wake another one only when some other model
    // waits: a wake-up per step would put an idle worker on a core the
    // step's compute pool is using, then send it back to sleep.
    if (other_ready(q)) pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    srv_model_unref(m);   // may free m and q: not under the lock
    pthread_mutex_lock(&mu);
}

// Takes whole requests from q up to max_batch_size items (a request is never
// split) into batch[]; returns how many. Lock held.
static int take_batch(slot *q, srv_request **batch, int cap) {
    int n = 0, items = 0;
    while (q->head && n < cap && (n == 0 || items + q->head->n_items <= q->model->max_batch_size)) {
        items += q->head->n_items;
        batch[n++] = queue_pop(q);
    }
    return n;
}

// Runs a batch of m's requests (no lock held) and completes each one.
static void run_batch(srv_worker *w, srv_model *m, srv_request **batch, int n) {
    n = drop_gone(batch, n);   // clients that left while queued cost no compute
    if (n == 0) return;
    int items = 0;
    for (int i = 0; i < n; i++) items += batch[i]->n_items;
    srv_metrics_batch(m->id, items);
    atomic_fetch_add(&m->n_batches, 1);
    atomic_fetch_add(&m->n_items, items);
    atomic_fetch_add(&m->n_requests, n);
    srv_task_runner run = runners[m->m->task];
    if (run) {
        run_guarded(run, w, m, batch, n);
    } else {
        for (int i = 0; i < n; i++)
            srv_request_fail(batch[i], SRV_E_NOT_IMPLEMENTED, "model", "task %s is not served by this build", eng_task_name(m->m->task));
    }
    for (int i = 0; i < n; i++) {
        srv_request_complete(batch[i]);
        srv_request_unref(batch[i]);
    }
}

static void *worker_main(void *arg) {
    srv_worker *w = arg;
    srv_request **batch = eng_xcalloc(1024, sizeof *batch);
    pthread_mutex_lock(&mu);
    while (!stopping) {
        double now = eng_now(), wait_until;
        srv_request *dead = NULL;
        collect_dead(now, &dead);
        slot *q = pick_ready(now, &wait_until);
        if (dead) {   // answer them outside the lock, then look again
            pthread_mutex_unlock(&mu);
            complete_list(dead);
            pthread_mutex_lock(&mu);
            continue;
        }
        if (!q) {
            if (wait_until > 0) timed_wait(wait_until);
            else pthread_cond_wait(&cv, &mu);
            continue;
        }
        srv_model *m = q->model;
        srv_task_stepper step = steppers[m->m->task];
        if (step) { run_step(w, q, step); continue; }   // continuous batching
        int n = take_batch(q, batch, 1024);
        int depth = q->depth;
        srv_model_ref(m);   // keeps the model alive while the lock is released
        if (qlist) pthread_cond_signal(&cv);   // more work: wake another worker
        pthread_mutex_unlock(&mu);
        srv_metrics_queue_depth(m->id, depth);
        run_batch(w, m, batch, n);
        srv_model_unref(m);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    free(batch);
    return NULL;
}

int srv_sched_start(int nw) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    n_workers = nw;
    stopping = draining = 0;
    threads = eng_xcalloc((size_t)nw, sizeof *threads);
    workers = eng_xcalloc((size_t)nw, sizeof *workers);
    for (int i = 0; i < nw; i++) {
        workers[i].index = i;
        eng_tape_init(&workers[i].tape, 0, 0);
        if (pthread_create(&threads[i], NULL, worker_main, &workers[i]) != 0) {
            log_error("cannot start worker thread %d", i);
            n_workers = i;
            srv_sched_stop();
            return -1;
        }
    }
    return 0;
}

void srv_sched_stop(void) {
    srv_request *rest = NULL;
    pthread_mutex_lock(&mu);
    stopping = 1;
    for (slot *q = qlist, *qnext; q; q = qnext) {
        qnext = q->qnext;
        while (q->head) {
            srv_request *r = q->head;
            queue_remove(q, r, NULL);
            srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "server is shutting down");
            r->queue.next = rest;
            rest = r;
        }
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    complete_list(rest);
    for (int i = 0; i < n_workers; i++) pthread_join(threads[i], NULL);
    // continuous runners: answer what they still run (workers are gone, no lock needed)
    for (slot *q = qlist; q; q = q->qnext)
        if (q->n_running > 0 && aborters[q->model->m->task]) aborters[q->model->m->task](q->model);
    for (int i = 0; i < n_workers; i++) {
        eng_tape_free(&workers[i].tape);
        free(workers[i].buf);
        free(workers[i].out);
    }
    free(threads); free(workers);
    threads = NULL; workers = NULL; n_workers = 0;
    pthread_cond_destroy(&cv);
}

void srv_sched_set_draining(int on) {
    pthread_mutex_lock(&mu);
    draining = on;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

int srv_sched_queued(void) {
    pthread_mutex_lock(&mu);
    int n = queued_total;
    pthread_mutex_unlock(&mu);
    return n;
}
