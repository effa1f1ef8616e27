// sched.h — per-model queues, the dynamic batcher and the worker pool.
//
// DESIGN. One lock (`mu` in sched.c) guards every model's queue and the list
// of non-empty queues; workers wait on one condition variable. A worker takes
// a batch from the model whose oldest request has waited longest among those
// that are "ready": max_batch_size items are waiting, or the oldest has waited
// max_queue_delay_us (Triton's semantics), or the daemon is draining. It
// computes with the lock released, completes each request (builds its
// response, srv_request_complete) and takes the lock again. Before compute,
// requests past their deadline are answered 504 and requests whose client has
// gone are dropped, so neither costs compute. Whether a client has gone is a
// socket peek (a system call): it runs outside the lock, on the batch a
// worker just took and in the periodic sweep, which sets the request's
// `gone` flag for the lock holders to read. A full queue is refused at
// submit time (503 + Retry-After). The queues are the scheduler's own: each
// model's lives in an opaque slot (srv_model.slot) that only sched.c reads.
// Lock order: scheduler lock, never held while calling the registry, the
// engine, libmicrohttpd or a socket.
#ifndef SRV_SCHED_H
#define SRV_SCHED_H
#include "server/registry.h"   // srv_model
#include "server/request.h"    // srv_request

// Runs a batch of `n` requests on `m` (task-specific, see api_*.c); fills each
// request's response. `worker` is the worker's private state.
typedef struct srv_worker srv_worker;
typedef void (*srv_task_runner)(srv_worker *w, srv_model *m, srv_request **reqs, int n);

// A continuous runner (text generation): called repeatedly while the model
// has queued or running work, by one worker at a time. Each call admits new
// requests with srv_sched_take() as its budget allows, advances every running
// sequence by one step, completes the finished ones, and returns how many
// requests are still running (0 = idle).
typedef int (*srv_task_stepper)(srv_worker *w, srv_model *m);

// Starts n_workers threads. Each request is completed once
// (srv_request_complete, from a worker or the sweeper) after its
// status/body are set.
int srv_sched_start(int n_workers);
// Answers every queued request 503, wakes and joins the workers.
void srv_sched_stop(void);
// Registers the runner for a task (engine/arch/model.h eng_task).
void srv_sched_set_runner(int task, srv_task_runner run);

// Registers a continuous runner for a task (instead of a batch runner);
// `abort` answers everything it still runs when the daemon stops.
typedef void (*srv_task_abort)(srv_model *m);
void srv_sched_set_stepper(int task, srv_task_stepper step, srv_task_abort abort);
// For steppers: moves up to `max` queued requests of m into out[] (their
// state becomes RUNNING); late or abandoned ones are answered instead.
// Returns how many were taken. The scheduler's reference on each request
// passes to the stepper, which drops it (srv_request_unref) when done.
int srv_sched_take(srv_model *m, srv_request **out, int max);
// A continuous runner's private per-model state (its running sequences),
// kept in the model's scheduler slot and freed with the model by `free_fn`.
// Only the worker stepping m may call these.
void *srv_sched_runner_state(srv_model *m);
void srv_sched_set_runner_state(srv_model *m, void *state, void (*free_fn)(void *state));

// Queues r on r->model (r holds a model reference). Returns SRV_OK, or
// SRV_E_QUEUE_FULL / SRV_E_UNAVAILABLE without queueing.
srv_err srv_sched_submit(srv_request *r);
// Answers queued requests that are past their deadline (504) or whose client
// has gone; called periodically from the control loop.
void srv_sched_sweep(void);
// Drain mode: batches close at once instead of waiting for more requests.
void srv_sched_set_draining(int on);
// Items queued across all models.
int srv_sched_queued(void);

// ---- per-worker state, for task runners
struct srv_worker {
    int index;            // 0..n_workers-1
    eng_tape tape;        // inference tape: its arena holds activations
    float *buf;           // batch input buffer, grown on demand (then reused)
    size_t buf_cap;       // floats
    float *out;           // batch output buffer
    size_t out_cap;       // floats
};
// Returns w->buf with room for n floats (grows once, then reused).
// Per-worker scratch of at least n floats (kept between batches); NULL when
// memory runs out: the runner answers its batch 503.
float *srv_worker_buf(srv_worker *w, size_t n);
float *srv_worker_out(srv_worker *w, size_t n);

#endif
