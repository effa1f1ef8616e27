// api_jobs.c — the training jobs API (API.md "Training — files and jobs"):
// POST /v1/jobs, GET /v1/jobs, GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel,
// GET /v1/jobs/{id}/events (SSE) and GET /v1/jobs/{id}/loss.png. Requests
// are validated here; the jobs themselves live in server/jobs.c.
#include <stdlib.h>           // strtol, free
#include <string.h>           // strcmp, strncmp
#include "engine/arch/model.h"     // eng_task_parse
#include "server/api.h"       // declarations
#include "server/job_stylize.h"   // srv_job_is_stylize
#include "server/jobs.h"      // srv_jobs_*
#include "server/log.h"       // log_warn
#include "server/registry.h"  // srv_registry_valid_id
#include "server/stream.h"    // srv_stream_new

// Answers r with a JSON value (consumed) and status.
static int answer(srv_request *r, int status, json_t *o) {
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!text) srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory; retry later");
    else srv_request_json(r, status, text);
    return SRV_HANDLER_DONE;
}

// An optional string member (null = absent). 0, or -1 after answering 400.
static int opt_string(srv_request *r, const json_t *j, const char *key, const char **out) {
    const json_t *v = json_object_get(j, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 256) {
        srv_request_fail(r, SRV_E_BAD_VALUE, key, "%s must be a non-empty string of at most 256 bytes", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

// ---------------------------------------------------------------- POST /v1/jobs
static int create(srv_request *r) {
    static const char *const known[] = {"task", "arch", "training_file", "validation_file", "hyperparameters",
                                        "base_model", "output_model", "replace"};
    json_t *j = srv_api_parse_json(r);
    if (!j) return SRV_HANDLER_DONE;
    srv_job_spec s;
    srv_job_spec_init(&s);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !ok; i++) ok = strcmp(key, known[i]) == 0;
        if (!ok) {
            srv_request_fail(r, SRV_E_BAD_VALUE, NULL, "unknown field \"%.64s\" (known: task, arch, training_file, "
                             "validation_file, hyperparameters, base_model, output_model, replace)", key);
            goto out;
        }
    }
    if (opt_string(r, j, "task", &s.task) || opt_string(r, j, "arch", &s.arch) ||
        opt_string(r, j, "training_file", &s.training_file) || opt_string(r, j, "validation_file", &s.validation_file) ||
        opt_string(r, j, "base_model", &s.base_model) || opt_string(r, j, "output_model", &s.output_model))
        goto out;
    if (!s.task) { srv_request_fail(r, SRV_E_MISSING, "task", "\"task\" is required (e.g. \"text-generation\")"); goto out; }
    int image_job = srv_job_is_stylize(s.task);
    if (eng_task_parse(s.task) < 0 && !image_job) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "task", "unknown task \"%s\" (text-generation, translation, text-classification, "
                         "image-classification, image-stylization, image-generation, image-stylization-optimize)", s.task);
        goto out;
    }
    if (image_job) {   // its inputs are hyperparameters.style_file and .content_file; it makes an image
        static const char *const unused[] = {"arch", "training_file", "validation_file", "base_model", "output_model"};
        for (size_t i = 0; i < sizeof unused / sizeof unused[0]; i++) {
            const json_t *u = json_object_get(j, unused[i]);
            if (u && !json_is_null(u)) {
                srv_request_fail(r, SRV_E_BAD_VALUE, unused[i], "%s does not apply to image-stylization-optimize (it makes an "
                                 "image from hyperparameters.style_file and .content_file)", unused[i]);
                goto out;
            }
        }
    } else if (!s.training_file) { srv_request_fail(r, SRV_E_MISSING, "training_file", "\"training_file\" (a file id from POST /v1/files) is required"); goto out; }
    if (!image_job && !s.output_model) { srv_request_fail(r, SRV_E_MISSING, "output_model", "\"output_model\" (the new model's id) is required"); goto out; }
    if (!image_job && !srv_registry_valid_id(s.output_model)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "output_model", "output_model must match [A-Za-z0-9._-]{1,64} (and not be . or ..)");
        goto out;
    }
    if (s.base_model && !srv_registry_valid_id(s.base_model)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "base_model", "base_model must match [A-Za-z0-9._-]{1,64}");
        goto out;
    }
    const json_t *rep = json_object_get(j, "replace");
    if (rep && !json_is_null(rep) && !json_is_boolean(rep)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "replace", "replace must be true or false");
        goto out;
    }
    s.replace = json_is_true(rep);
    s.hyperparameters = json_object_get(j, "hyperparameters");
    char *msg = NULL;
    const char *param = NULL;
    if (srv_jobs_hparams_parse(s.hyperparameters, &s, &msg, &param) != 0) {
        srv_request_fail(r, SRV_E_BAD_VALUE, param, "%s", msg);
        free(msg);
        goto out;
    }
    json_t *job = NULL;
    srv_err e = srv_jobs_create(&s, &job, &msg, &param);
    if (e != SRV_OK) {
        srv_request_fail(r, e, param, "%s", msg ? msg : "cannot create the job");
        free(msg);
        goto out;
    }
    json_decref(j);
    return answer(r, 202, job);
