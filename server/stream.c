// stream.c — SSE responses fed by runners (see stream.h).
#include "server/stream.h"
#include <microhttpd.h>      // MHD_create_response_from_callback
#include <pthread.h>         // pthread_mutex_t
#include <stdatomic.h>       // atomic_load
#include <stdlib.h>          // malloc
#include <string.h>          // memcpy

struct srv_stream {
    pthread_mutex_t mu;
    char *buf;          // pending bytes [off, len)
    size_t off, len, cap;
    int done;           // no more writes; end once drained
    int waiting;        // the connection is suspended waiting for data
};

static void resume_if_waiting(srv_request *r) {
    if (r->stream->waiting) {
        r->stream->waiting = 0;
        MHD_resume_connection(r->conn);
    }
}

// libmicrohttpd asks for body bytes; runs on the connection's HTTP thread.
static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max) {
    srv_request *r = cls;
    srv_stream *s = r->stream;
    pthread_mutex_lock(&s->mu);
    if (s->off < s->len) {
        size_t n = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        if (s->off == s->len) s->off = s->len = 0;
        pthread_mutex_unlock(&s->mu);
        return (ssize_t)n;
    }
    if (s->done) {
        pthread_mutex_unlock(&s->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    s->waiting = 1;                    // nothing yet: park the connection
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int srv_stream_open(srv_request *r) {
    srv_stream *s = calloc(1, sizeof *s);
    if (!s) return -1;
    pthread_mutex_init(&s->mu, NULL);
    r->stream = s;
    return 0;
}

int srv_stream_respond(srv_request *r) {
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, r, NULL);
    if (!resp) return -1;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");   // nginx: do not buffer SSE
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

int srv_stream_write(srv_request *r, const char *data, size_t len) {
    if (atomic_load(&r->closed)) return -1;
    srv_stream *s = r->stream;
    pthread_mutex_lock(&s->mu);
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len) cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) { pthread_mutex_unlock(&s->mu); return -1; }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    resume_if_waiting(r);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int srv_stream_event(srv_request *r, const char *json) {
    size_t n = strlen(json);
    char *ev = malloc(n + 9);
    if (!ev) return -1;
    memcpy(ev, "data: ", 6);
    memcpy(ev + 6, json, n);
    memcpy(ev + 6 + n, "\n\n", 2);
    int rc = srv_stream_write(r, ev, n + 8);
    free(ev);
    return rc;
}

void srv_stream_end(srv_request *r) {
    srv_stream *s = r->stream;
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    if (!atomic_load(&r->closed)) resume_if_waiting(r);
    pthread_mutex_unlock(&s->mu);
}

void srv_stream_free(srv_stream *s) {
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s->buf);
    free(s);
}
