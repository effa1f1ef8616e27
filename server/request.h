// request.h — one request's state and lifecycle, shared by the HTTP front
// end, the scheduler, the streams and the task runners. Allocated on
// libmicrohttpd's first callback (stored in *req_cls); reference counted,
// so the last of the HTTP layer, the scheduler and a runner to let go frees it.
//
// Lifecycle: NEW (body arriving) → QUEUED (srv_sched_submit; connection
// suspended) → RUNNING (taken by a worker or a continuous runner) → DONE
// (srv_request_complete: status/body final, the front end's `complete` hook
// resumes the connection). This module sits below the scheduler and the HTTP
// layer: it knows neither, it only calls the hook the front end installed.
#ifndef SRV_REQUEST_H
#define SRV_REQUEST_H
#include <stdatomic.h>      // atomic_int
#include <stddef.h>         // size_t
#include "server/errors.h"  // srv_err

struct MHD_Connection;
struct srv_model;
struct srv_stream;

typedef enum {
    SRV_REQ_NEW = 0,     // reading the body
    SRV_REQ_QUEUED,      // waiting in a model queue (connection suspended)
    SRV_REQ_RUNNING,     // taken by a worker
    SRV_REQ_DONE,        // status/body are final; response may be queued
} srv_req_state;

typedef struct srv_request srv_request;
struct srv_request {
    // ---- HTTP (set and read by server/http.c; handlers read method/path/body)
    struct MHD_Connection *conn;   // owning connection
    char id[72];                   // X-Request-Id (client's, sanitised, or generated)
    const char *method;            // borrowed from MHD, valid for the request's life
    char *path;                    // URL path (owned copy)
    const char *route;             // route pattern for metrics/logs, e.g. "/v1/models/{id}"
    char *origin;                  // Origin header if CORS allows it (owned), else NULL
    char *body;                    // request body (owned), NUL-terminated
    size_t body_len, body_cap;     // bytes received / allocated
    int body_too_large;            // 1 once the body exceeded max_body_bytes
    int body_refused;              // 1 when max_body_bytes_total had no room for it (503)
    const void *sink_route;        // the srv_route whose sink takes the body (streamed), or NULL
    const char *sink_arg;          // its path parameter (points into path), or NULL
    int sink_failed;               // 1 once the sink answered: the rest of the body is dropped
    long long sink_dropped;        // bytes dropped since
    int client_fd;                 // socket, to notice a client that went away (-1: unknown)
    double t_start;                // eng_now() at the first callback
    int responded;                 // 1 once MHD_queue_response was called
    int preflight;                 // 1 for an OPTIONS (CORS preflight) request
    void (*complete)(srv_request *r);   // the front end's hook: response is final, resume

    // ---- scheduling (what the handler asks for; the scheduler reads it)
    _Atomic int state;             // srv_req_state
    struct srv_model *model;       // the model it runs on (holds a reference)
    double deadline;               // eng_now() time after which it is answered 504
    int n_items;                   // inputs in this request (counted against max_batch_size)
    struct {                       // the scheduler's own (server/sched.c), under its lock
        srv_request *next;         // queue link
        double t_queued;           // eng_now() when it entered the queue
    } queue;

    // ---- shared ownership and cancellation
    _Atomic int refs;              // 1 for the HTTP layer + 1 for the scheduler or runner holding it
    _Atomic int closed;            // 1 once the connection is gone (completed callback ran)
    _Atomic int gone;              // 1 once a socket peek saw the client hang up (srv_request_check_gone)

    // ---- streaming responses (SSE): server/stream.c
    struct srv_stream *stream;     // SSE state when the response is a stream, else NULL

    // ---- the task's own state (classification input, generation request, ...)
    void *task;                    // owned; freed by task_free with the request
    void (*task_free)(void *task);

    // ---- response
    int status;                    // HTTP status
    char *resp_body;               // owned response body
    size_t resp_len;
    const char *resp_type;         // Content-Type
    int retry_after;               // seconds for Retry-After, 0 = none
    const char *allow;             // Allow header for 405, or NULL
    char *model_id;                // model id for metrics/logs (owned), or NULL
};

// Sets an error response (status from the table, API.md body).
void srv_request_fail(srv_request *r, srv_err e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Sets a JSON response; takes ownership of `text` (malloc'd).
void srv_request_json(srv_request *r, int status, char *text);
// The response is final: state DONE, then the front end's `complete` hook
// (resume the suspended connection, or end the stream). Any thread.
void srv_request_complete(srv_request *r);
// Shared ownership: the HTTP layer holds one reference from the first
// callback to the completed callback, the scheduler one while the request is
// queued, a runner one while it works on it. The last unref frees it.
void srv_request_ref(srv_request *r);
void srv_request_unref(srv_request *r);
// 1 if the client has closed its connection: the completed callback ran, or
// a non-blocking peek at the socket sees EOF or an error (then `gone` is set,
// so later calls cost nothing). A system call: never call it under a lock
// other threads wait for.
int srv_request_check_gone(srv_request *r);
// 1 if the client is known to be gone, without a system call (lock-safe).
int srv_request_known_gone(const srv_request *r);

#endif
