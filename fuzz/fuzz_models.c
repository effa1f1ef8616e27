// fuzz_models.c — the JSON body of POST /v1/models ({"id":…,"path":…}).
//
// Each input is a request body: srv_api_parse_json, then
// srv_api_models_load_parse (id and path validation). When it accepts the
// body, the harness does what the handler does next, srv_registry_load of
// that path in the fuzz repository (fuzz_common.c), and unloads it again, so
// every accepted id/path pair is really opened as a model directory. An
// accepted path must be one srv_registry_safe_path allows (no "..", no '/').
#include <jansson.h>           // json_t
#include "fuzz/fuzz.h"         // fuzz_request, FUZZ_CHECK
#include "server/api.h"        // srv_api_parse_json, srv_api_models_load_parse
#include "server/registry.h"   // srv_registry_*

int fuzz_models_init(void) { return fuzz_registry() ? 0 : -1; }

void fuzz_models_one(const uint8_t *data, size_t size) {
    srv_request *r = fuzz_request(data, size);
    if (!r) return;
    json_t *j = srv_api_parse_json(r);
    const char *id, *path;
    if (j && srv_api_models_load_parse(r, j, &id, &path) == 0) {
        FUZZ_CHECK(srv_registry_valid_id(id) && srv_registry_safe_path(path));
        FUZZ_CHECK(path[0] != '/');
        // never replace the models the other checks rely on
        if (strcmp(id, "fashion-cnn") != 0 && strcmp(id, "fortune-gpt") != 0) {
            char *err = NULL;
            if (srv_registry_load(id, path, NULL, &err) == 0) FUZZ_CHECK(srv_registry_unload(id) == 0);
            else FUZZ_CHECK(err != NULL);
            free(err);
        }
    } else {
        FUZZ_CHECK(r->status >= 400 && r->resp_body);
    }
    json_decref(j);
    srv_request_unref(r);
}

FUZZ_ENTRY(models)
