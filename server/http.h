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

// One endpoint: method + path → handler.
typedef struct {
    const char *method;    // "GET", "POST", "DELETE"
    const char *path;      // exact path, or prefix when `param` is set
    int param;             // 1: path + "{id}" (one segment); 2: prefix, anything after
    const char *name;      // route pattern for metrics and logs
    srv_handler handler;
    int open;              // 1: no API key needed (probes), unless auth_probes
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