out:
    json_decref(j);
    return SRV_HANDLER_DONE;
}

// ---------------------------------------------------------------- GET /v1/jobs
static int list(srv_request *r) {
    const char *ls = srv_http_query(r, "limit"), *after = srv_http_query(r, "after");
    long limit = 20;
    if (ls) {
        char *end;
        limit = strtol(ls, &end, 10);
        if (!*ls || *end || limit < 1 || limit > 100) {
            srv_request_fail(r, SRV_E_BAD_VALUE, "limit", "limit must be an integer in [1, 100]");
            return SRV_HANDLER_DONE;
        }
    }
    if (after && !srv_jobs_valid_id(after)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "after", "after must be a job id (job-...)");
        return SRV_HANDLER_DONE;
    }
    int more = 0;
    json_t *data = srv_jobs_list(after, (int)limit, &more);
    if (!data) {
        srv_request_fail(r, SRV_E_NOT_FOUND, "after", "no job %s", after);
        return SRV_HANDLER_DONE;
    }
    size_t n = json_array_size(data);
    json_t *first = n ? json_object_get(json_array_get(data, 0), "id") : NULL;
    json_t *last = n ? json_object_get(json_array_get(data, n - 1), "id") : NULL;
    return answer(r, 200, json_pack("{s:s,s:o,s:b,s:O?,s:O?}", "object", "list", "data", data, "has_more", more,
                                    "first_id", first, "last_id", last));
}

// ---------------------------------------------------------------- one job
static int no_job(srv_request *r, const char *id) {
    srv_request_fail(r, SRV_E_NOT_FOUND, "id", "no job %.64s (GET /v1/jobs lists them)", id);
    return SRV_HANDLER_DONE;
}

static int events(srv_request *r, const char *id) {
    json_t *o = srv_jobs_get(id);
    if (!o) return no_job(r, id);
    json_decref(o);
    if (!(r->stream = srv_stream_new(r->conn))) {
        srv_request_fail(r, SRV_E_UNAVAILABLE, NULL, "out of memory; retry later");
        return SRV_HANDLER_DONE;
    }
    if (srv_http_respond_stream(r) != 0) {
        log_warn("request %s: cannot queue the event-stream response; closing the connection", r->id);
        return SRV_HANDLER_CLOSE;
    }
    srv_jobs_follow(id, r);   // the history now, then live events; the final state ends it
    return SRV_HANDLER_ASYNC;
}

// A size from the query string, or the default; -1 after answering 400.
static int plot_side(srv_request *r, const char *key, int dflt) {
    const char *s = srv_http_query(r, key);
    if (!s) return dflt;
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 160 || v > 2000) {
        srv_request_fail(r, SRV_E_BAD_VALUE, key, "%s must be an integer in [160, 2000]", key);
        return -1;
    }
    return (int)v;
}

