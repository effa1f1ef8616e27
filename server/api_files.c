// api_files.c — POST/GET/DELETE /v1/files (API.md "Training — files and
// jobs"). An upload's body is streamed (server/http.c's body sink) into
// server/files.c chunk by chunk: a raw body (application/octet-stream,
// ?purpose=&filename=) as it comes, a multipart/form-data body through
// libmicrohttpd's post processor (fields `file` and `purpose`, the way
// browsers and `curl -F` send them). Nothing of the file is held in memory.
#include <microhttpd.h>       // MHD_create_post_processor, MHD_post_process
#include <stdio.h>            // snprintf
#include <stdlib.h>           // calloc, free, strtol
#include <string.h>           // strcmp, strncasecmp
#include <strings.h>          // strncasecmp
#include "server/api.h"       // declarations
#include "server/files.h"     // srv_files_*

// Multipart overhead allowed over max_file_bytes before a Content-Length is
// refused outright (boundaries, part headers, the purpose field).
#define MULTIPART_SLACK (64 * 1024)
#define PURPOSE_MAX 32

// The state of one upload (srv_request.task).
typedef struct {
    srv_file_upload *up;         // the upload being written, NULL before the file part starts
    struct MHD_PostProcessor *pp;   // multipart: the parser, NULL for a raw body
    char filename[256];          // validated filename
    char purpose[PURPOSE_MAX + 1];  // the purpose field as received (multipart), validated at the end
    int purpose_seen;            // multipart: a purpose field arrived
    int purpose_long;            // multipart: it was longer than PURPOSE_MAX
    int file_parts;              // multipart: `file` parts seen
    uint64_t file_end;           // multipart: offset after the last chunk of the file part
    srv_request *r;              // back pointer for the post processor's iterator
    int failed;                  // 1 once r holds an error answer
} upload_task;

static void upload_task_free(void *p) {
    upload_task *t = p;
    if (!t) return;
    if (t->pp) MHD_destroy_post_processor(t->pp);
    srv_files_upload_abort(t->up);   // removes the temp file of an unfinished upload
    free(t);
}

static int valid_purpose(const char *p) { return p && strcmp(p, "train") == 0; }

// Answers r with the error of a failed write. Returns -1.
static int write_failed(upload_task *t, int rc, char *err) {
    if (rc == SRV_FILES_ETOOLARGE)
        srv_request_fail(t->r, SRV_E_TOO_LARGE, "file", "the file exceeds max_file_bytes (%lld bytes)", srv_files_max_bytes());
    else
        srv_request_fail(t->r, SRV_E_INTERNAL, NULL, "storing the upload failed: %s", err ? err : "I/O error");
    free(err);
    t->failed = 1;
    return -1;
}

static int begin(upload_task *t) {
    char *err = NULL;
    if ((t->up = srv_files_upload_begin(&err))) return 0;
    srv_request_fail(t->r, SRV_E_INTERNAL, NULL, "cannot store uploads: %s", err ? err : "");
    free(err);
    t->failed = 1;
    return -1;
}

// ---------------------------------------------------------------- multipart
static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                const char *content_type, const char *transfer_encoding, const char *data,
                                uint64_t off, size_t size) {
    upload_task *t = cls;
    if (t->failed) return MHD_NO;
    if (strcmp(key, "purpose") == 0) {
        t->purpose_seen = 1;
        if (off + size > PURPOSE_MAX) { t->purpose_long = 1; return MHD_YES; }
        memcpy(t->purpose + off, data, size);
        t->purpose[off + size] = 0;
        return MHD_YES;
    }
    if (strcmp(key, "file") != 0) return MHD_YES;   // other fields are ignored, as OpenAI does
    if (off == 0 && t->file_end > 0) {
        srv_request_fail(t->r, SRV_E_BAD_VALUE, "file", "the form has more than one \"file\" field; send one file per request");
        t->failed = 1;
        return MHD_NO;
    }
    if (!t->up) {   // the file part starts
        t->file_parts++;
        const char *name = filename && *filename ? filename : "upload";
        if (!srv_files_valid_filename(name)) {
            srv_request_fail(t->r, SRV_E_BAD_VALUE, "file",
                             "filename must match [A-Za-z0-9._-]{1,255} without \"..\" (rename the file before uploading)");
            t->failed = 1;
            return MHD_NO;
        }
        snprintf(t->filename, sizeof t->filename, "%s", name);
        if (begin(t) != 0) return MHD_NO;
    }
    char *err = NULL;
    int rc = size ? srv_files_upload_write(t->up, data, size, &err) : 0;
    if (rc != 0) { write_failed(t, rc, err); return MHD_NO; }
    t->file_end = off + size;
    return MHD_YES;
}

