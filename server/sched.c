// sched.c — queues, batcher, workers (see sched.h for the design).
#include "server/sched.h"
#include <errno.h>            // EAGAIN
#include <pthread.h>          // threads, mutex, condvar
#include <setjmp.h>           // the out-of-memory recovery point of a batch
#include <string.h>           // memset
#include <sys/socket.h>       // recv
#include <time.h>             // clock_gettime
#include "engine/core/util.h"      // eng_now, eng_xcalloc
#include "server/log.h"       // log_debug
#include "server/metrics.h"   // srv_metrics_batch, srv_metrics_queue_depth

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;             // CLOCK_MONOTONIC condvar: work arrived / stop
static srv_model *qlist;              // models with queued requests
static int stopping, draining, queued_total;
static pthread_t *threads;
static srv_worker *workers;
static int n_workers;
static srv_complete_fn complete_cb;
static srv_task_runner runners[ENG_TASK__COUNT];
static srv_task_stepper steppers[ENG_TASK__COUNT];
static srv_task_abort aborters[ENG_TASK__COUNT];

void srv_sched_set_stepper(int task, srv_task_stepper step, srv_task_abort abort) {
    if (task >= 0 && task < ENG_TASK__COUNT) { steppers[task] = step; aborters[task] = abort; }
}

void srv_sched_set_runner(int task, srv_task_runner run) {
    if (task >= 0 && task < ENG_TASK__COUNT) runners[task] = run;
}

