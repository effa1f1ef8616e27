// stream.c — SSE responses fed by runners (see stream.h).
#include "server/stream.h"
#include <microhttpd.h>      // MHD_create_response_from_callback
#include <pthread.h>         // pthread_mutex_t
#include <stdlib.h>          // malloc
#include <string.h>          // memcpy

struct srv_stream {
    pthread_mutex_t mu;
    struct MHD_Connection *conn;   // the connection the response goes out on
    char *buf;          // pending bytes [off, len)
    size_t off, len, cap;
    int done;           // no more writes; end once drained
    int waiting;        // the connection is suspended waiting for data
    int closed;         // the connection is gone: no writes, no resume
};

static void resume_if_waiting(srv_stream *s) {
    if (s->waiting && !s->closed) {
        s->waiting = 0;
        MHD_resume_connection(s->conn);
    }
}

// libmicrohttpd asks for body bytes; runs on the connection's HTTP thread.
static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max) {
    srv_stream *s = cls;
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
    MHD_suspend_connection(s->conn);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

srv_stream *srv_stream_new(struct MHD_Connection *conn) {
    srv_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->conn = conn;
    return s;
}

struct MHD_Response *srv_stream_response(srv_stream *s) {
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, reader, s, NULL);
    if (!resp) return NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");   // nginx: do not buffer SSE
    return resp;
}

int srv_stream_write(srv_stream *s, const char *data, size_t len) {
    pthread_mutex_lock(&s->mu);
    if (s->closed) { pthread_mutex_unlock(&s->mu); return -1; }
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
    resume_if_waiting(s);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int srv_stream_event(srv_stream *s, const char *json) {
    size_t n = strlen(json);
    char *ev = malloc(n + 9);
    if (!ev) return -1;
    memcpy(ev, "data: ", 6);
    memcpy(ev + 6, json, n);
    memcpy(ev + 6 + n, "\n\n", 2);
    int rc = srv_stream_write(s, ev, n + 8);
    free(ev);
    return rc;
}

void srv_stream_end(srv_stream *s) {
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    resume_if_waiting(s);
    pthread_mutex_unlock(&s->mu);
}

void srv_stream_close(srv_stream *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_mutex_unlock(&s->mu);
}

void srv_stream_free(srv_stream *s) {
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s->buf);
    free(s);
}
