#!/usr/bin/env bash
# test_batching.sh — the dynamic batcher under concurrent load, on copies of
# fashion-cnn with batching settings edited in their config.json:
#
#  (a) 50 concurrent classifications (test images 0-3, mixed) all answer 200
#      with their own image's label; /metrics shows a batch larger than 1 and
#      every request computed exactly once;
#  (b) queue full → 503 + Retry-After, type rate_limit_error; the rest 200;
#  (c) deadline → 504, type timeout_error;
#  (d) a client that hangs up while its request is queued: access log 499, the
#      model's stats do not count it as computed, the queue is left empty.
#
# One daemon (--workers 1) serves every copy; the copies wait up to
# max_queue_delay_us before running a batch, which makes batching likely even
# on a busy 2-core machine.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

MODEL=fashion-cnn
FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
IMAGES=$FASHION_MNIST/t10k-images-idx3-ubyte.gz
MKIMG=$TOOLS/mkimg
IMG=$TEST_TMP/img
REPO=$TEST_TMP/repo
PYB=$TEST_TMP/burst.py
N=50

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

# burst.py BASE MODEL N OUT.json — N concurrent raw-PNG classifications released
# together (request i sends test image i%4); writes a summary to OUT.json.
cat >"$PYB" <<'PY'
import json, os, sys, threading, urllib.error, urllib.request

base, model, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
img_dir = os.environ["IMG"]
truth = ["Ankle boot", "Pullover", "Trouser", "Trouser"]
imgs = [open(os.path.join(img_dir, f"{i}.png"), "rb").read() for i in range(4)]
results = [None] * n
barrier = threading.Barrier(n)

def one(i):
    req = urllib.request.Request(f"{base}/v1/classifications?model={model}&top_k=1",
                                 data=imgs[i % 4], headers={"Content-Type": "image/png"})
    try:
        barrier.wait(timeout=20)
    except threading.BrokenBarrierError:
        pass
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            results[i] = (r.status, r.headers.get("Retry-After"), r.read())
    except urllib.error.HTTPError as e:
        results[i] = (e.code, e.headers.get("Retry-After"), e.read())
    except Exception as e:  # connection errors count as status 0
        results[i] = (0, None, repr(e).encode())

threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()

summary = {"n": n, "status": {}, "ok": 0, "wrong": [], "e503": 0, "e503_retry_after": 0,
           "e503_rate_limit": 0, "other": [], "bad_error_shape": []}
for i, (status, retry_after, body) in enumerate(results):
    summary["status"][str(status)] = summary["status"].get(str(status), 0) + 1
    try:
        v = json.loads(body)
    except ValueError:
        v = None
    if status == 200:
        try:
            label = v["data"][0]["labels"][0]["label"]
        except (TypeError, KeyError, IndexError):
            label = None
        if label == truth[i % 4] and v.get("model") == model:
            summary["ok"] += 1
        else:
            summary["wrong"].append({"i": i, "want": truth[i % 4], "body": body.decode(errors="replace")[:300]})
        continue
    e = v.get("error") if isinstance(v, dict) else None
    if not (isinstance(e, dict) and isinstance(e.get("message"), str) and isinstance(e.get("type"), str)
            and isinstance(e.get("code"), str)):
        summary["bad_error_shape"].append({"i": i, "status": status, "body": body.decode(errors="replace")[:300]})
    if status == 503:
        summary["e503"] += 1
        if retry_after and retry_after.strip().isdigit():
            summary["e503_retry_after"] += 1
        if isinstance(e, dict) and e.get("type") == "rate_limit_error":
            summary["e503_rate_limit"] += 1
    else:
        summary["other"].append({"i": i, "status": status, "body": body.decode(errors="replace")[:300]})
with open(out, "w") as f:
    json.dump(summary, f, indent=1)
PY

