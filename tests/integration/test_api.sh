#!/usr/bin/env bash
# test_api.sh — every HTTP endpoint of API.md that this version serves, and its
# error paths, against a real daemon and the fashion-cnn model of $MODELS_DIR:
#
#  (a) probes: /healthz, /readyz (200, and 503 naming a model whose config.json
#      is broken, from a temp repository holding a copy of fashion-cnn);
#  (b) models: list/get fields, unknown id 404, bad ids 400, POST load (201, then
#      200 = replaced), bad paths 400, DELETE then 404;
#  (c) classification: raw PNG/JPEG, JSON base64 (one and an array of two),
#      top_k, sorted probabilities, clear test images get their true label,
#      every `mkimg variants` flavour agrees with gray8.png;
#  (d) errors: bad JSON/types/values, undecodable/huge/truncated images, body
#      limit, unknown model/endpoint, 405 + Allow, unsupported media types, and
#      every error body has the API.md shape; the daemon keeps serving after;
#  (e) X-Request-Id, API key, CORS, the 501 endpoints, /metrics.
#
# Needs: $INFERD, $TOOLS/mkimg, $MODELS_DIR/fashion-cnn (any decently trained
# version: only clear examples are asserted, never exact scores) and the
# Fashion-MNIST test set ($FASHION_MNIST, default /usr/share/datasets/fashion-mnist).
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

MODEL=fashion-cnn
FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
IMAGES=$FASHION_MNIST/t10k-images-idx3-ubyte.gz
MKIMG=$TOOLS/mkimg
HDRS=$TEST_TMP/headers
IMG=$TEST_TMP/img
PYH=$TEST_TMP/helpers.py

# ---- prerequisites -------------------------------------------------------------

missing=""
[ -x "$INFERD" ] || missing="$missing binary $INFERD;"
[ -x "$MKIMG" ] || missing="$missing test tool $MKIMG (make build/tools/mkimg);"
[ -f "$IMAGES" ] || missing="$missing dataset $IMAGES;"
[ -f "$MODELS_DIR/$MODEL/config.json" ] || missing="$missing model $MODELS_DIR/$MODEL;"
if [ -n "$missing" ]; then
  fail "prerequisites" "missing:$missing"
  finish
  exit
fi

# ---- helpers -------------------------------------------------------------------

cat >"$PYH" <<'PY'
import json, re, sys

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
          "Shirt", "Sneaker", "Bag", "Ankle boot"]
TYPES = {"invalid_request_error", "authentication_error", "rate_limit_error",
         "timeout_error", "server_error"}

def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        sys.exit(f"not JSON ({e}): {raw[:300]!r}")

def need(cond, msg):
    if not cond:
        sys.exit(msg)

def err(path, want_type="-", want_code="-", want_param="-"):
    """{"error":{"message":str,"type":str,"param":str|null,"code":str}}"""
    v = load(path)
    need(isinstance(v, dict) and isinstance(v.get("error"), dict), f"no error object: {v}")
    e = v["error"]
    need(isinstance(e.get("message"), str) and e["message"].strip(), f"error.message missing/empty: {e}")
    need(isinstance(e.get("type"), str) and e["type"] in TYPES, f"error.type not one of API.md's: {e}")
    need(isinstance(e.get("code"), str) and e["code"], f"error.code missing/empty: {e}")
    need("param" in e and (e["param"] is None or isinstance(e["param"], str)), f"error.param missing: {e}")
    need(want_type == "-" or e["type"] == want_type, f"error.type {e['type']!r}, expected {want_type!r}")
    need(want_code == "-" or e["code"] == want_code, f"error.code {e['code']!r}, expected {want_code!r}")
    need(want_param == "-" or e["param"] == want_param, f"error.param {e['param']!r}, expected {want_param!r}")

def cls(path, model, n, k, *tops):
    """a classification answer: n items, k labels each, probabilities sorted, sum <= 1"""
    v = load(path)
    need(v.get("object") == "list", f"object is {v.get('object')!r}, expected 'list'")
    need(v.get("model") == model, f"model is {v.get('model')!r}, expected {model!r}")
    data = v.get("data")
    need(isinstance(data, list) and len(data) == int(n), f"data has {len(data) if isinstance(data, list) else data!r} items, expected {n}")
    for i, d in enumerate(data):
        need(d.get("index") == i, f"data[{i}].index is {d.get('index')!r}")
        labels = d.get("labels")
        need(isinstance(labels, list) and len(labels) == int(k), f"data[{i}] has {labels!r}, expected {k} labels")
        scores = []
        for l in labels:
            need(l.get("label") in LABELS, f"unknown label {l.get('label')!r}")
            s = l.get("score")
            need(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= 1, f"score {s!r} is not a probability")
            scores.append(s)
        need(len({l["label"] for l in labels}) == len(labels), f"duplicate labels in {labels}")
        need(all(a >= b for a, b in zip(scores, scores[1:])), f"scores not sorted descending: {scores}")
        need(sum(scores) <= 1 + 1e-6, f"scores sum to {sum(scores)} > 1")
        if int(k) == len(LABELS):
            need(sum(scores) >= 0.99, f"all {k} scores sum to {sum(scores)}, expected ~1")
        if i < len(tops) and tops[i] != "-":
            need(labels[0]["label"] == tops[i], f"data[{i}] top label {labels[0]['label']!r}, expected {tops[i]!r}")

