#!/usr/bin/env bash
# test_lifecycle.sh — signals and model loading over a daemon's life, on copies
# of fashion-cnn in a temp model repository:
#
#  (a) SIGTERM with requests in flight: 10 classifications waiting in a batch
#      queue and one client still uploading its body all get 200, a new
#      connection after SIGTERM is refused, the daemon exits 0;
#  (b) SIGHUP: an edited config.json (batching settings) takes effect, requests
#      keep succeeding through repeated reloads, a broken config.json keeps the
#      previous version serving, a new model directory is picked up;
#  (c) a model whose model.safetensors is truncated fails to load with a log
#      line naming it, the others load and serve, /readyz is 503 naming it;
#      repaired + SIGHUP, it loads and /readyz turns 200.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

MODEL=fashion-cnn
FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
IMAGES=$FASHION_MNIST/t10k-images-idx3-ubyte.gz
MKIMG=$TOOLS/mkimg
IMG=$TEST_TMP/img
PYC=$TEST_TMP/clients.py

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

# clients.py burst BASE MODEL N OUT     N concurrent classifications (image i%4)
# clients.py loop BASE MODEL SECS OUT   4 threads classifying back to back for SECS
# clients.py slow PORT MODEL SECS OUT   one request whose body trickles in over SECS
# Each writes {"n":…, "ok":…, "status":{…}, "bad":[…]} to OUT ("ok" = 200 with
# the image's true label).
cat >"$PYC" <<'PY'
import json, os, socket, sys, threading, time, urllib.error, urllib.request

mode, target, model, arg, out = sys.argv[1:6]
img_dir = os.environ["IMG"]
truth = ["Ankle boot", "Pullover", "Trouser", "Trouser"]
imgs = [open(os.path.join(img_dir, f"{i}.png"), "rb").read() for i in range(4)]
lock = threading.Lock()
summary = {"n": 0, "ok": 0, "status": {}, "bad": []}

def record(i, status, body):
    try:
        label = json.loads(body)["data"][0]["labels"][0]["label"]
    except (ValueError, TypeError, KeyError, IndexError):
        label = None
    with lock:
        summary["n"] += 1
        summary["status"][str(status)] = summary["status"].get(str(status), 0) + 1
        if status == 200 and label == truth[i % 4]:
            summary["ok"] += 1
        elif len(summary["bad"]) < 10:
            summary["bad"].append({"i": i, "status": status, "body": body.decode(errors="replace")[:300]})

