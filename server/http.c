// http.c — libmicrohttpd front end (see http.h).
//
// Life of a request: first callback allocates srv_request (in *req_cls) and
// checks Content-Length against max_body_bytes; upload callbacks append the
// body; the final callback authenticates, routes and runs the handler. An
// async handler suspends the connection and queues the request; the worker
// that completes it calls srv_request_complete → the request's `complete`
// hook (http_complete here) → MHD_resume_connection, and
// the access handler is called once more to queue the response. The request
// is freed only in the completed callback, after the access log line.
// A route with a body sink (uploads) is routed and authenticated on the
// first callback instead, and its body goes to the sink chunk by chunk
// (never buffered; see srv_body_sink in http.h).
#include "server/http.h"
#include <arpa/inet.h>          // inet_ntop
#include <microhttpd.h>         // MHD_*
#include <netdb.h>              // getaddrinfo
#include <pthread.h>            // pthread_once
#include <stdarg.h>             // va_list
#include <stdatomic.h>          // atomic_int
#include <stdio.h>              // snprintf
#include <stdlib.h>             // calloc, realloc, free, strtoull
#include <string.h>             // strcmp, strncmp
#include <unistd.h>             // close
#include "engine/core/util.h"        // eng_now, eng_errorf, eng_read_file
#include "server/log.h"         // log_*
#include "server/metrics.h"     // srv_metrics_request
#include "server/stream.h"      // srv_stream_response, srv_stream_close

static struct MHD_Daemon *daemon_;
static const srv_config *cfg;
static char *api_key;                 // resolved key, or NULL when auth is off
static atomic_int inflight;
static atomic_ulong request_seq;

// ---------------------------------------------------------------- routes
static const srv_route *routes;       // the table srv_http_start was given (server/api_routes.c)
static int n_routes;
#define N_ROUTES n_routes

// Does `path` match route `rt`? Sets *arg to the parameter (points into path).
static int route_match(const srv_route *rt, const char *path, const char **arg) {
    size_t n = strlen(rt->path);
    *arg = NULL;
    if (rt->param == 0) return strcmp(path, rt->path) == 0;
    if (strncmp(path, rt->path, n) != 0) return 0;
    if (rt->param == 2) return 1;
    if (path[n] == 0) return 0;   // a '/' in the id reaches the handler, which answers 400
    *arg = path + n;
    return 1;
}

// ---------------------------------------------------------------- responses
static void add_cors(srv_request *r, struct MHD_Response *resp) {
    if (!r->origin) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
    MHD_add_response_header(resp, "Vary", "Origin");
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
    if (r->preflight) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", r->allow ? r->allow : "GET, POST, DELETE, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    }
}

static enum MHD_Result send_response(srv_request *r) {
    if (!r->resp_body) srv_request_fail(r, SRV_E_INTERNAL, NULL, "handler produced no response");
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_MUST_FREE);
    r->resp_body = NULL;   // MHD frees it
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->resp_type ? r->resp_type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->retry_after > 0) {
        char s[16];
        snprintf(s, sizeof s, "%d", r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, s);
    }
    if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    add_cors(r, resp);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    r->responded = 1;
    return ret;
}

// ---------------------------------------------------------------- helpers for handlers
// A request without a connection (the fuzz harnesses drive handlers' parse
// functions directly) has no query string and no headers.
const char *srv_http_query(srv_request *r, const char *key) {
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key) : NULL;
}

const char *srv_http_header(srv_request *r, const char *name) {
    return r->conn ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) : NULL;
}

// Before srv_http_start (tests, fuzz harnesses) handlers see the defaults.
static srv_config default_cfg;
static void init_default_cfg(void) { srv_config_init(&default_cfg); }

const srv_config *srv_http_config(void) {
    if (cfg) return cfg;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_default_cfg);
    return &default_cfg;
}

void srv_http_suspend(srv_request *r) { MHD_suspend_connection(r->conn); }

// The request's `complete` hook (srv_request_complete, any thread): resume
// the suspended connection so the access handler queues the response.
static void http_complete(srv_request *r) {
    if (r->stream) {   // already answered 200: report the error in the stream (API.md)
        if (r->status >= 400 && r->resp_body) {
            srv_stream_event(r->stream, r->resp_body);
            srv_stream_write(r->stream, "data: [DONE]\n\n", 14);
        }
        srv_stream_end(r->stream);
        return;
    }
    MHD_resume_connection(r->conn);
}