static int loss_png(srv_request *r, const char *id) {
    int w = plot_side(r, "width", 640), h = w < 0 ? -1 : plot_side(r, "height", 400);
    if (w < 0 || h < 0) return SRV_HANDLER_DONE;
    uint8_t *png = NULL;
    size_t len = 0;
    char *msg = NULL;
    srv_err e = srv_jobs_plot(id, w, h, &png, &len, &msg);
    if (e == SRV_E_NOT_FOUND) return no_job(r, id);
    if (e != SRV_OK) {
        srv_request_fail(r, e, NULL, "cannot draw the plot: %s", msg ? msg : "unknown error");
        free(msg);
        return SRV_HANDLER_DONE;
    }
    free(r->resp_body);
    r->resp_body = (char *)png;
    r->resp_len = len;
    r->resp_type = "image/png";
    r->status = 200;
    return SRV_HANDLER_DONE;
}

static int result_png(srv_request *r, const char *id) {
    uint8_t *png = NULL;
    size_t len = 0;
    char *msg = NULL;
    srv_err e = srv_jobs_result(id, &png, &len, &msg);
    if (e == SRV_E_NOT_FOUND && !msg) return no_job(r, id);
    if (e != SRV_OK) {
        srv_request_fail(r, e, "id", "%s", msg ? msg : "no result");
        free(msg);
        return SRV_HANDLER_DONE;
    }
    free(r->resp_body);
    r->resp_body = (char *)png;
    r->resp_len = len;
    r->resp_type = "image/png";
    r->status = 200;
    return SRV_HANDLER_DONE;
}

// Splits "/v1/jobs/<id>[/<what>]": copies the id, returns the rest ("" or
// "events", ...), or NULL when the path has more segments or a long id.
static const char *split(const char *path, char id[64]) {
    const char *p = path + strlen("/v1/jobs/"), *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= 64) return NULL;
    memcpy(id, p, n);
    id[n] = 0;
    if (!slash) return "";
    if (strchr(slash + 1, '/')) return NULL;
    return slash + 1;
}

// ---------------------------------------------------------------- routes
int srv_api_jobs_create(srv_request *r, const char *arg) { return create(r); }
int srv_api_jobs_list(srv_request *r, const char *arg) { return list(r); }

int srv_api_jobs_get(srv_request *r, const char *arg) {
    char id[64];
    const char *what = split(r->path, id);
    if (!what) { srv_request_fail(r, SRV_E_NOT_FOUND, NULL, "no such endpoint: GET %.200s", r->path); return SRV_HANDLER_DONE; }
    if (!*what) {
        r->route = "/v1/jobs/{id}";
        json_t *o = srv_jobs_get(id);
        return o ? answer(r, 200, o) : no_job(r, id);
    }
    if (strcmp(what, "events") == 0) { r->route = "/v1/jobs/{id}/events"; return events(r, id); }
    if (strcmp(what, "loss.png") == 0) { r->route = "/v1/jobs/{id}/loss.png"; return loss_png(r, id); }
    if (strcmp(what, "result.png") == 0) { r->route = "/v1/jobs/{id}/result.png"; return result_png(r, id); }
    srv_request_fail(r, SRV_E_NOT_FOUND, NULL, "no such endpoint: GET %.200s (a job has /events, /loss.png and, when it "
                     "makes an image, /result.png)", r->path);
    return SRV_HANDLER_DONE;
}

int srv_api_jobs_post(srv_request *r, const char *arg) {
    char id[64];
    const char *what = split(r->path, id);
    if (!what || strcmp(what, "cancel") != 0) {
        srv_request_fail(r, SRV_E_NOT_FOUND, NULL, "no such endpoint: POST %.200s (POST /v1/jobs/{id}/cancel cancels a job)", r->path);
        return SRV_HANDLER_DONE;
    }
    r->route = "/v1/jobs/{id}/cancel";
    json_t *o = NULL;
    srv_err e = srv_jobs_cancel(id, &o);
    if (e == SRV_E_NOT_FOUND) return no_job(r, id);
    if (e == SRV_E_CONFLICT) {
        const char *st = json_string_value(json_object_get(o, "status"));
        srv_request_fail(r, e, "id", "job %s has already finished (%s)", id, st ? st : "?");
        json_decref(o);
        return SRV_HANDLER_DONE;
    }
    return answer(r, 200, o);
}