def classify(i):
    req = urllib.request.Request(f"{target}/v1/classifications?model={model}&top_k=1",
                                 data=imgs[i % 4], headers={"Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            record(i, r.status, r.read())
    except urllib.error.HTTPError as e:
        record(i, e.code, e.read())
    except Exception as e:
        record(i, 0, repr(e).encode())

def burst(n):
    threads = [threading.Thread(target=classify, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

def loop(secs):
    end = time.monotonic() + secs
    def worker(k):
        i = k
        while time.monotonic() < end:
            classify(i)
            i += 4
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

def slow(secs):
    data = imgs[0]
    try:
        s = socket.create_connection(("127.0.0.1", int(target)), timeout=60)
        s.sendall(b"POST /v1/classifications?model=%s&top_k=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: image/png\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % (model.encode(), len(data)))
        open(out + ".connected", "w").close()  # the headers are sent: the request is in flight
        pieces = 10
        step = len(data) // pieces + 1
        for k in range(0, len(data), step):
            time.sleep(secs / pieces)
            s.sendall(data[k:k + step])
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
        head, _, body = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
        record(0, status, body)
    except Exception as e:
        record(0, 0, repr(e).encode())

{"burst": lambda: burst(int(arg)), "loop": lambda: loop(float(arg)), "slow": lambda: slow(float(arg))}[mode]()
with open(out, "w") as f:
    json.dump(summary, f, indent=1)
PY

# copy_model REPO ID [KEY=VALUE...] — a copy of fashion-cnn with config.json edited
copy_model() {
  local repo=$1 id=$2
  shift 2
  mkdir -p "$repo"
  cp -r "$MODELS_DIR/$MODEL" "$repo/$id"
  edit_config "$repo/$id/config.json" "$@"
}
# edit_config FILE KEY=VALUE... — set integer keys in a config.json
edit_config() {
  python3 - "$@" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    cfg = json.load(f)
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    cfg[k] = int(v)
with open(path + ".tmp", "w") as f:
    json.dump(cfg, f, indent=2)
PY
  mv "$1.tmp" "$1"
}
# get_field ID EXPR — GET /v1/models/ID and print EXPR of it ("" if absent)
get_field() {
  curl -s --max-time 10 -o "$TEST_TMP/model.json" "$BASE/v1/models/$1" &&
    json_get "$TEST_TMP/model.json" "$2" 2>/dev/null
}
# wait_for SECS CMD... — retry CMD every 0.1 s until it succeeds (at most SECS*10 tries)
wait_for() {
  local tries=$(($1 * 10))
  shift
  until "$@"; do
    tries=$((tries - 1))
    [ "$tries" -le 0 ] && return 1
    sleep 0.1
  done
}
both_ready() { field_is drain .stats.queue_depth 10 && [ -e "$TEST_TMP/slow.json.connected" ]; }
refused() { ! curl -s -o /dev/null --max-time 5 "$1"; }
field_is() { [ "$(get_field "$1" "$2")" = "$3" ]; }
status_is() { [ "$(curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$2")" = "$1" ]; }
# summary_ok FILE N — the client summary shows N answers, all 200 with the right label
summary_ok() {
  local n ok
  n=$(json_get "$1" .n) ok=$(json_get "$1" .ok)
  if [ "$n" = "$2" ] && [ "$ok" = "$2" ]; then return 0; fi
  echo "answers $n, right $ok, expected $2; statuses $(json_get "$1" .status)"
  json_get "$1" .bad | head -c 1500
  return 1
}
# summary_all_ok FILE — at least one answer, all 200 with the right label
summary_all_ok() {
  local n
  n=$(json_get "$1" .n)
  [ "$n" -gt 0 ] && summary_ok "$1" "$n"
}
# wait_exit SECS — wait for $PID to exit (no signal sent; SIGKILL after SECS);
# sets EXIT_RC to its exit code
wait_exit() {
  local end=$((SECONDS + $1))
  EXIT_RC=0
  while kill -0 "$PID" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
  if kill -0 "$PID" 2>/dev/null; then
    echo "       | daemon still running $1 s after SIGTERM: SIGKILL"
    kill -KILL "$PID" 2>/dev/null
  fi
  wait "$PID" 2>/dev/null || EXIT_RC=$?
  PID=""
}

mkdir -p "$IMG"
for i in 0 1 2 3; do "$MKIMG" idx2png "$IMAGES" "$i" "$IMG/$i.png" >/dev/null; done
export IMG

# ======================================================================================
# (a) SIGTERM with requests in flight
# ======================================================================================
# The batch queue holds requests for up to 5 s, so all 10 are still queued (in
# flight) when SIGTERM arrives; the slow client is still sending its body
# (it trickles it over 6 s: on a loaded machine the set-up above can take 3).
R1=$TEST_TMP/repo-term
copy_model "$R1" drain max_queue_delay_us=5000000 max_batch_size=64 timeout_ms=30000
if MODELS_DIR=$R1 start_daemon --access-log; then
  python3 "$PYC" burst "$BASE" drain 10 "$TEST_TMP/burst.json" &
  burst_pid=$!
  python3 "$PYC" slow "$PORT" drain 6.0 "$TEST_TMP/slow.json" &
  slow_pid=$!
  sleep 0.3
  wait_for 4 both_ready
  check "SIGTERM: 10 requests queued before the signal" field_is drain .stats.queue_depth 10
  check "SIGTERM: the slow upload started before the signal" test -e "$TEST_TMP/slow.json.connected"
  kill -TERM "$PID"
  sleep 0.2
  alive=no
  kill -0 "$PID" 2>/dev/null && alive=yes
  crc=0
  curl -s -o /dev/null --max-time 5 "$BASE/healthz" 2>/dev/null || crc=$?
  check "SIGTERM: a new connection is refused (curl exit $crc, daemon still draining: $alive)" test "$crc" -eq 7
  check "SIGTERM: the daemon was still finishing the slow upload when probed" test "$alive" = yes
  wait_exit 30
  check "SIGTERM: the daemon exits 0 (got $EXIT_RC)" test "$EXIT_RC" -eq 0
  wait "$burst_pid"
  wait "$slow_pid"
  check "SIGTERM: all 10 queued requests got 200 with the right label" summary_ok "$TEST_TMP/burst.json" 10
  check "SIGTERM: the slow upload got 200 with the right label" summary_ok "$TEST_TMP/slow.json" 1
  check "SIGTERM: no connection after the exit" refused "$BASE/healthz"
fi

# ======================================================================================
# (b) SIGHUP reloads
# ======================================================================================
R2=$TEST_TMP/repo-hup
copy_model "$R2" hup max_batch_size=16 max_queue_delay_us=1000
if MODELS_DIR=$R2 start_daemon --access-log; then
  check "before SIGHUP: max_batch_size 16" field_is hup .batching.max_batch_size 16
  edit_config "$R2/hup/config.json" max_batch_size=7 max_queue_delay_us=1234
  kill -HUP "$PID"
  wait_for 10 field_is hup .batching.max_batch_size 7
  check "SIGHUP: GET /v1/models/hup shows max_batch_size 7" field_is hup .batching.max_batch_size 7
  check "SIGHUP: GET /v1/models/hup shows max_queue_delay_us 1234" field_is hup .batching.max_queue_delay_us 1234
  check "SIGHUP: the model is ready" field_is hup .status ready
  expect_status "SIGHUP: classification after the reload" 200 -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" \
    "$BASE/v1/classifications?model=hup&top_k=1" &&
    check "SIGHUP: still an Ankle boot" test "$(json_get "$BODY" '.data[0].labels[0].label')" = "Ankle boot"

  # reloads under load: no request fails
  python3 "$PYC" loop "$BASE" hup 2.5 "$TEST_TMP/loop.json" &
  loop_pid=$!
  for bs in 9 10 11; do
    sleep 0.5
    edit_config "$R2/hup/config.json" max_batch_size=$bs
    kill -HUP "$PID"
  done
  wait "$loop_pid"
  check "SIGHUP under load: every request 200 with the right label" summary_all_ok "$TEST_TMP/loop.json"
  wait_for 10 field_is hup .batching.max_batch_size 11
  check "SIGHUP under load: the last edit (max_batch_size 11) is in effect" field_is hup .batching.max_batch_size 11
  check "SIGHUP: the daemon is still running" kill -0 "$PID"

  # a broken config.json on reload keeps the running version
  cp "$R2/hup/config.json" "$TEST_TMP/hup-config.json"
  printf '{"task": ' >"$R2/hup/config.json"
  kill -HUP "$PID"
  sleep 1
  check "SIGHUP with a broken config: the previous version still listed" field_is hup .batching.max_batch_size 11
  expect_status "SIGHUP with a broken config: the previous version still serves" 200 -H 'Content-Type: image/png' \
    --data-binary "@$IMG/2.png" "$BASE/v1/classifications?model=hup&top_k=1" &&
    check "SIGHUP with a broken config: Trouser" test "$(json_get "$BODY" '.data[0].labels[0].label')" = Trouser
  check "SIGHUP with a broken config: the error is logged" grep -qiE 'hup.*(fail|error)|(fail|error).*hup' "$DAEMON_LOG"
  cp "$TEST_TMP/hup-config.json" "$R2/hup/config.json"

  # a model directory added to the repository is picked up by SIGHUP
  copy_model "$R2" added
  kill -HUP "$PID"
  wait_for 5 status_is 200 "$BASE/v1/models/added"
  check "SIGHUP: a new model directory is loaded" status_is 200 "$BASE/v1/models/added"
  check "SIGHUP: hup still served after the reload" field_is hup .status ready
  expect_status "healthz after the reloads" 200 "$BASE/healthz"
  rc=0
  stop_daemon || rc=$?
  check "SIGHUP daemon exits 0 on SIGTERM" test "$rc" -eq 0
fi

# ======================================================================================
# (c) a truncated model.safetensors
# ======================================================================================
R3=$TEST_TMP/repo-trunc
copy_model "$R3" "$MODEL"
copy_model "$R3" itest-trunc
size=$(wc -c <"$R3/itest-trunc/model.safetensors")
truncate -s $((size / 2)) "$R3/itest-trunc/model.safetensors"
if MODELS_DIR=$R3 start_daemon --access-log; then
  check "truncated: a log line names the model and the failure" \
    grep -qiE 'itest-trunc.*(fail|error)|(fail|error).*itest-trunc' "$DAEMON_LOG"
  grep -iE 'itest-trunc' "$DAEMON_LOG" | head -n 3 | sed 's/^/       | log: /'
  expect_status "truncated: readyz 503" 503 "$BASE/readyz" &&
    check "truncated: readyz names itest-trunc" grep -qF itest-trunc "$BODY"
  expect_status "truncated: GET /v1/models/itest-trunc 404" 404 "$BASE/v1/models/itest-trunc"
  expect_status "truncated: the other model is listed" 200 "$BASE/v1/models/$MODEL" &&
    check "truncated: the other model is ready" test "$(json_get "$BODY" .status)" = ready
  expect_status "truncated: the other model serves" 200 -H 'Content-Type: image/png' --data-binary "@$IMG/1.png" \
    "$BASE/v1/classifications?model=$MODEL&top_k=1" &&
    check "truncated: the other model says Pullover" test "$(json_get "$BODY" '.data[0].labels[0].label')" = Pullover
  code=$(curl -s -o "$BODY" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"id":"itest-trunc2","path":"itest-trunc"}' "$BASE/v1/models")
  check "truncated: POST /v1/models of it is a 4xx (got $code)" test "$code" -ge 400 -a "$code" -lt 500
  check "truncated: ... with an error message" test -n "$(json_get "$BODY" .error.message)"
  # repaired on disk: SIGHUP loads it and the daemon becomes ready
  cp "$MODELS_DIR/$MODEL/model.safetensors" "$R3/itest-trunc/model.safetensors"
  kill -HUP "$PID"
  wait_for 10 status_is 200 "$BASE/readyz"
  check "repaired + SIGHUP: readyz 200" status_is 200 "$BASE/readyz"
  expect_status "repaired + SIGHUP: it serves" 200 -H 'Content-Type: image/png' --data-binary "@$IMG/0.png" \
    "$BASE/v1/classifications?model=itest-trunc&top_k=1" &&
    check "repaired: Ankle boot" test "$(json_get "$BODY" '.data[0].labels[0].label')" = "Ankle boot"
  rc=0
  stop_daemon || rc=$?
  check "truncated-model daemon exits 0 on SIGTERM" test "$rc" -eq 0
fi

finish