def model_fields(m, mid):
    need(m.get("id") == mid, f"id {m.get('id')!r}")
    need(m.get("object") == "model", f"object {m.get('object')!r}, expected 'model'")
    need(m.get("task") == "image-classification", f"task {m.get('task')!r}")
    need(isinstance(m.get("arch"), str) and m["arch"], f"arch {m.get('arch')!r}")
    need(isinstance(m.get("params"), int) and not isinstance(m["params"], bool) and m["params"] > 0, f"params {m.get('params')!r}")
    need(m.get("status") == "ready", f"status {m.get('status')!r}")

def models_list(path, mid):
    v = load(path)
    need(v.get("object") == "list" and isinstance(v.get("data"), list), f"not a list: {v}")
    found = [m for m in v["data"] if m.get("id") == mid]
    need(len(found) == 1, f"{mid} listed {len(found)} times in {[m.get('id') for m in v['data']]}")
    model_fields(found[0], mid)

def models_absent(path, mid):
    v = load(path)
    need(all(m.get("id") != mid for m in v.get("data", [])), f"{mid} still listed")

def model_get(path, mid):
    v = load(path)
    model_fields(v, mid)
    b = v.get("batching")
    need(isinstance(b, dict), f"no batching object: {v}")
    for key in ("max_batch_size", "max_queue_delay_us", "max_queue_size", "timeout_ms"):
        need(isinstance(b.get(key), int) and not isinstance(b[key], bool), f"batching.{key} is {b.get(key)!r}")
    need(isinstance(v.get("stats"), dict), f"no stats (counters) object: {v}")

def metrics(path, model):
    text = open(path, encoding="utf-8").read()
    for name in ("inferd_requests_total", "inferd_request_duration_seconds_bucket",
                 "inferd_request_duration_seconds_count", "inferd_queue_depth",
                 "inferd_batch_size_bucket", "inferd_batch_size_count",
                 "inferd_models_loaded", "process_resident_memory_bytes"):
        need(re.search(r"^" + name + r"[{ ]", text, re.M), f"metric {name} missing")
    for name, typ in (("inferd_requests_total", "counter"), ("inferd_request_duration_seconds", "histogram"),
                      ("inferd_queue_depth", "gauge"), ("inferd_batch_size", "histogram")):
        need(re.search(rf"^# TYPE {name} {typ}$", text, re.M), f"no '# TYPE {name} {typ}'")
    ok = 0
    for m in re.finditer(r"^inferd_requests_total\{([^}]*)\} (\S+)$", text, re.M):
        lab = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if lab.get("endpoint") == "/v1/classifications" and lab.get("model") == model and lab.get("status") == "200":
            ok += float(m.group(2))
    need(ok >= 1, "no inferd_requests_total{endpoint=\"/v1/classifications\",model=\"%s\",status=\"200\"} > 0" % model)
    need(re.search(r'^inferd_batch_size_bucket\{[^}]*le="1"[^}]*\} ', text, re.M), "no inferd_batch_size le=\"1\" bucket")
    m = re.search(r"^inferd_models_loaded (\S+)$", text, re.M)
    need(m and float(m.group(1)) >= 1, "inferd_models_loaded < 1")
    m = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M)
    need(m and float(m.group(1)) > 0, "process_resident_memory_bytes not > 0")

def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"err": err, "cls": cls, "models_list": models_list, "models_absent": models_absent,
     "model_get": model_get, "metrics": metrics}[cmd](*args)

main()
PY

# header NAME — the value of header NAME in the last response saved in $HDRS.
header() {
  tr -d '\r' <"$HDRS" | grep -i "^$1:" | tail -n 1 | cut -d: -f2- | sed 's/^[[:space:]]*//'
}
has_header() { [ -n "$(header "$1")" ]; }
no_header() { [ -z "$(header "$1")" ]; }
# header_has NAME WORD — header NAME lists WORD (case-insensitive, comma-separated)
header_has() {
  header "$1" | tr ',' '\n' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | grep -qix -- "$2"
}
# header_matches NAME REGEX — header NAME matches REGEX (case-insensitive)
header_matches() { header "$1" | grep -qiE -- "$2"; }
# contains FILE TEXT / not_contains FILE TEXT
contains() { grep -qF -- "$2" "$1"; }
not_contains() { ! grep -qF -- "$2" "$1"; }

