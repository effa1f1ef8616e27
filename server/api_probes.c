// api_probes.c — GET /healthz, /readyz, /metrics.
#include <string.h>           // strdup
#include "server/api.h"       // declarations
#include "server/metrics.h"   // srv_metrics_render
#include "server/registry.h"  // srv_registry_ready

int srv_api_healthz(srv_request *r, const char *arg) {
    srv_request_json(r, 200, strdup("{\"status\":\"ok\"}"));
    return SRV_HANDLER_DONE;
}

int srv_api_readyz(srv_request *r, const char *arg) {
    json_t *missing;
    int ready = srv_registry_ready(&missing);
    json_t *o = ready ? json_pack("{s:s,s:i}", "status", "ok", "models", srv_registry_count())
                      : json_pack("{s:s,s:o}", "status", "unavailable", "missing", missing);
    if (ready) json_decref(missing);
    srv_request_json(r, ready ? 200 : 503, json_dumps(o, JSON_COMPACT));
    json_decref(o);
    return SRV_HANDLER_DONE;
}

int srv_api_metrics(srv_request *r, const char *arg) {
    srv_request_json(r, 200, srv_metrics_render());
    r->resp_type = "text/plain; version=0.0.4; charset=utf-8";
    return SRV_HANDLER_DONE;
}