// ---------------------------------------------------------------- the sink
// A query argument, NULL when absent, or NUL_INSIDE when its decoded value
// holds a NUL byte (?filename=x%00y would otherwise read as "x").
static const char NUL_INSIDE[] = "";
static const char *query(srv_request *r, const char *key) {
    const char *v = NULL;
    size_t n = 0;
    if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &v, &n) != MHD_YES || !v) return NULL;
    return strlen(v) == n ? v : NUL_INSIDE;
}

static int upload_open(srv_request *r, const char *arg) {
    const char *ct = srv_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    int multipart = ct && strncasecmp(ct, "multipart/form-data", 19) == 0;
    if (ct && !multipart && strncasecmp(ct, "application/octet-stream", 24) != 0) {
        srv_request_fail(r, SRV_E_MEDIA_TYPE, NULL,
                         "Content-Type must be multipart/form-data (curl -F file=@data.tar -F purpose=train) or "
                         "application/octet-stream with ?purpose=train&filename=... (got %.100s)", ct);
        return -1;
    }
    const char *cl = srv_http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    long long limit = srv_files_max_bytes() + (multipart ? MULTIPART_SLACK : 0);
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)limit) {
        srv_request_fail(r, SRV_E_TOO_LARGE, "file", "the upload of %s bytes exceeds max_file_bytes (%lld bytes)", cl,
                         srv_files_max_bytes());
        return -1;
    }
    upload_task *t = calloc(1, sizeof *t);
    if (!t) { srv_request_fail(r, SRV_E_INTERNAL, NULL, "out of memory"); return -1; }
    t->r = r;
    r->task = t;
    r->task_free = upload_task_free;
    if (multipart) {
        t->pp = MHD_create_post_processor(r->conn, 16 * 1024, on_field, t);
        if (!t->pp) {
            srv_request_fail(r, SRV_E_BAD_REQUEST, NULL, "multipart/form-data without a usable boundary");
            return -1;
        }
        return 0;
    }
    // raw body: everything is in the query string
    const char *purpose = query(r, "purpose"), *filename = query(r, "filename");
    if (purpose == NUL_INSIDE || filename == NUL_INSIDE) {
        srv_request_fail(r, SRV_E_BAD_VALUE, purpose == NUL_INSIDE ? "purpose" : "filename", "a NUL byte in the query string");
        return -1;
    }
    if (!purpose) {
        srv_request_fail(r, SRV_E_MISSING, "purpose", "purpose is required (?purpose=train)");
        return -1;
    }
    if (!valid_purpose(purpose)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "purpose", "purpose must be \"train\"");
        return -1;
    }
    if (filename && !srv_files_valid_filename(filename)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "filename", "filename must match [A-Za-z0-9._-]{1,255} without \"..\"");
        return -1;
    }
    snprintf(t->filename, sizeof t->filename, "%s", filename ? filename : "upload");
    snprintf(t->purpose, sizeof t->purpose, "%s", purpose);
    return begin(t);
}

static int upload_data(srv_request *r, const char *data, size_t n) {
    upload_task *t = r->task;
    if (t->pp) {
        if (MHD_post_process(t->pp, data, n) == MHD_YES) return 0;
        if (!t->failed) srv_request_fail(r, SRV_E_BAD_REQUEST, NULL, "malformed multipart/form-data body");
        return -1;
    }
    char *err = NULL;
    int rc = srv_files_upload_write(t->up, data, n, &err);
    return rc == 0 ? 0 : write_failed(t, rc, err);
}

const srv_body_sink srv_api_files_sink = {upload_open, upload_data};