# expect_error NAME STATUS TYPE CODE PARAM curl-args... — the status, then the
# API.md error shape of the body ("-" skips a field).
expect_error() {
  local name=$1 status=$2 type=$3 code=$4 param=$5
  shift 5
  if expect_status "$name" "$status" -D "$HDRS" "$@"; then
    check "$name: error body has the API.md shape" python3 "$PYH" err "$BODY" "$type" "$code" "$param"
  fi
}

# post_cls NAME STATUS JSON — POST a JSON body to /v1/classifications.
post_cls() {
  expect_status "$1" "$2" -D "$HDRS" -H 'Content-Type: application/json' --data-binary "$3" "$BASE/v1/classifications"
}
# raw_cls NAME STATUS FILE CONTENT-TYPE QUERY — POST an image body.
raw_cls() {
  expect_status "$1" "$2" -D "$HDRS" -H "Content-Type: $4" --data-binary "@$3" "$BASE/v1/classifications?$5"
}
b64() { base64 -w0 <"$1"; }

# ---- test images -----------------------------------------------------------------

mkdir -p "$IMG/variants"
for i in 0 1 2 3; do
  "$MKIMG" idx2png "$IMAGES" "$i" "$IMG/$i.png" >/dev/null
done
"$MKIMG" idx2jpg "$IMAGES" 0 "$IMG/0.jpg" >/dev/null
"$MKIMG" variants "$IMAGES" 0 "$IMG/variants" >/dev/null
"$MKIMG" huge "$IMG/huge.png" >/dev/null
"$MKIMG" truncated "$IMG/0.png" "$IMG/trunc.png" $(($(wc -c <"$IMG/0.png") / 2)) >/dev/null
"$MKIMG" truncated "$IMG/0.jpg" "$IMG/trunc.jpg" $(($(wc -c <"$IMG/0.jpg") / 2)) >/dev/null
printf 'this is plain text, not an image at all\n' >"$IMG/text.bin"
head -c 102400 /dev/zero | tr '\0' 'A' >"$IMG/100k.bin"
printf '{"model":"%s","image":"%s"}' "$MODEL" "$(cat "$IMG/100k.bin")" >"$IMG/100k.json"
printf '{"model":"%s","image":"\xff\xfe\xfd"}' "$MODEL" >"$IMG/badutf8.json"
printf '{"model":"fashion\xc3\x28cnn","image":"aGk="}' >"$IMG/badutf8b.json"
check "test images written" test -s "$IMG/0.png" -a -s "$IMG/0.jpg" -a -s "$IMG/variants/gray8.png" -a -s "$IMG/huge.png" -a -s "$IMG/trunc.png"

P0=$(b64 "$IMG/0.png")
P1=$(b64 "$IMG/1.png")

# ======================================================================================
# main daemon: the committed model repository, fashion-cnn only
# ======================================================================================
start_daemon --load "$MODEL" || { finish; exit; }
CLS=$BASE/v1/classifications

# ---- probes ----------------------------------------------------------------------
if expect_status "healthz 200" 200 -D "$HDRS" "$BASE/healthz"; then
  check "healthz status ok" test "$(json_get "$BODY" .status)" = ok
  check "healthz is application/json" header_matches Content-Type '^application/json'
fi
expect_status "readyz 200 with the model loaded" 200 "$BASE/readyz"

# ---- models ------------------------------------------------------------------------
expect_status "GET /v1/models" 200 "$BASE/v1/models" &&
  check "model list has $MODEL with id/object/task/arch/params/status" python3 "$PYH" models_list "$BODY" "$MODEL"
expect_status "GET /v1/models/$MODEL" 200 "$BASE/v1/models/$MODEL" &&
  check "model details: fields, batching config, counters" python3 "$PYH" model_get "$BODY" "$MODEL"
expect_error "GET unknown model 404" 404 invalid_request_error - - "$BASE/v1/models/no-such-model"
expect_error "GET /v1/models/..%2Fetc 400" 400 invalid_request_error - - "$BASE/v1/models/..%2Fetc"
expect_error "DELETE /v1/models/..%2Fetc 400" 400 invalid_request_error - - -X DELETE "$BASE/v1/models/..%2Fetc"
expect_error "GET /v1/models/.. 400" 400 invalid_request_error - - --path-as-is "$BASE/v1/models/.."
expect_error "GET model id with a space 400" 400 invalid_request_error - - "$BASE/v1/models/bad%20id"
expect_error "GET model id with a quote 400" 400 invalid_request_error - - "$BASE/v1/models/bad%22id"
expect_error "GET model id of 65 chars 400" 400 invalid_request_error - - "$BASE/v1/models/$(printf '%065d' 0 | tr 0 a)"

