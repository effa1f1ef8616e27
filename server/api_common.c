// api_common.c — helpers shared by the handlers: JSON bodies, model lookup,
// the hand-over to the scheduler, and the 501 answer of unbuilt endpoints.
#include <string.h>           // strcmp
#include "server/api.h"       // declarations
#include "server/registry.h"  // srv_registry_get
#include "server/sched.h"     // srv_sched_submit

int srv_api_submit(srv_request *r) {
    srv_http_suspend(r);
    srv_err e = srv_sched_submit(r);
    if (e != SRV_OK) {
        if (e == SRV_E_QUEUE_FULL)
            srv_request_fail(r, e, NULL, "the queue of model %s is full (%d items); retry later", r->model->id, r->model->max_queue_size);
        else
            srv_request_fail(r, e, NULL, "server is shutting down");
        srv_request_complete(r);
    }
    return SRV_HANDLER_ASYNC;
}

json_t *srv_api_parse_json(srv_request *r) {
    const char *ct = srv_http_header(r, "Content-Type");
    if (ct && strncasecmp(ct, "application/json", 16) != 0 && strncasecmp(ct, "text/plain", 10) != 0) {
        srv_request_fail(r, SRV_E_MEDIA_TYPE, NULL, "Content-Type must be application/json (got %.100s)", ct);
        return NULL;
    }
    if (r->body_len == 0) {
        srv_request_fail(r, SRV_E_BAD_JSON, NULL, "request body is empty; expected a JSON object");
        return NULL;
    }
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        srv_request_fail(r, SRV_E_BAD_JSON, NULL, "invalid JSON at line %d column %d: %s", e.line, e.column, e.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        srv_request_fail(r, SRV_E_BAD_JSON, NULL, "request body must be a JSON object");
        return NULL;
    }
    return j;
}

srv_model *srv_api_model(srv_request *r, const char *id, int task) {
    if (!id) {
        srv_request_fail(r, SRV_E_MISSING, "model", "\"model\" is required");
        return NULL;
    }
    if (!srv_registry_valid_id(id)) {
        srv_request_fail(r, SRV_E_BAD_VALUE, "model", "model must match [A-Za-z0-9._-]{1,64}");
        return NULL;
    }
    free(r->model_id);
    r->model_id = strdup(id);
    srv_model *m = srv_registry_get(id);
    if (!m) {
        srv_request_fail(r, SRV_E_MODEL_NOT_FOUND, "model", "model '%s' is not loaded (GET /v1/models lists the loaded ones)", id);
        return NULL;
    }
    if (task >= 0 && (int)m->m->task != task) {
        srv_request_fail(r, SRV_E_WRONG_TASK, "model", "model '%s' is a %s model; this endpoint needs a %s model",
                         id, eng_task_name(m->m->task), eng_task_name((eng_task)task));
        srv_model_unref(m);
        return NULL;
    }
    r->model = m;
    return m;
}

int srv_api_unbuilt(srv_request *r, const char *arg) {
    srv_request_fail(r, SRV_E_NOT_IMPLEMENTED, NULL,
                     "%s %s is part of the inferd API but is not available in this version yet "
                     "(see README.md, 'What works today')", r->method, r->route);
    return SRV_HANDLER_DONE;
}