// The whole body has arrived: store the file.
int srv_api_files_upload(srv_request *r, const char *arg) {
    upload_task *t = r->task;
    if (t->pp) {
        int complete = MHD_destroy_post_processor(t->pp) == MHD_YES;
        t->pp = NULL;
        if (t->failed) return SRV_HANDLER_DONE;
        if (!complete) {
            srv_request_fail(r, SRV_E_BAD_REQUEST, NULL, "the multipart/form-data body ended before its closing boundary");
            return SRV_HANDLER_DONE;
        }
        if (!t->file_parts) {
            srv_request_fail(r, SRV_E_MISSING, "file", "the form has no \"file\" field (curl -F file=@data.tar -F purpose=train)");
            return SRV_HANDLER_DONE;
        }
        if (!t->purpose_seen) {
            srv_request_fail(r, SRV_E_MISSING, "purpose", "the form has no \"purpose\" field (-F purpose=train)");
            return SRV_HANDLER_DONE;
        }
        if (t->purpose_long || !valid_purpose(t->purpose)) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "purpose", "purpose must be \"train\"");
            return SRV_HANDLER_DONE;
        }
    }
    char *err = NULL;
    json_t *o = srv_files_upload_finish(t->up, t->filename, t->purpose, &err);
    if (!o) {
        srv_request_fail(r, SRV_E_INTERNAL, NULL, "storing the upload failed: %s", err ? err : "");
        free(err);
        return SRV_HANDLER_DONE;
    }
    srv_request_json(r, 200, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(o);
    return SRV_HANDLER_DONE;
}

// ---------------------------------------------------------------- list, get, delete
// Checks a file id from the path: 0, or -1 after answering r.
static int check_id(srv_request *r, const char *id) {
    if (srv_files_valid_id(id)) return 0;
    srv_request_fail(r, SRV_E_BAD_VALUE, "file_id", "file ids look like file-<24 hex digits> (got %.80s)", id ? id : "");
    return -1;
}

int srv_api_files_list(srv_request *r, const char *arg) {
    const char *limit_s = srv_http_query(r, "limit"), *after = srv_http_query(r, "after"), *order = srv_http_query(r, "order");
    long limit = 100;
    if (limit_s) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (*limit_s == 0 || *end || limit < 1 || limit > 10000) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "limit", "limit must be an integer in [1, 10000]");
            return SRV_HANDLER_DONE;
        }
    }
    if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "order", "order must be asc or desc");
        return SRV_HANDLER_DONE;
    }
    int more;
    json_t *a = srv_files_list(after, (int)limit, !order || strcmp(order, "desc") == 0, &more);
    if (!a) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "after", "after must be the id of a stored file (got %.80s)", after);
        return SRV_HANDLER_DONE;
    }
    size_t n = json_array_size(a);
    json_t *o = json_pack("{s:s,s:o,s:O,s:O,s:b}", "object", "list", "data", a,
                          "first_id", n ? json_object_get(json_array_get(a, 0), "id") : json_null(),
                          "last_id", n ? json_object_get(json_array_get(a, n - 1), "id") : json_null(), "has_more", more);
    srv_request_json(r, 200, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(o);
    return SRV_HANDLER_DONE;
}

int srv_api_files_get(srv_request *r, const char *arg) {
    if (check_id(r, arg) != 0) return SRV_HANDLER_DONE;
    json_t *o = srv_files_object(arg);
    if (!o) {
        srv_request_fail(r, SRV_E_NOT_FOUND, "file_id", "no file %s (GET /v1/files lists them)", arg);
        return SRV_HANDLER_DONE;
    }
    srv_request_json(r, 200, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(o);
    return SRV_HANDLER_DONE;
}

int srv_api_files_delete(srv_request *r, const char *arg) {
    if (check_id(r, arg) != 0) return SRV_HANDLER_DONE;
    if (srv_files_delete(arg) != 0) {
        srv_request_fail(r, SRV_E_NOT_FOUND, "file_id", "no file %s (GET /v1/files lists them)", arg);
        return SRV_HANDLER_DONE;
    }
    json_t *o = json_pack("{s:s,s:s,s:b}", "id", arg, "object", "file", "deleted", 1);
    srv_request_json(r, 200, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
    json_decref(o);
    return SRV_HANDLER_DONE;
}