J=(-H 'Content-Type: application/json')
expect_error "POST /v1/models id '../x' 400" 400 invalid_request_error - id "${J[@]}" -d '{"id":"../x","path":"fashion-cnn"}' "$BASE/v1/models"
expect_error "POST /v1/models id 'a/b' 400" 400 invalid_request_error - id "${J[@]}" -d '{"id":"a/b","path":"fashion-cnn"}' "$BASE/v1/models"
expect_error "POST /v1/models empty id 400" 400 invalid_request_error - id "${J[@]}" -d '{"id":"","path":"fashion-cnn"}' "$BASE/v1/models"
expect_error "POST /v1/models id 5 400" 400 invalid_request_error - id "${J[@]}" -d '{"id":5,"path":"fashion-cnn"}' "$BASE/v1/models"
expect_error "POST /v1/models path with .. 400" 400 invalid_request_error - path "${J[@]}" -d '{"id":"itest-x","path":"../models/fashion-cnn"}' "$BASE/v1/models"
expect_error "POST /v1/models path a/../b 400" 400 invalid_request_error - path "${J[@]}" -d '{"id":"itest-x","path":"fashion-cnn/../fashion-cnn"}' "$BASE/v1/models"
expect_error "POST /v1/models absolute path 400" 400 invalid_request_error - path "${J[@]}" -d "{\"id\":\"itest-x\",\"path\":\"$MODELS_DIR/$MODEL\"}" "$BASE/v1/models"
# a nonexistent directory: any 4xx with an error body
code=$(curl -s -o "$BODY" -w '%{http_code}' "${J[@]}" -d '{"id":"itest-x","path":"no-such-dir"}' "$BASE/v1/models")
check "POST /v1/models nonexistent path 4xx (got $code)" test "$code" -ge 400 -a "$code" -lt 500
check "POST /v1/models nonexistent path: error body" python3 "$PYH" err "$BODY" invalid_request_error
expect_status "GET /v1/models after failed loads" 200 "$BASE/v1/models" &&
  check "failed loads left nothing behind" python3 "$PYH" models_absent "$BODY" itest-x

expect_status "POST /v1/models load a copy under a new id 201" 201 "${J[@]}" -d '{"id":"itest-copy","path":"fashion-cnn"}' "$BASE/v1/models" &&
  check "loaded copy: id itest-copy" test "$(json_get "$BODY" .id)" = itest-copy
expect_status "GET /v1/models/itest-copy" 200 "$BASE/v1/models/itest-copy" &&
  check "loaded copy: details" python3 "$PYH" model_get "$BODY" itest-copy
raw_cls "classify with the loaded copy" 200 "$IMG/0.png" image/png "model=itest-copy&top_k=1" &&
  check "loaded copy: image 0 is an Ankle boot" python3 "$PYH" cls "$BODY" itest-copy 1 1 "Ankle boot"
expect_status "POST /v1/models same id again 200 (replaced)" 200 "${J[@]}" -d '{"id":"itest-copy","path":"fashion-cnn"}' "$BASE/v1/models"
expect_status "GET /v1/models lists the copy once" 200 "$BASE/v1/models" &&
  check "copy listed once" python3 "$PYH" models_list "$BODY" itest-copy
expect_status "DELETE /v1/models/itest-copy" 200 -X DELETE "$BASE/v1/models/itest-copy"
expect_error "GET deleted model 404" 404 invalid_request_error - - "$BASE/v1/models/itest-copy"
expect_error "classify with the deleted model 404" 404 invalid_request_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" "$BASE/v1/classifications?model=itest-copy"
expect_error "DELETE it again 404" 404 invalid_request_error - - -X DELETE "$BASE/v1/models/itest-copy"
expect_status "GET /v1/models after delete" 200 "$BASE/v1/models" &&
  check "deleted model not listed" python3 "$PYH" models_absent "$BODY" itest-copy
expect_status "$MODEL still served" 200 "$BASE/v1/models/$MODEL"

# ---- classification ----------------------------------------------------------------
raw_cls "raw PNG, top_k=3" 200 "$IMG/0.png" image/png "model=$MODEL&top_k=3" &&
  check "raw PNG: 3 sorted labels, top Ankle boot" python3 "$PYH" cls "$BODY" "$MODEL" 1 3 "Ankle boot"
