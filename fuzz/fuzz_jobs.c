// fuzz_jobs.c — the JSON body of POST /v1/jobs.
//
// Each input is a request body. It goes through the handler
// (srv_api_jobs_create): JSON, the known fields and their types, the task,
// model ids, and the hyperparameters (srv_jobs_hparams_parse: every type,
// range and unknown key). The jobs module is not started here, so a body that
// passes every check is answered 503 by srv_jobs_create instead of training:
// the answer is always an error in the API.md shape, and nothing may crash
// or leak. The request is freed after each input.
#include <jansson.h>           // json_loads
#include <string.h>            // strcmp
#include "fuzz/fuzz.h"         // fuzz_request, FUZZ_CHECK
#include "server/api.h"        // srv_api_jobs_create

int fuzz_jobs_init(void) { return 0; }

void fuzz_jobs_one(const uint8_t *data, size_t size) {
    srv_request *r = fuzz_request(data, size);
    if (!r) return;
    r->path = strdup("/v1/jobs");
    int rc = srv_api_jobs_create(r, NULL);
    FUZZ_CHECK(rc == SRV_HANDLER_DONE);
    FUZZ_CHECK(r->status >= 400 && r->status != 500 && r->resp_body);
    json_t *e = json_loads(r->resp_body, 0, NULL);   // the API.md error shape
    FUZZ_CHECK(e && json_is_string(json_object_get(json_object_get(e, "error"), "message")));
    json_decref(e);
    srv_request_unref(r);
}

FUZZ_ENTRY(jobs)
