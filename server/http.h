// http.h — the HTTP front: libmicrohttpd (epoll, thread pool, suspend/resume),
// routing, auth, CORS, body limits, X-Request-Id and the access log. It
// knows handlers only through the route table it is started with
// (server/api_routes.c). Handlers either answer at once or hand the request
// to the scheduler and return SRV_HANDLER_ASYNC; the connection then stays
// suspended until srv_request_complete() calls the hook this layer installs
// on every request, which resumes it.
#ifndef SRV_HTTP_H
#define SRV_HTTP_H
#include "server/config.h"    // srv_config
#include "server/request.h"   // srv_request

// A handler answers at once (DONE), has handed the request on (ASYNC), or
// could not queue a response for a request already handed on (CLOSE: the
// connection is closed, and the runner holding the request cancels it).
enum { SRV_HANDLER_DONE = 0, SRV_HANDLER_ASYNC = 1, SRV_HANDLER_CLOSE = 2 };
// A route handler. `arg` is the path parameter ({id}) or NULL.
typedef int (*srv_handler)(srv_request *r, const char *arg);

// A route whose request body is streamed to a sink instead of being held in
// memory (uploads: POST /v1/files). Neither max_body_bytes nor the
// max_body_bytes_total budget applies; the sink bounds what it takes.
typedef struct {
    // Headers are in, no body byte yet (authenticated already): set up the
    // sink's state (in r->task). 0 = read the body, -1 = r holds the answer,
    // sent at once (before the body; curl's Expect: 100-continue gets it).
    int (*open)(srv_request *r, const char *arg);
    // The next n bytes of the body. 0, or -1 = r holds the answer: the rest
    // of the body is read and dropped, then the answer is sent (a connection
    // with more than SRV_SINK_DRAIN_MAX bytes left to drop is closed instead).
    int (*data)(srv_request *r, const char *data, size_t n);
} srv_body_sink;
#define SRV_SINK_DRAIN_MAX (16LL << 20)

// One endpoint: method + path → handler.
typedef struct {
    const char *method;    // "GET", "POST", "DELETE"
    const char *path;      // exact path, or prefix when `param` is set
    int param;             // 1: path + "{id}" (one segment); 2: prefix, anything after
    const char *name;      // route pattern for metrics and logs
    srv_handler handler;
    int open;              // 1: no API key needed (probes), unless auth_probes
    const srv_body_sink *sink;  // non-NULL: the body streams to it; `handler` runs once it has all of it
} srv_route;

// Starts listening, routing to routes[0..n_routes) (kept, not copied).
// *port receives the bound port (useful with port 0).
int srv_http_start(const srv_config *cfg, const srv_route *routes, int n_routes, int *port, char **err);
// Stops accepting new connections (in-flight ones continue).
void srv_http_quiesce(void);
// Requests received and not yet completed.
int srv_http_inflight(void);
// Stops the daemon (all suspended connections must have been completed).
void srv_http_stop(void);
// Suspends r's connection (the handler queues it; completion resumes it).
void srv_http_suspend(srv_request *r);
// Queues the 200 text/event-stream response reading from r->stream (opened
// by the handler). Call from the handler, after the request was accepted. 0 or -1.
int srv_http_respond_stream(srv_request *r);

// Helpers for handlers.
const char *srv_http_query(srv_request *r, const char *key);   // ?key=value or NULL
const char *srv_http_header(srv_request *r, const char *name); // request header or NULL
const srv_config *srv_http_config(void);

#endif