raw_cls "raw JPEG, top_k=2" 200 "$IMG/0.jpg" image/jpeg "model=$MODEL&top_k=2" &&
  check "raw JPEG: 2 sorted labels, top Ankle boot" python3 "$PYH" cls "$BODY" "$MODEL" 1 2 "Ankle boot"
raw_cls "raw PNG, top_k=10" 200 "$IMG/0.png" image/png "model=$MODEL&top_k=10" &&
  check "top_k=10: every label once, sum ~1" python3 "$PYH" cls "$BODY" "$MODEL" 1 10 "Ankle boot"
raw_cls "raw PNG, top_k=1" 200 "$IMG/0.png" image/png "model=$MODEL&top_k=1" &&
  check "top_k=1: one label" python3 "$PYH" cls "$BODY" "$MODEL" 1 1 "Ankle boot"
truth=("Ankle boot" "Pullover" "Trouser" "Trouser")
for i in 1 2 3; do
  raw_cls "raw PNG test image $i" 200 "$IMG/$i.png" image/png "model=$MODEL&top_k=3" &&
    check "test image $i is a ${truth[$i]}" python3 "$PYH" cls "$BODY" "$MODEL" 1 3 "${truth[$i]}"
done
post_cls "JSON base64 single, top_k=3" 200 "{\"model\":\"$MODEL\",\"image\":\"$P0\",\"top_k\":3}" &&
  check "JSON single: 3 sorted labels, top Ankle boot" python3 "$PYH" cls "$BODY" "$MODEL" 1 3 "Ankle boot"
post_cls "JSON base64 array of 2, top_k=4" 200 "{\"model\":\"$MODEL\",\"image\":[\"$P0\",\"$P1\"],\"top_k\":4}" &&
  check "JSON array: 2 items in order (Ankle boot, Pullover)" python3 "$PYH" cls "$BODY" "$MODEL" 2 4 "Ankle boot" "Pullover"
post_cls "JSON base64 JPEG" 200 "{\"model\":\"$MODEL\",\"image\":\"$(b64 "$IMG/0.jpg")\",\"top_k\":1}" &&
  check "JSON JPEG: Ankle boot" python3 "$PYH" cls "$BODY" "$MODEL" 1 1 "Ankle boot"
expect_status "JSON with charset=utf-8" 200 -H 'Content-Type: application/json; charset=utf-8' \
  --data-binary "{\"model\":\"$MODEL\",\"image\":\"$P0\",\"top_k\":1}" "$BASE/v1/classifications"

# every PNG/JPEG flavour of test image 0 gets the same top label as gray8.png
want=""
raw_cls "variant gray8.png" 200 "$IMG/variants/gray8.png" image/png "model=$MODEL&top_k=1" &&
  want=$(json_get "$BODY" '.data[0].labels[0].label')
