// errors.c — the error table's lookups and the JSON error body (see errors.h).
#include "server/errors.h"
#include <jansson.h>   // json_pack, json_dumps
#include <stdlib.h>    // free
#include <string.h>    // strdup, strlen
#include "engine/text/utf8.h"       // eng_utf8_valid

static const struct { int status; const char *type, *code; } table[] = {
#define XX(name, status, type, code) {status, type, code},
    SRV_ERRORS(XX)
#undef XX
};
_Static_assert(sizeof table / sizeof table[0] == SRV_E__COUNT, "error table out of step");

int srv_err_status(srv_err e) { return (unsigned)e < SRV_E__COUNT ? table[e].status : 500; }
const char *srv_err_type(srv_err e) { return (unsigned)e < SRV_E__COUNT ? table[e].type : "server_error"; }
const char *srv_err_code(srv_err e) { return (unsigned)e < SRV_E__COUNT ? table[e].code : "internal_error"; }

char *srv_err_body(srv_err e, const char *message, const char *param) {
    // Messages may quote client bytes (a JSON parse error, a Content-Type)
    // that are not UTF-8, which json_pack refuses: the answer would have no
    // body at all (found by fuzz/fuzz_completions.c). Non-ASCII bytes of such
    // a message become '?'.
    char *ascii = NULL;
    if (message && !eng_utf8_valid(message, strlen(message)) && (ascii = strdup(message))) {
        for (char *c = ascii; *c; c++)
            if ((unsigned char)*c >= 0x80) *c = '?';
        message = ascii;
    }
    json_t *o = json_pack("{s:{s:s,s:s,s:s?,s:s}}", "error", "message", message ? message : srv_err_code(e),
                          "type", srv_err_type(e), "param", param, "code", srv_err_code(e));
    // s:s? yields null for a NULL param, as OpenAI does
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    free(ascii);
    return s;
}
