// request.h — one HTTP request's state, from the first byte to the access
// log line. Allocated on libmicrohttpd's first callback (stored in *req_cls),
// freed only in the request-completed callback. While a model request is
// queued or running the connection is suspended; the worker that finishes it
// fills `status`/`body` and resumes the connection.
#ifndef SRV_REQUEST_H
#define SRV_REQUEST_H
#include <stdatomic.h>      // atomic_int
#include <stddef.h>         // size_t
#include "server/errors.h"  // srv_err

struct MHD_Connection;
struct srv_model;

typedef enum {
    SRV_REQ_NEW = 0,     // reading the body
    SRV_REQ_QUEUED,      // waiting in a model queue (connection suspended)
    SRV_REQ_RUNNING,     // taken by a worker
    SRV_REQ_DONE,        // status/body are final; response may be queued
} srv_req_state;

typedef struct srv_request {
    // ---- HTTP
    struct MHD_Connection *conn;   // owning connection
    char id[72];                   // X-Request-Id (client's, sanitised, or generated)
    const char *method;            // borrowed from MHD, valid for the request's life
    char *path;                    // URL path (owned copy)
    const char *route;             // route pattern for metrics/logs, e.g. "/v1/models/{id}"
    char *origin;                  // Origin header if CORS allows it (owned), else NULL
    char *body;                    // request body (owned), NUL-terminated
    size_t body_len, body_cap;     // bytes received / allocated
    int body_too_large;            // 1 once the body exceeded max_body_bytes
    int client_fd;                 // socket, to notice a client that went away
    double t_start;                // eng_now() at the first callback
    int responded;                 // 1 once MHD_queue_response was called
    int preflight;                 // 1 for an OPTIONS (CORS preflight) request

    // ---- scheduling (protected by the scheduler lock while queued)
    _Atomic int state;             // srv_req_state
    struct srv_model *model;       // the model it runs on (holds a reference)
    double deadline;               // eng_now() time after which it is answered 504
    double t_queued;               // eng_now() when it entered the queue
    struct srv_request *next;      // queue link
    int n_items;                   // inputs in this request (counted against max_batch_size)

    // ---- streaming responses (SSE) and shared ownership
    _Atomic int refs;              // 1 for the HTTP layer + 1 per runner holding it (streaming)
    _Atomic int closed;            // 1 once the connection is gone (completed callback ran)
    struct srv_stream *stream;     // SSE state when the response is a stream, else NULL
    void *task;                    // task-specific request state (e.g. generation), freed by task_free
    void (*task_free)(void *task);

    // ---- task input/output
    float *input;                  // image classification: [n_items, C*H*W] preprocessed
    int top_k;                     // labels to return per item
    float *probs;                  // [n_items, n_labels] filled by the worker

    // ---- response
    int status;                    // HTTP status
    char *resp_body;               // owned response body
    size_t resp_len;
    const char *resp_type;         // Content-Type
    int retry_after;               // seconds for Retry-After, 0 = none
    const char *allow;             // Allow header for 405, or NULL
    char *model_id;                // model id for metrics/logs (owned), or NULL
} srv_request;

// Sets an error response (status from the table, API.md body).
void srv_request_fail(srv_request *r, srv_err e, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Sets a JSON response; takes ownership of `text` (malloc'd).
void srv_request_json(srv_request *r, int status, char *text);
// Shared ownership for requests a runner keeps after the HTTP layer let go
// (streams): the last unref frees the request.
void srv_request_ref(srv_request *r);
void srv_request_unref(srv_request *r);

#endif
