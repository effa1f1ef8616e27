// api_models.c — GET/POST /v1/models, GET/DELETE /v1/models/{id}.
#include <string.h>           // strdup
#include "server/api.h"       // declarations
#include "server/registry.h"  // srv_registry_*

static void reply(srv_request *r, int status, json_t *o) {
    srv_request_json(r, status, json_dumps(o, JSON_COMPACT));
    json_decref(o);
}

int srv_api_models_list(srv_request *r, const char *arg) {
    reply(r, 200, srv_registry_list_json());
    return SRV_HANDLER_DONE;
}

int srv_api_models_get(srv_request *r, const char *id) {
    if (!srv_api_model(r, id, -1)) return SRV_HANDLER_DONE;
    reply(r, 200, srv_model_json(r->model, 1));
    return SRV_HANDLER_DONE;
}

int srv_api_models_load_parse(srv_request *r, const json_t *j, const char **id_out, const char **path_out) {
    const json_t *jid = json_object_get(j, "id"), *jpath = json_object_get(j, "path");
    const char *id = json_string_value(jid);
    const char *path = jpath ? json_string_value(jpath) : id;
    if (!id) srv_request_fail(r, jid ? SRV_E_BAD_VALUE : SRV_E_MISSING, "id", "\"id\" (string) is required");
    else if (!srv_registry_valid_id(id)) srv_request_fail(r, SRV_E_BAD_VALUE, "id", "id must match [A-Za-z0-9._-]{1,64}");
    else if (!path) srv_request_fail(r, SRV_E_BAD_VALUE, "path", "\"path\" must be a string");
    else if (!srv_registry_safe_path(path))
        srv_request_fail(r, SRV_E_BAD_VALUE, "path", "path must be relative to the model repository, without '..' or a leading '/'");
    else {
        *id_out = id;
        *path_out = path;
        return 0;
    }
    return -1;
}

int srv_api_models_load(srv_request *r, const char *arg) {
    json_t *j = srv_api_parse_json(r);
    if (!j) return SRV_HANDLER_DONE;
    const char *id, *path;
    if (srv_api_models_load_parse(r, j, &id, &path) == 0) {
        char *err = NULL;
        int replaced = 0;
        r->model_id = strdup(id);
        if (srv_registry_load(id, path, &replaced, &err) != 0) {
            srv_request_fail(r, SRV_E_UNPROCESSABLE, "path", "cannot load model '%s': %s", id, err);
            free(err);
        } else if (srv_api_model(r, id, -1)) {
            reply(r, replaced ? 200 : 201, srv_model_json(r->model, 1));
        }
    }
    json_decref(j);
    return SRV_HANDLER_DONE;
}

int srv_api_models_unload(srv_request *r, const char *id) {
    if (!srv_api_model(r, id, -1)) return SRV_HANDLER_DONE;
    srv_registry_unload(id);   // r->model keeps it alive until this request is freed
    reply(r, 200, json_pack("{s:s,s:s,s:b}", "id", id, "object", "model", "deleted", 1));
    return SRV_HANDLER_DONE;
}