check "gray8.png is an Ankle boot" test "$want" = "Ankle boot"
nvar=0
for f in "$IMG"/variants/*; do
  name=$(basename "$f")
  [ "$name" = gray8.png ] && continue
  case "$name" in *.png) ct=image/png ;; *.jpg | *.jpeg) ct=image/jpeg ;; *) continue ;; esac
  nvar=$((nvar + 1))
  if raw_cls "variant $name" 200 "$f" "$ct" "model=$MODEL&top_k=1"; then
    got=$(json_get "$BODY" '.data[0].labels[0].label')
    check "variant $name: top label '$got' = gray8's '$want'" test "$got" = "$want"
  fi
done
check "mkimg wrote variants ($nvar besides gray8)" test "$nvar" -ge 5

# ---- errors ----------------------------------------------------------------------------
expect_error "malformed JSON 400" 400 invalid_request_error invalid_json - "${J[@]}" --data-binary "{\"model\":\"$MODEL\"," "$CLS"
expect_error "JSON array body 400" 400 invalid_request_error - - "${J[@]}" --data-binary "[{\"model\":\"$MODEL\",\"image\":\"$P0\"}]" "$CLS"
expect_error "JSON string body 400" 400 invalid_request_error - - "${J[@]}" --data-binary '"hello"' "$CLS"
expect_error "model: 5 400" 400 invalid_request_error - model "${J[@]}" --data-binary "{\"model\":5,\"image\":\"$P0\"}" "$CLS"
expect_error "model with '/' 400" 400 invalid_request_error - model "${J[@]}" --data-binary "{\"model\":\"../$MODEL\",\"image\":\"$P0\"}" "$CLS"
expect_error "model missing 400" 400 invalid_request_error - model "${J[@]}" --data-binary "{\"image\":\"$P0\"}" "$CLS"
for tk in '"3"' 0 11 -1 2.5 true 4294967297 9223372036854775807; do
  expect_error "top_k: $tk 400" 400 invalid_request_error - top_k "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":\"$P0\",\"top_k\":$tk}" "$CLS"
done
expect_error "top_k: 1e30 400" 400 invalid_request_error - - "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":\"$P0\",\"top_k\":1e30}" "$CLS"
expect_error "top_k: 99999999999999999999 400" 400 invalid_request_error - - "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":\"$P0\",\"top_k\":99999999999999999999}" "$CLS"
for tk in 0 11 -1 abc 3x 4294967299; do
  expect_error "?top_k=$tk on a raw image 400" 400 invalid_request_error - top_k -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" "$CLS?model=$MODEL&top_k=$tk"
done
expect_error "missing image 400" 400 invalid_request_error - image "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"top_k\":3}" "$CLS"
expect_error "image: 5 400" 400 invalid_request_error - image "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":5}" "$CLS"
expect_error "image: [] 400" 400 invalid_request_error - image "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":[]}" "$CLS"
expect_error "invalid base64 400" 400 invalid_request_error - image "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":\"!!!not*base64@@\"}" "$CLS"
expect_error "invalid base64 in an array 400" 400 invalid_request_error - image "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":[\"$P0\",\"%%%\"]}" "$CLS"
expect_error "non-image bytes (raw) 415" 415 invalid_request_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/text.bin" "$CLS?model=$MODEL"
expect_error "non-image bytes (base64) 415" 415 invalid_request_error - - "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":\"$(b64 "$IMG/text.bin")\"}" "$CLS"
expect_error "truncated PNG (raw) 400" 400 invalid_request_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/trunc.png" "$CLS?model=$MODEL"
expect_error "truncated PNG (base64) 400" 400 invalid_request_error - - "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":\"$(b64 "$IMG/trunc.png")\"}" "$CLS"
expect_error "truncated JPEG (raw) 400" 400 invalid_request_error - - -H 'Content-Type: image/jpeg' --data-binary "@$IMG/trunc.jpg" "$CLS?model=$MODEL"
expect_error "PNG claiming 100000x100000 (raw) 413" 413 invalid_request_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/huge.png" "$CLS?model=$MODEL"
expect_status "healthz after the huge PNG" 200 "$BASE/healthz"
expect_error "PNG claiming 100000x100000 (base64) 413" 413 invalid_request_error - - "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":\"$(b64 "$IMG/huge.png")\"}" "$CLS"
expect_status "healthz after the second huge PNG" 200 "$BASE/healthz"
expect_error "unknown model (JSON) 404" 404 invalid_request_error - - "${J[@]}" --data-binary "{\"model\":\"no-such-model\",\"image\":\"$P0\"}" "$CLS"
expect_error "unknown model (raw) 404" 404 invalid_request_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" "$CLS?model=no-such-model"
expect_error "raw image without ?model= 400" 400 invalid_request_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" "$CLS"
expect_error "unknown endpoint /v1/nothing 404" 404 invalid_request_error - - "$BASE/v1/nothing"
expect_error "unknown endpoint /nothing 404" 404 invalid_request_error - - -X POST "${J[@]}" -d '{}' "$BASE/nothing"
expect_error "GET /v1/classifications 405" 405 invalid_request_error - - "$CLS" &&
  check "405 Allow header lists POST" header_has Allow POST
expect_error "DELETE /healthz 405" 405 invalid_request_error - - -X DELETE "$BASE/healthz" &&
  check "405 Allow header lists GET" header_has Allow GET
expect_error "PUT /v1/models 405" 405 invalid_request_error - - -X PUT "${J[@]}" -d '{}' "$BASE/v1/models" && {
  check "405 Allow header lists GET" header_has Allow GET
  check "405 Allow header lists POST" header_has Allow POST
}
expect_error "text/csv body 415" 415 invalid_request_error - - -H 'Content-Type: text/csv' --data-binary 'a,b,c' "$CLS?model=$MODEL"
expect_error "form-encoded body 415" 415 invalid_request_error - - --data-urlencode "model=$MODEL" "$CLS"
expect_error "invalid UTF-8 in a JSON string 400" 400 invalid_request_error - - "${J[@]}" --data-binary "@$IMG/badutf8.json" "$CLS"
expect_error "invalid UTF-8 in the model name 400" 400 invalid_request_error - - "${J[@]}" --data-binary "@$IMG/badutf8b.json" "$CLS"
expect_error "empty JSON body 400" 400 invalid_request_error - - -X POST "${J[@]}" "$CLS"
expect_error "empty image body 400" 400 invalid_request_error - - -X POST -H 'Content-Type: image/png' --data-binary '' "$CLS?model=$MODEL"
expect_error "trailing garbage after the JSON object 400" 400 invalid_request_error invalid_json - "${J[@]}" --data-binary "{\"model\":\"$MODEL\",\"image\":\"$P0\"} x" "$CLS"

# the daemon survived all of that and still answers correctly
expect_status "healthz after the error paths" 200 "$BASE/healthz"
raw_cls "classification after the error paths" 200 "$IMG/0.png" image/png "model=$MODEL&top_k=3" &&
  check "still an Ankle boot" python3 "$PYH" cls "$BODY" "$MODEL" 1 3 "Ankle boot"

# ---- X-Request-Id ------------------------------------------------------------------------
expect_status "X-Request-Id: generated" 200 -D "$HDRS" "$BASE/healthz" && {
  id1=$(header X-Request-Id)
  check "X-Request-Id present on 200 ('$id1')" test -n "$id1"
}
expect_status "X-Request-Id: generated again" 200 -D "$HDRS" "$BASE/healthz" &&
  check "X-Request-Id differs per request" test "$(header X-Request-Id)" != "${id1:-}"
expect_status "X-Request-Id: echoed" 200 -D "$HDRS" -H 'X-Request-Id: itest-req-42' "$BASE/v1/models" &&
  check "X-Request-Id echoed on 200" test "$(header X-Request-Id)" = itest-req-42
expect_error "X-Request-Id on an error" 404 invalid_request_error - - -H 'X-Request-Id: itest-err-7' "$BASE/v1/models/no-such-model" &&
  check "X-Request-Id echoed on 404" test "$(header X-Request-Id)" = itest-err-7
expect_status "X-Request-Id on a classification (echo)" 200 -D "$HDRS" -H 'X-Request-Id: itest-cls-1' \
  -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" "$CLS?model=$MODEL" &&
  check "X-Request-Id echoed on a classification" test "$(header X-Request-Id)" = itest-cls-1
expect_error "X-Request-Id on 405" 405 invalid_request_error - - "$CLS" &&
  check "X-Request-Id present on 405" has_header X-Request-Id

# (/v1/images/generations is built: tests/integration/test_images.sh)
# (/v1/jobs is built: tests/integration/test_jobs.sh)

# ---- metrics ---------------------------------------------------------------------------
if expect_status "GET /metrics" 200 -D "$HDRS" "$BASE/metrics"; then
  check "metrics: Prometheus text content type" header_matches Content-Type '^text/plain'
  check "metrics: names, types, classification 200 counter" python3 "$PYH" metrics "$BODY" "$MODEL"
fi

rc=0
stop_daemon || rc=$?
check "main daemon exits 0 on SIGTERM" test "$rc" -eq 0

# ======================================================================================
# limits: body size and image pixels
# ======================================================================================
if start_daemon --load "$MODEL" --max-body-bytes 65536 --max-image-pixels 1000; then
  CLS=$BASE/v1/classifications
  expect_error "100 KB raw body over --max-body-bytes 65536: 413" 413 invalid_request_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/100k.bin" "$CLS?model=$MODEL"
  expect_error "100 KB JSON body: 413" 413 invalid_request_error - - "${J[@]}" --data-binary "@$IMG/100k.json" "$CLS"
  expect_error "100 KB chunked body: 413" 413 invalid_request_error - - -H 'Transfer-Encoding: chunked' -H 'Content-Type: image/png' --data-binary "@$IMG/100k.bin" "$CLS?model=$MODEL"
  expect_error "280x280 image over --max-image-pixels 1000: 413" 413 invalid_request_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/variants/big.png" "$CLS?model=$MODEL"
  raw_cls "28x28 image under the limits" 200 "$IMG/0.png" image/png "model=$MODEL&top_k=1" &&
    check "under the limits: Ankle boot" python3 "$PYH" cls "$BODY" "$MODEL" 1 1 "Ankle boot"
  expect_status "healthz after the limits" 200 "$BASE/healthz"
  stop_daemon
fi

# ======================================================================================
# API key and CORS
# ======================================================================================
if start_daemon --load "$MODEL" --api-key secret --cors-origins "https://app.example"; then
  CLS=$BASE/v1/classifications
  expect_error "no key: /v1/models 401" 401 authentication_error - - "$BASE/v1/models" &&
    check "401 carries X-Request-Id" has_header X-Request-Id
  expect_error "wrong key: 401" 401 authentication_error - - -H 'Authorization: Bearer wrong' "$BASE/v1/models"
  expect_error "key prefix: 401" 401 authentication_error - - -H 'Authorization: Bearer secre' "$BASE/v1/models"
  expect_error "key without Bearer: 401" 401 authentication_error - - -H 'Authorization: secret' "$BASE/v1/models"
  expect_error "no key: classification 401" 401 authentication_error - - -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" "$CLS?model=$MODEL"
  expect_status "right key: /v1/models 200" 200 -H 'Authorization: Bearer secret' "$BASE/v1/models"
  expect_status "right key: classification 200" 200 -H 'Authorization: Bearer secret' -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" "$CLS?model=$MODEL&top_k=1" &&
    check "right key: Ankle boot" python3 "$PYH" cls "$BODY" "$MODEL" 1 1 "Ankle boot"
  expect_status "no key: /healthz open" 200 "$BASE/healthz"
  expect_status "no key: /readyz open" 200 "$BASE/readyz"
  expect_status "no key: /metrics open" 200 "$BASE/metrics"

  # CORS
  expect_status "CORS: allowed origin" 200 -D "$HDRS" -H 'Origin: https://app.example' "$BASE/healthz" &&
    check "CORS: Access-Control-Allow-Origin for the allowed origin" test "$(header Access-Control-Allow-Origin)" = https://app.example
  expect_status "CORS: allowed origin on /v1" 200 -D "$HDRS" -H 'Origin: https://app.example' -H 'Authorization: Bearer secret' "$BASE/v1/models" && {
    check "CORS: Access-Control-Allow-Origin on /v1/models" test "$(header Access-Control-Allow-Origin)" = https://app.example
    check "CORS: X-Request-Id exposed to scripts" header_has Access-Control-Expose-Headers X-Request-Id
  }
  expect_status "CORS: other origin" 200 -D "$HDRS" -H 'Origin: https://evil.example' "$BASE/healthz" &&
    check "CORS: no Access-Control-Allow-Origin for another origin" no_header Access-Control-Allow-Origin
  expect_status "CORS: origin with a suffix" 200 -D "$HDRS" -H 'Origin: https://app.example.evil.example' "$BASE/healthz" &&
    check "CORS: no Access-Control-Allow-Origin for a look-alike origin" no_header Access-Control-Allow-Origin
  expect_status "CORS: no Origin" 200 -D "$HDRS" "$BASE/healthz" &&
    check "CORS: no Access-Control-Allow-Origin without Origin" no_header Access-Control-Allow-Origin
  expect_status "CORS: preflight 204 (no key needed)" 204 -D "$HDRS" -X OPTIONS \
    -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST' \
    -H 'Access-Control-Request-Headers: authorization, content-type' "$CLS" && {
    check "preflight: Access-Control-Allow-Origin" test "$(header Access-Control-Allow-Origin)" = https://app.example
    check "preflight: Access-Control-Allow-Methods lists POST" header_has Access-Control-Allow-Methods POST
    check "preflight: Access-Control-Allow-Headers lists authorization" header_has Access-Control-Allow-Headers authorization
    check "preflight: Access-Control-Allow-Headers lists content-type" header_has Access-Control-Allow-Headers content-type
  }
  expect_status "CORS: preflight from another origin" 204 -D "$HDRS" -X OPTIONS \
    -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: POST' "$CLS" &&
    check "preflight from another origin: no Access-Control-Allow-Origin" no_header Access-Control-Allow-Origin
  stop_daemon
fi

# ======================================================================================
# readyz 503: a --load'ed model whose config.json is broken
# ======================================================================================
REPO=$TEST_TMP/repo
mkdir -p "$REPO"
cp -r "$MODELS_DIR/$MODEL" "$REPO/$MODEL"
cp -r "$MODELS_DIR/$MODEL" "$REPO/itest-broken"
printf '{"task": "image-classification", "arch": ' >"$REPO/itest-broken/config.json"
if MODELS_DIR=$REPO start_daemon --load "$MODEL,itest-broken"; then
  CLS=$BASE/v1/classifications
  expect_status "healthz 200 while not ready" 200 "$BASE/healthz"
  expect_status "readyz 503 with a broken model" 503 "$BASE/readyz" && {
    check "readyz names the missing model" contains "$BODY" itest-broken
    check "readyz does not list $MODEL as missing" not_contains "$BODY" "\"$MODEL\""
  }
  expect_error "the broken model is not served: 404" 404 invalid_request_error - - "$BASE/v1/models/itest-broken"
  raw_cls "the good model serves" 200 "$IMG/0.png" image/png "model=$MODEL&top_k=1" &&
    check "the good model: Ankle boot" python3 "$PYH" cls "$BODY" "$MODEL" 1 1 "Ankle boot"
  check "the load error is logged" grep -q 'itest-broken' "$DAEMON_LOG"
  stop_daemon
fi

finish