int srv_http_respond_stream(srv_request *r) {
    struct MHD_Response *resp = srv_stream_response(r->stream);
    if (!resp) return -1;
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (r->origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    r->status = 200;
    int ok = MHD_queue_response(r->conn, MHD_HTTP_OK, resp) == MHD_YES;
    MHD_destroy_response(resp);
    r->responded = 1;
    return ok ? 0 : -1;
}

// ---------------------------------------------------------------- request setup
static int id_char_ok(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':';
}

// The client's X-Request-Id if it is short and plain, else a fresh one.
static void set_request_id(srv_request *r) {
    const char *given = srv_http_header(r, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    int ok = n > 0 && n <= 64;
    for (size_t i = 0; ok && i < n; i++) ok = id_char_ok(given[i]);
    if (ok) { memcpy(r->id, given, n + 1); return; }
    snprintf(r->id, sizeof r->id, "req-%08x%08lx", (unsigned)getpid() ^ (unsigned)((unsigned long)(eng_now() * 1e6)),
             (unsigned long)atomic_fetch_add(&request_seq, 1) + 1);
}

// Sets r->origin when CORS is configured and the Origin is allowed.
static void set_origin(srv_request *r) {
    const char *origin = srv_http_header(r, "Origin");
    if (!origin || !cfg->cors_origins || !*cfg->cors_origins) return;
    if (strcmp(cfg->cors_origins, "*") == 0) { r->origin = strdup("*"); return; }
    size_t n = strlen(origin);
    for (const char *p = cfg->cors_origins; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') e++;
        if ((size_t)(e - p) == n && n && strncmp(p, origin, n) == 0) { r->origin = strdup(origin); return; }
        p = e;
    }
}

// Constant-time comparison of "Bearer <key>".
static int authorized(srv_request *r) {
    const char *h = srv_http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return 0;
    const char *k = h + 7;
    size_t a = strlen(k), b = strlen(api_key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < a; i++) diff |= (unsigned char)k[i] ^ (unsigned char)api_key[i % (b ? b : 1)];
    return diff == 0;
}

// Routes r and runs its handler. Returns SRV_HANDLER_*.
static int dispatch(srv_request *r) {
    if (strcmp(r->method, "OPTIONS") == 0) {   // CORS preflight (or plain OPTIONS)
        static _Thread_local char methods[128];
        methods[0] = 0;
        for (int i = 0; i < N_ROUTES; i++) {
            const char *arg;
            if (route_match(&routes[i], r->path, &arg) && !strstr(methods, routes[i].method)) {
                if (!*methods) r->route = routes[i].name;
                strcat(methods, routes[i].method);
                strcat(methods, ", ");
            }
        }
        if (!*methods) { r->route = "unknown"; srv_request_fail(r, SRV_E_NOT_FOUND, NULL, "no such endpoint: %s", r->path); return SRV_HANDLER_DONE; }
        strcat(methods, "OPTIONS");
        srv_request_json(r, 204, strdup(""));
        r->allow = methods;
        r->preflight = 1;
        return SRV_HANDLER_DONE;
    }
    const srv_route *path_match = NULL;
    char allow[128] = "";
    for (int i = 0; i < N_ROUTES; i++) {
        const char *arg;
        if (!route_match(&routes[i], r->path, &arg)) continue;
        path_match = &routes[i];
        if (!strstr(allow, routes[i].method)) {
            if (*allow) strcat(allow, ", ");
            strcat(allow, routes[i].method);
        }
        if (strcmp(routes[i].method, r->method) != 0 &&
            !(strcmp(r->method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) continue;
        r->route = routes[i].name;
        if (api_key && (!routes[i].open || cfg->auth_probes) && !authorized(r)) {
            srv_request_fail(r, SRV_E_UNAUTHORIZED, NULL, "missing or invalid API key (send Authorization: Bearer <key>)");
            return SRV_HANDLER_DONE;
        }
        if (r->body_too_large) {
            srv_request_fail(r, SRV_E_TOO_LARGE, NULL, "request body exceeds %lld bytes", cfg->max_body_bytes);
            return SRV_HANDLER_DONE;
        }
        if (r->body_refused) {
            srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "the server holds max_body_bytes_total (%lld) bytes of request "
                             "bodies already; retry later", cfg->max_body_bytes_total);
            return SRV_HANDLER_DONE;
        }
        return routes[i].handler(r, arg);
    }
    if (path_match) {
        r->route = path_match->name;
        static _Thread_local char allow_copy[128];
        snprintf(allow_copy, sizeof allow_copy, "%s", allow);
        r->allow = allow_copy;
        srv_request_fail(r, SRV_E_METHOD, NULL, "method %s is not allowed on %s (allowed: %s)", r->method, r->path, allow);
        return SRV_HANDLER_DONE;
    }
    r->route = "unknown";
    srv_request_fail(r, SRV_E_NOT_FOUND, NULL, "no such endpoint: %s %s", r->method, r->path);
    return SRV_HANDLER_DONE;
}

// ---------------------------------------------------------------- the body budget
// Bytes of request bodies held now, over all connections: with many clients
// uploading at once, max_body_bytes alone would let memory grow with the
// number of connections.
static atomic_llong body_bytes;

static int body_reserve(size_t more) {
    long long now = atomic_fetch_add(&body_bytes, (long long)more) + (long long)more;
    if (now <= cfg->max_body_bytes_total) return 0;
    atomic_fetch_sub(&body_bytes, (long long)more);
    return -1;
}

static void body_reserve_cancel(size_t n) { atomic_fetch_sub(&body_bytes, (long long)n); }

// Frees r's body and gives its bytes back to the budget.
static void body_drop(srv_request *r) {
    body_reserve_cancel(r->body_cap);
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
}

// ---------------------------------------------------------------- streamed bodies
// The route with a body sink that r's method and path name, or NULL.
static const srv_route *sink_route(srv_request *r, const char **arg) {
    for (int i = 0; i < N_ROUTES; i++)
        if (routes[i].sink && strcmp(routes[i].method, r->method) == 0 && route_match(&routes[i], r->path, arg))
            return &routes[i];
    return NULL;
}

// First callback of a streamed route: authenticate and open the sink, or
// answer at once. MHD_YES/MHD_NO for the access handler.
static enum MHD_Result sink_open(srv_request *r, const srv_route *rt, const char *arg) {
    r->route = rt->name;
    int answered = 0;
    if (api_key && (!rt->open || cfg->auth_probes) && !authorized(r)) {
        srv_request_fail(r, SRV_E_UNAUTHORIZED, NULL, "missing or invalid API key (send Authorization: Bearer <key>)");
        answered = 1;
    } else if (rt->sink->open(r, arg) != 0) {
        answered = 1;
    }
    if (answered) {
        // A refusal before the body: when the body is small enough, read and
        // drop it and answer at its end, so the client is not cut off while
        // it sends and a keep-alive connection stays usable; else answer now
        // and close (MHD does when a response precedes the unread body).
        const char *cl = srv_http_header(r, "Content-Length");
        char *end = NULL;
        long long len = cl ? strtoll(cl, &end, 10) : -1;
        if (cl && end && !*end && len > 0 && len <= SRV_SINK_DRAIN_MAX) {
            r->sink_route = rt;
            r->sink_arg = arg;
            r->sink_failed = 1;
            return MHD_YES;
        }
        atomic_store(&r->state, SRV_REQ_DONE);
        return send_response(r);
    }
    r->sink_route = rt;
    r->sink_arg = arg;
    return MHD_YES;
}

// A chunk of a streamed body: to the sink, or dropped once it has answered.
static enum MHD_Result sink_data(srv_request *r, const char *data, size_t *size) {
    const srv_route *rt = r->sink_route;
    size_t n = *size;
    *size = 0;
    if (!r->sink_failed) {
        if (rt->sink->data(r, data, n) != 0) r->sink_failed = 1;
        return MHD_YES;
    }
    r->sink_dropped += (long long)n;
    return r->sink_dropped > SRV_SINK_DRAIN_MAX ? MHD_NO : MHD_YES;   // too much left to read: close
}

// ---------------------------------------------------------------- libmicrohttpd callbacks
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **req_cls) {
    srv_request *r = *req_cls;
    if (!r) {   // first call: headers are in
        r = calloc(1, sizeof *r);
        char *path = r ? strdup(url) : NULL;
        if (!path) { free(r); return MHD_NO; }   // out of memory: close this connection only
        r->conn = conn;
        r->method = method;
        r->path = path;
        r->t_start = eng_now();
        r->client_fd = -1;
        r->complete = http_complete;
        atomic_init(&r->refs, 1);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) r->client_fd = ci->connect_fd;
        set_request_id(r);
        set_origin(r);
        atomic_fetch_add(&inflight, 1);
        *req_cls = r;
        const char *sarg;
        const srv_route *srt = sink_route(r, &sarg);
        if (srt) return sink_open(r, srt, sarg);
        const char *cl = srv_http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)cfg->max_body_bytes) {
            // refuse before reading the body (curl's Expect: 100-continue gets the 413 at once)
            r->body_too_large = 1;
            r->route = "unknown";
            for (int i = 0; i < N_ROUTES; i++) {
                const char *arg;
                if (route_match(&routes[i], r->path, &arg)) { r->route = routes[i].name; break; }
            }
            srv_request_fail(r, SRV_E_TOO_LARGE, NULL, "request body of %s bytes exceeds the limit of %lld bytes", cl, cfg->max_body_bytes);
            atomic_store(&r->state, SRV_REQ_DONE);
            return send_response(r);
        }
        return MHD_YES;
    }
    if (*upload_size) {   // body bytes
        if (r->responded) { *upload_size = 0; return MHD_YES; }
        if (r->sink_route) return sink_data(r, upload_data, upload_size);
        if (!r->body_too_large && !r->body_refused) {
            size_t need = r->body_len + *upload_size;
            if (need > (size_t)cfg->max_body_bytes) {
                r->body_too_large = 1;
                body_drop(r);
            } else {
                if (need + 1 > r->body_cap) {
                    size_t cap = r->body_cap ? r->body_cap : 4096;
                    while (cap < need + 1) cap *= 2;
                    if (body_reserve(cap - r->body_cap) != 0) {   // too many bodies held at once: 503
                        r->body_refused = 1;
                        body_drop(r);
                        *upload_size = 0;
                        return MHD_YES;
                    }
                    char *nb = realloc(r->body, cap);
                    if (!nb) { body_reserve_cancel(cap - r->body_cap); return MHD_NO; }
                    r->body = nb;
                    r->body_cap = cap;
                }
                memcpy(r->body + r->body_len, upload_data, *upload_size);
                r->body_len = need;
                r->body[need] = 0;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->responded) return MHD_YES;
    int state = atomic_load(&r->state);
    if (state == SRV_REQ_DONE) return send_response(r);      // resumed after the worker finished
    if (state != SRV_REQ_NEW) return MHD_YES;                 // still queued/running (spurious call)
    if (r->sink_route) {   // a streamed body is complete (or its sink answered already)
        int h = r->sink_failed ? SRV_HANDLER_DONE : ((const srv_route *)r->sink_route)->handler(r, r->sink_arg);
        if (h == SRV_HANDLER_ASYNC) return MHD_YES;
        if (h == SRV_HANDLER_CLOSE) return MHD_NO;
        atomic_store(&r->state, SRV_REQ_DONE);
        return send_response(r);
    }
    if (!r->body && !(r->body = calloc(1, 1))) return MHD_NO;   // handlers read an empty string
    int handled = dispatch(r);
    if (handled == SRV_HANDLER_ASYNC) return MHD_YES;
    if (handled == SRV_HANDLER_CLOSE) return MHD_NO;   // MHD closes it; the runner sees r->closed
    atomic_store(&r->state, SRV_REQ_DONE);
    return send_response(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe) {
    srv_request *r = *req_cls;
    if (!r) return;
    double dt = eng_now() - r->t_start;
    int status = r->responded ? r->status : 499;   // never answered: the client went away
    srv_metrics_request(r->route ? r->route : "unknown", r->model_id ? r->model_id : "", status, dt);
    if (cfg->access_log)
        log_info("%s %s %d %.2fms id=%s%s%s%s", r->method, r->path, status, dt * 1000, r->id,
                 r->model_id ? " model=" : "", r->model_id ? r->model_id : "",
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    *req_cls = NULL;
    body_drop(r);   // handlers and runners are done with the body by now
    atomic_store(&r->closed, 1);
    srv_stream_close(r->stream);   // a runner still writing to it: no resume of a gone connection
    srv_request_unref(r);   // a runner still streaming to it frees it later
    atomic_fetch_sub(&inflight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = 0;
    log_debug("libmicrohttpd: %s", buf);
}

// ---------------------------------------------------------------- lifecycle
int srv_http_start(const srv_config *c, const srv_route *table, int n_table, int *port, char **err) {
    cfg = c;
    routes = table;
    n_routes = n_table;
    if (c->api_key && *c->api_key) api_key = strdup(c->api_key);
    else if (c->api_key_file && *c->api_key_file) {
        size_t len;
        char *k = eng_read_file(c->api_key_file, &len, err);
        if (!k) return -1;
        k[strcspn(k, "\r\n")] = 0;
        if (!*k) { free(k); return eng_errorf(err, "api_key_file %s is empty", c->api_key_file); }
        api_key = k;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", c->port);
    int gai = getaddrinfo(c->host, portstr, &hints, &ai);
    if (gai != 0) return eng_errorf(err, "host %s: %s", c->host, gai_strerror(gai));
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    daemon_ = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, NULL,
                               MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                               MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->threads,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                               MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                               MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                               MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                               MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!daemon_) {
        free(api_key); api_key = NULL;
        return eng_errorf(err, "cannot listen on %s:%d (address in use or not available)", c->host, c->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : c->port;
    return 0;
}

void srv_http_quiesce(void) {
    if (!daemon_) return;
    MHD_socket fd = MHD_quiesce_daemon(daemon_);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

int srv_http_inflight(void) { return atomic_load(&inflight); }

void srv_http_stop(void) {
    if (daemon_) MHD_stop_daemon(daemon_);
    daemon_ = NULL;
    free(api_key);
    api_key = NULL;
}