int srv_client_gone(const srv_request *r) {
    if (r->client_fd < 0) return 0;
    char c;
    ssize_t n = recv(r->client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
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

// ---------------------------------------------------------------- queue ops (lock held)
static void qlist_remove(srv_model *m) {
    for (srv_model **p = &qlist; *p; p = &(*p)->qnext)
        if (*p == m) { *p = m->qnext; break; }
    m->qnext = NULL;
    m->in_qlist = 0;
}

// Unlinks r from m's queue (r must be in it).
static void queue_remove(srv_model *m, srv_request *r, srv_request *prev) {
    if (prev) prev->next = r->next; else m->head = r->next;
    if (m->tail == r) m->tail = prev;
    r->next = NULL;
    m->depth -= r->n_items;
    queued_total -= r->n_items;
    if (!m->head && m->n_running == 0 && !m->stepping) qlist_remove(m);
}

static void qlist_add(srv_model *m) {
    if (!m->in_qlist) { m->qnext = qlist; qlist = m; m->in_qlist = 1; }
}

srv_err srv_sched_submit(srv_request *r) {
    srv_model *m = r->model;
    pthread_mutex_lock(&mu);
    if (stopping) { pthread_mutex_unlock(&mu); return SRV_E_UNAVAILABLE; }
    if (m->depth + r->n_items > m->max_queue_size) { pthread_mutex_unlock(&mu); return SRV_E_QUEUE_FULL; }
    atomic_store(&r->state, SRV_REQ_QUEUED);
    r->t_queued = eng_now();
    r->next = NULL;
    if (m->tail) m->tail->next = r; else m->head = r;
    m->tail = r;
    m->depth += r->n_items;
    queued_total += r->n_items;
    qlist_add(m);
    srv_request_ref(r);   // the scheduler's reference: dropped after completion
    int depth = m->depth;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    srv_metrics_queue_depth(m->id, depth);
    return SRV_OK;
}

// Moves requests that are past their deadline or abandoned from the queues
// into *out (a linked list), setting their responses. Lock held.
static void collect_dead(double now, srv_request **out) {
    for (srv_model *m = qlist, *mnext; m; m = mnext) {
        mnext = m->qnext;
        srv_request *prev = NULL;
        for (srv_request *r = m->head, *rnext; r; r = rnext) {
            rnext = r->next;
            int late = now >= r->deadline, gone = !late && srv_client_gone(r);
            if (!late && !gone) { prev = r; continue; }
            queue_remove(m, r, prev);
            srv_metrics_queue_depth(m->id, m->depth);
            if (late) srv_request_fail(r, SRV_E_TIMEOUT, NULL, "request waited past its deadline (%d ms) in the queue of model %s", m->timeout_ms, m->id);
            else srv_request_fail(r, SRV_E_CLIENT_GONE, NULL, "client closed the connection");
            r->next = *out;
            *out = r;
        }
    }
}

static void complete_list(srv_request *r) {
    while (r) {
        srv_request *next = r->next;
        r->next = NULL;
        atomic_store(&r->state, SRV_REQ_DONE);
        complete_cb(r);
        srv_request_unref(r);
        r = next;
    }
}

int srv_sched_take(srv_model *m, srv_request **out, int max) {
    srv_request *dead = NULL;
    int n = 0;
    pthread_mutex_lock(&mu);
    collect_dead(eng_now(), &dead);
    while (m->head && n < max) {
        srv_request *r = m->head;
        queue_remove(m, r, NULL);
        atomic_store(&r->state, SRV_REQ_RUNNING);
        out[n++] = r;
    }
    int depth = m->depth;
    pthread_mutex_unlock(&mu);
    complete_list(dead);
    if (n) srv_metrics_queue_depth(m->id, depth);
    return n;
}

void srv_sched_sweep(void) {
    srv_request *dead = NULL;
    pthread_mutex_lock(&mu);
    collect_dead(eng_now(), &dead);
    pthread_mutex_unlock(&mu);
    complete_list(dead);
}

// Picks the ready model whose head waited longest; sets *wait_until to the
// earliest time a non-ready queue becomes ready (or 0 if none). Lock held.
static srv_model *pick_ready(double now, double *wait_until) {
    srv_model *best = NULL;
    *wait_until = 0;
    for (srv_model *m = qlist; m; m = m->qnext) {
        if (m->stepping) continue;            // a worker is stepping it
        if (!m->head) {                       // only running sequences: always ready
            if (!best) best = m;
            continue;
        }
        double arrived = m->head->t_queued;   // the head is the oldest (and first to expire)
        double ready_at = arrived + m->max_queue_delay_us / 1e6;
        if (m->depth >= m->max_batch_size || now >= ready_at || draining || m->n_running > 0) {
            if (!best || !best->head || arrived < best->head->t_queued) best = m;
            continue;
        }
        double wake = ready_at < m->head->deadline ? ready_at : m->head->deadline;
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

static void *worker_main(void *arg) {
    srv_worker *w = arg;
    srv_request **batch = eng_xcalloc(1024, sizeof *batch);
    pthread_mutex_lock(&mu);
    while (!stopping) {
        double now = eng_now(), wait_until;
        srv_request *dead = NULL;
        collect_dead(now, &dead);
        srv_model *m = pick_ready(now, &wait_until);
        if (dead) {   // answer them outside the lock, then look again
            pthread_mutex_unlock(&mu);
            complete_list(dead);
            pthread_mutex_lock(&mu);
            continue;
        }
        if (!m) {
            if (wait_until > 0) timed_wait(wait_until);
            else pthread_cond_wait(&cv, &mu);
            continue;
        }
        srv_task_stepper step = steppers[m->m->task];
        if (step) {   // continuous batching: one step of everything running on m
            m->stepping = 1;
            srv_model_ref(m);
            pthread_mutex_unlock(&mu);
            int running = step(w, m);
            pthread_mutex_lock(&mu);
            m->stepping = 0;
            m->n_running = running;
            if (m->head || running > 0) qlist_add(m); else qlist_remove(m);
            pthread_cond_signal(&cv);
            pthread_mutex_unlock(&mu);
            srv_model_unref(m);
            pthread_mutex_lock(&mu);
            continue;
        }
        // take whole requests up to max_batch_size items (a request is never split)
        int n = 0, items = 0;
        while (m->head && n < 1024 && (n == 0 || items + m->head->n_items <= m->max_batch_size)) {
            srv_request *r = m->head;
            queue_remove(m, r, NULL);
            atomic_store(&r->state, SRV_REQ_RUNNING);
            batch[n++] = r;
            items += r->n_items;
        }
        int depth = m->depth;
        srv_model_ref(m);   // keeps the model alive while the lock is released
        if (qlist) pthread_cond_signal(&cv);   // more work: wake another worker
        pthread_mutex_unlock(&mu);

        srv_metrics_queue_depth(m->id, depth);
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
            atomic_store(&batch[i]->state, SRV_REQ_DONE);
            complete_cb(batch[i]);
            srv_request_unref(batch[i]);
        }
        srv_model_unref(m);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    free(batch);
    return NULL;
}

int srv_sched_start(int nw, srv_complete_fn complete) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    complete_cb = complete;
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
    for (srv_model *m = qlist, *mnext; m; m = mnext) {
        mnext = m->qnext;
        while (m->head) {
            srv_request *r = m->head;
            queue_remove(m, r, NULL);
            srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "server is shutting down");
            r->next = rest;
            rest = r;
        }
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    complete_list(rest);
    for (int i = 0; i < n_workers; i++) pthread_join(threads[i], NULL);
    // continuous runners: answer what they still run (workers are gone, no lock needed)
    for (srv_model *m = qlist; m; m = m->qnext)
        if (m->n_running > 0 && aborters[m->m->task]) aborters[m->m->task](m);
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
