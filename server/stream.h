// stream.h — server-sent events: a response body produced while the request
// runs. The HTTP layer queues a streaming response at once
// (srv_http_respond_stream); libmicrohttpd's content-reader callback copies
// what the runner has written so far, and when nothing is pending it
// suspends the connection until the runner writes more (srv_stream_write) or
// ends the stream (srv_stream_end), which resume it. Each stream has its own
// small lock; it is never held while calling the engine. A stream knows its
// connection, not the request: requests (server/request.h) own streams.
#ifndef SRV_STREAM_H
#define SRV_STREAM_H
#include <stddef.h>            // size_t

struct MHD_Connection;
struct MHD_Response;
typedef struct srv_stream srv_stream;

// A stream for `conn` (writes are kept until the response goes out), or NULL.
srv_stream *srv_stream_new(struct MHD_Connection *conn);
// The 200 text/event-stream response that reads from s (the caller adds its
// own headers and queues it). NULL if libmicrohttpd refuses.
struct MHD_Response *srv_stream_response(srv_stream *s);
// Appends bytes (any thread). Returns -1 when the client is gone.
int srv_stream_write(srv_stream *s, const char *data, size_t len);
// Writes "data: <json>\n\n".
int srv_stream_event(srv_stream *s, const char *json);
// Ends the stream after everything written so far has been sent.
void srv_stream_end(srv_stream *s);
// The connection is gone (completed callback): later writes fail and
// nothing resumes the connection any more.
void srv_stream_close(srv_stream *s);
void srv_stream_free(srv_stream *s);   // NULL-safe; called when the request is freed

#endif