# metric NAME LABELS-REGEX — the value of the first sample of NAME whose label
# set matches LABELS-REGEX, from a fresh GET /metrics ("" when absent).
metric() {
  curl -s --max-time 10 "$BASE/metrics" |
    grep -E "^$1\{[^}]*$2[^}]*\} " | head -n 1 | awk '{print $NF}'
}
# has_word TEXT WORD — TEXT contains WORD as a whole word
has_word() { printf '%s\n' "$1" | grep -qw -- "$2"; }
# num_le A B / num_lt A B — numeric comparisons that fail on empty values
num_le() { [ -n "$1" ] && [ -n "$2" ] && python3 -c 'import sys; sys.exit(not float(sys.argv[1]) <= float(sys.argv[2]))' "$1" "$2"; }
num_lt() { [ -n "$1" ] && [ -n "$2" ] && python3 -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' "$1" "$2"; }
num_eq() { [ -n "$1" ] && [ -n "$2" ] && python3 -c 'import sys; sys.exit(not float(sys.argv[1]) == float(sys.argv[2]))' "$1" "$2"; }

# copy_model ID KEY=VALUE... — a copy of fashion-cnn with config.json edited
copy_model() {
  local id=$1
  shift
  cp -r "$MODELS_DIR/$MODEL" "$REPO/$id"
  python3 - "$REPO/$id/config.json" "$@" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    cfg = json.load(f)
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    cfg[k] = int(v)
with open(path, "w") as f:
    json.dump(cfg, f, indent=2)
PY
}

# stat_of ID FIELD — GET /v1/models/ID and print .stats.FIELD
stat_of() {
  curl -s --max-time 10 -o "$TEST_TMP/model.json" "$BASE/v1/models/$1" && json_get "$TEST_TMP/model.json" ".stats.$2"
}

# ---- setup -----------------------------------------------------------------------

mkdir -p "$IMG" "$REPO"
for i in 0 1 2 3; do "$MKIMG" idx2png "$IMAGES" "$i" "$IMG/$i.png" >/dev/null; done
export IMG
copy_model batch max_queue_delay_us=20000 max_batch_size=64 max_queue_size=1024 timeout_ms=30000
copy_model qfull max_queue_size=1 max_queue_delay_us=2000000 timeout_ms=30000
copy_model deadline timeout_ms=1 max_queue_delay_us=500000
copy_model gone max_queue_delay_us=3000000 timeout_ms=30000
check "test images and model copies written" test -s "$IMG/3.png" -a -s "$REPO/gone/model.safetensors"

MODELS_DIR=$REPO start_daemon --workers 1 --access-log || { finish; exit; }

# ---- (a) 50 concurrent requests are batched -----------------------------------------
python3 "$PYB" "$BASE" batch "$N" "$TEST_TMP/burst.json"
check "burst: $N concurrent requests all 200" test "$(json_get "$TEST_TMP/burst.json" '.status["200"]')" = "$N"
check "burst: every answer has its own image's label" test "$(json_get "$TEST_TMP/burst.json" .ok)" = "$N"
if [ "$(json_get "$TEST_TMP/burst.json" '.wrong|length') $(json_get "$TEST_TMP/burst.json" '.other|length')" != "0 0" ]; then
  json_get "$TEST_TMP/burst.json" .wrong | head -c 1500
  json_get "$TEST_TMP/burst.json" .other | head -c 1500
fi
b_le1=$(metric inferd_batch_size_bucket 'model="batch",le="1"')
b_count=$(metric inferd_batch_size_count 'model="batch"')
b_sum=$(metric inferd_batch_size_sum 'model="batch"')
echo "       | inferd_batch_size{model=batch}: le=1 $b_le1, count $b_count, sum $b_sum"
check "metrics: inferd_batch_size has batches for the model" num_lt 0 "$b_count"
check "metrics: a batch larger than 1 (le=\"1\" bucket $b_le1 < count $b_count)" num_lt "$b_le1" "$b_count"
check "metrics: batch sizes add up to $N (each request computed once)" num_eq "$b_sum" "$N"
check "metrics: fewer batches than requests" num_lt "$b_count" "$N"
check "stats: $N items computed" test "$(stat_of batch items)" = "$N"
check "stats: queue empty after the burst" test "$(stat_of batch queue_depth)" = 0
check "metrics: inferd_queue_depth back to 0" num_eq "$(metric inferd_queue_depth 'model="batch"')" 0
check "metrics: $N classification 200s counted" num_le "$N" "$(metric inferd_requests_total 'endpoint="/v1/classifications",model="batch",status="200"')"

# ---- (b) queue full: 503 with Retry-After -------------------------------------------
python3 "$PYB" "$BASE" qfull 6 "$TEST_TMP/qfull.json"
S=$TEST_TMP/qfull.json
n200=$(json_get "$S" '.status["200"]' 2>/dev/null || echo 0)
n503=$(json_get "$S" .e503)
echo "       | queue full: status counts $(json_get "$S" .status)"
check "queue full: at least one 503" test "$n503" -ge 1
check "queue full: at least one 200" test "$n200" -ge 1
check "queue full: every answer is 200 or 503" test "$((n200 + n503))" -eq 6
[ "$((n200 + n503))" -eq 6 ] || json_get "$S" .other | head -c 1500
check "queue full: the 200s have the right label" test "$(json_get "$S" .ok)" = "$n200"
check "queue full: every 503 has Retry-After (seconds)" test "$(json_get "$S" .e503_retry_after)" = "$n503"
check "queue full: every 503 is a rate_limit_error" test "$(json_get "$S" .e503_rate_limit)" = "$n503"
check "queue full: error bodies have the API.md shape" test "$(json_get "$S" '.bad_error_shape|length')" = 0
check "metrics: 503 counted" num_le 1 "$(metric inferd_requests_total 'endpoint="/v1/classifications",model="qfull",status="503"')"

# ---- (c) deadline: 504 --------------------------------------------------------------
if expect_status "deadline: timeout_ms 1 → 504" 504 -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" \
  "$BASE/v1/classifications?model=deadline"; then
  check "deadline: type timeout_error" test "$(json_get "$BODY" .error.type)" = timeout_error
  check "deadline: error has a message" test -n "$(json_get "$BODY" .error.message)"
  check "deadline: error has a code" test -n "$(json_get "$BODY" .error.code)"
fi
check "deadline: queue empty after the 504" test "$(stat_of deadline queue_depth)" = 0
check "metrics: inferd_queue_depth 0 after the 504" num_eq "$(metric inferd_queue_depth 'model="deadline"')" 0

# ---- (d) client gone while queued: 499, not computed ----------------------------------
t0=$SECONDS
curl -s -o /dev/null -H 'X-Request-Id: itest-gone-1' -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" \
  "$BASE/v1/classifications?model=gone" &
cpid=$!
sleep 0.5
check "client gone: request still queued after 0.5 s" test "$(stat_of gone queue_depth)" = 1
kill "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
line=""
for _ in $(seq 50); do # the access line, within 5 s
  line=$(grep -F 'itest-gone-1' "$DAEMON_LOG" | tail -n 1)
  [ -n "$line" ] && break
  sleep 0.1
done
echo "       | access line: $line"
check "client gone: access log line with status 499" has_word "$line" 499
while [ $((SECONDS - t0)) -lt 4 ]; do sleep 0.2; done # past the 3 s queue delay
check "client gone: stats.items 0 (not computed)" test "$(stat_of gone items)" = 0
check "client gone: stats.batches 0" test "$(stat_of gone batches)" = 0
check "client gone: stats.queue_depth 0" test "$(stat_of gone queue_depth)" = 0
check "client gone: metrics inferd_queue_depth 0" num_eq "$(metric inferd_queue_depth 'model="gone"')" 0
# the same model still computes (and counts) a request that waits for its answer
expect_status "client gone: next request on the model 200" 200 -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" \
  "$BASE/v1/classifications?model=gone&top_k=1" &&
  check "client gone: next request is an Ankle boot" test "$(json_get "$BODY" '.data[0].labels[0].label')" = "Ankle boot"
check "client gone: stats.items 1 after it" test "$(stat_of gone items)" = 1

expect_status "healthz at the end" 200 "$BASE/healthz"
rc=0
stop_daemon || rc=$?
check "daemon exits 0 on SIGTERM" test "$rc" -eq 0

finish
