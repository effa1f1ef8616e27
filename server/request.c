// request.c — a request's responses, completion and shared ownership (see request.h).
#include "server/request.h"
#include <errno.h>            // EAGAIN
#include <stdarg.h>           // va_list
#include <stdio.h>            // vsnprintf
#include <stdlib.h>           // free
#include <string.h>           // strlen
#include <sys/socket.h>       // recv
#include "server/registry.h"  // srv_model_unref
#include "server/stream.h"    // srv_stream_free

void srv_request_json(srv_request *r, int status, char *text) {
    free(r->resp_body);
    r->status = status;
    r->resp_body = text;
    r->resp_len = text ? strlen(text) : 0;
    r->resp_type = "application/json";
}

void srv_request_fail(srv_request *r, srv_err e, const char *param, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv_request_json(r, srv_err_status(e), srv_err_body(e, msg, param));
    if (e == SRV_E_QUEUE_FULL || e == SRV_E_UNAVAILABLE) r->retry_after = 1;
}

void srv_request_complete(srv_request *r) {
    atomic_store(&r->state, SRV_REQ_DONE);
    if (r->complete) r->complete(r);
}

void srv_request_ref(srv_request *r) { atomic_fetch_add(&r->refs, 1); }

void srv_request_unref(srv_request *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
    srv_model_unref(r->model);
    if (r->task_free) r->task_free(r->task);
    srv_stream_free(r->stream);
    free(r->path); free(r->origin); free(r->body);
    free(r->resp_body); free(r->model_id);
    free(r);
}

int srv_request_known_gone(const srv_request *r) {
    return atomic_load(&r->closed) || atomic_load(&r->gone);
}

int srv_request_check_gone(srv_request *r) {
    if (srv_request_known_gone(r)) return 1;
    if (r->client_fd < 0) return 0;
    char c;
    ssize_t n = recv(r->client_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    int gone = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    if (gone) atomic_store(&r->gone, 1);
    return gone;
}
