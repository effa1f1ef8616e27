// stream.h — server-sent events: a response whose body is produced while the
// request runs. The HTTP layer queues a streaming response at once; its
// content-reader callback copies what the runner has written so far, and
// when nothing is pending it suspends the connection until the runner writes
// more (srv_stream_write) or ends the stream (srv_stream_end), which resume
// it. Each stream has its own small lock; it is never held while calling the
// engine.
#ifndef SRV_STREAM_H
#define SRV_STREAM_H
#include <stddef.h>            // size_t
#include "server/request.h"    // srv_request

typedef struct srv_stream srv_stream;

// Gives r an SSE stream buffer (writes are kept until the response goes out).
int srv_stream_open(srv_request *r);
// Queues the streaming response (200, text/event-stream). Must be called
// from the request's access handler, after srv_stream_open. 0 or -1.
int srv_stream_respond(srv_request *r);
// Appends bytes (any thread). Returns -1 when the client is gone.
int srv_stream_write(srv_request *r, const char *data, size_t len);
// Writes "data: <json>\n\n".
int srv_stream_event(srv_request *r, const char *json);
// Ends the stream after everything written so far has been sent.
void srv_stream_end(srv_request *r);
void srv_stream_free(srv_stream *s);   // NULL-safe; called when the request is freed

#endif
