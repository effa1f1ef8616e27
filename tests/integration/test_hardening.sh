#!/usr/bin/env bash
# test_hardening.sh — requests that once crashed or bloated the daemon, kept
# as regressions (issue 6), and the limits that now stop them:
#   (a) top_k + a tiny top_p on /v1/completions (the sampler returned idx[-1]
#       and the model step asserted);
#   (b) a 1 x 4,000,000 PNG (and its transpose) for classification: the
#       resize once took ~0.5 GB; now RSS grows by well under 200 MB;
#   (c) max_image_bytes: an image or a batch of inputs over the budget is 413
#       with a message, before anything is allocated;
#   (d) kv_cache_mb is a hard budget: a request that could never fit is 400;
#   (e) more running streams than the old fixed 64-slot abort list, then
#       SIGTERM with shutdown_timeout_s = 0: every stream is answered and the
#       daemon exits 0.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

J=(-H 'Content-Type: application/json')
REPO=$TEST_TMP/repo
mkdir -p "$REPO"
cp -r "$MODELS_DIR/fashion-cnn" "$MODELS_DIR/fortune-gpt" "$REPO/"
# fortune-gpt with a 1 MiB KV budget (one sequence of 256 tokens needs 1 MiB + a header)
cp -r "$MODELS_DIR/fortune-gpt" "$REPO/tiny-kv"
python3 - "$REPO/tiny-kv/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["kv_cache_mb"] = 1
json.dump(c, open(sys.argv[1], "w"))
PY
# fortune-gpt with 100 sequence slots, for (e)
cp -r "$MODELS_DIR/fortune-gpt" "$REPO/wide-gpt"
python3 - "$REPO/wide-gpt/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["max_batch_size"] = 100
json.dump(c, open(sys.argv[1], "w"))
PY

# A gray 8-bit PNG of W x H pixels, all one value: tiny on disk, huge decoded.
python3 - "$TEST_TMP" <<'PY'
import struct, sys, zlib
def png(path, w, h, v=128):
    raw = (b"\x00" + bytes([v]) * w) * h
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
png(sys.argv[1] + "/wide.png", 4000000, 1)
png(sys.argv[1] + "/tall.png", 1, 4000000)
png(sys.argv[1] + "/square.png", 300, 300)
PY

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
alive() { kill -0 "$PID" 2>/dev/null; }

MODELS_DIR=$REPO start_daemon || { finish; exit; }

# ---- (a) sampling knobs that used to kill the daemon
for knobs in '"top_k":2,"top_p":0.1' '"top_k":3,"top_p":0.5' '"top_k":1000000,"top_p":0.000001' \
             '"top_k":5,"top_p":0.01,"temperature":0.01' '"top_k":1,"top_p":1,"temperature":2'; do
  expect_status "completions {$knobs}: 200" 200 "${J[@]}" \
    -d "{\"model\":\"fortune-gpt\",\"prompt\":\"The \",\"max_tokens\":8,$knobs}" "$BASE/v1/completions"
  check "completions {$knobs}: 8 tokens" test "$(json_get "$BODY" .usage.completion_tokens)" = 8
done
check "(a) daemon still up" alive

# ---- (b) extreme shapes: bounded memory, a real answer
for img in wide tall; do
  before=$(rss_kb)
  expect_status "classify 1-pixel-thin $img PNG (4,000,000 px, $(stat -c %s "$TEST_TMP/$img.png") bytes): 200" 200 \
    -H 'Content-Type: image/png' --data-binary "@$TEST_TMP/$img.png" "$BASE/v1/classifications?model=fashion-cnn"
  after=$(rss_kb)
  echo "       | RSS ${before} kB -> ${after} kB"
  check "$img PNG: RSS grew by < 200 MB" test "$((after - before))" -lt 204800
done
check "(b) daemon still up" alive
stop_daemon

# ---- (c) max_image_bytes: 1 MiB allows 1 MiB / 24 = 43,690 pixels (minus the input)
MODELS_DIR=$REPO start_daemon --max-image-bytes 1048576 || { finish; exit; }
expect_status "300x300 PNG over max_image_bytes: 413" 413 \
  -H 'Content-Type: image/png' --data-binary "@$TEST_TMP/square.png" "$BASE/v1/classifications?model=fashion-cnn"
check "413 names max_image_bytes" grep -q max_image_bytes "$BODY"
check "413 in the API.md error shape" test "$(json_get "$BODY" .error.code)" = payload_too_large
# 400 inputs of 28x28 floats (3,136 bytes each) = 1.25 MB > 1 MiB: refused before decoding any
b64=$(base64 -w0 "$TEST_TMP/square.png")
python3 - "$b64" >"$TEST_TMP/batch.json" <<'PY'
import json, sys
print(json.dumps({"model": "fashion-cnn", "image": [sys.argv[1]] * 400}))
PY
stop_daemon
python3 - "$REPO/fashion-cnn/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["max_batch_size"] = 512
json.dump(c, open(sys.argv[1], "w"))
PY
MODELS_DIR=$REPO start_daemon --max-image-bytes 1048576 || { finish; exit; }
expect_status "400 inputs over max_image_bytes: 413" 413 "${J[@]}" --data-binary "@$TEST_TMP/batch.json" "$BASE/v1/classifications"
check "batch 413 names max_image_bytes" grep -q max_image_bytes "$BODY"
check "(c) daemon still up" alive

# ---- (c2) max_body_bytes_total: bodies held at once over all connections
stop_daemon
MODELS_DIR=$REPO start_daemon --max-body-bytes-total 1048576 || { finish; exit; }
head -c 2000000 /dev/zero | tr '\0' 'a' >"$TEST_TMP/big.txt"
expect_status "a 2 MB body with 1 MiB of body budget: 503" 503 "${J[@]}" --data-binary "@$TEST_TMP/big.txt" "$BASE/v1/completions"
check "503 names max_body_bytes_total" grep -q max_body_bytes_total "$BODY"
expect_status "small requests still served" 200 "${J[@]}" \
  -d '{"model":"fortune-gpt","prompt":"Hi","max_tokens":2}' "$BASE/v1/completions"

# ---- (d) kv_cache_mb is hard
expect_status "tiny-kv: 1 choice of 110 tokens fits: 200" 200 "${J[@]}" \
  -d '{"model":"tiny-kv","prompt":"Hello world","max_tokens":99}' "$BASE/v1/completions"
expect_status "tiny-kv: 3 choices of 110 tokens exceed 1 MiB: 400" 400 "${J[@]}" \
  -d '{"model":"tiny-kv","prompt":"Hello world","max_tokens":99,"n":3}' "$BASE/v1/completions"
check "kv 400 names kv_cache_mb" grep -q kv_cache_mb "$BODY"
check "kv 400 names max_tokens" test "$(json_get "$BODY" .error.param)" = max_tokens
expect_status "tiny-kv: the whole context (256 tokens) exceeds 1 MiB: 400" 400 "${J[@]}" \
  -d '{"model":"tiny-kv","prompt":"Hello world","max_tokens":245}' "$BASE/v1/completions"
stop_daemon

# ---- (e) 80 running streams, then SIGTERM with no grace period
MODELS_DIR=$REPO start_daemon --shutdown-timeout-s 0 || { finish; exit; }
python3 - "$BASE" "$PID" >"$TEST_TMP/abort.out" 2>&1 <<'PY'
import http.client, json, os, signal, sys, threading, time, urllib.parse
base, pid = sys.argv[1], int(sys.argv[2])
u = urllib.parse.urlparse(base)
N = 80
started = threading.Barrier(N + 1, timeout=60)
results = [None] * N
def client(i):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    body = json.dumps({"model": "wide-gpt", "prompt": "Q", "max_tokens": 250, "stream": True, "seed": i, "temperature": 1.0})
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first = r.readline()   # the first event: the stream is running
    try: started.wait()
    except threading.BrokenBarrierError: pass
    rest = b""
    try:
        rest = r.read()
    except Exception as e:
        rest = repr(e).encode()
    results[i] = (r.status, first + rest)
threads = [threading.Thread(target=client, args=(i,)) for i in range(N)]
for t in threads: t.start()
try: started.wait()
except threading.BrokenBarrierError: print("not all streams started"); sys.exit(1)
os.kill(pid, signal.SIGTERM)
for t in threads: t.join(90)
done = sum(1 for r in results if r and b"data: [DONE]" in r[1])
errs = sum(1 for r in results if r and b"shutting down" in r[1])
print(f"streams {N}, ended with [DONE] {done}, of which told 'shutting down' {errs}")
sys.exit(0 if done == N else 1)
PY
rc=$?
sed 's/^/       | /' "$TEST_TMP/abort.out"
check "(e) all 80 streams ended with [DONE] after SIGTERM" test "$rc" = 0
deadline=$((SECONDS + 20))
while alive && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
if alive; then fail "(e) daemon exits after SIGTERM" "still running"; kill -KILL "$PID"; else pass "(e) daemon exits after SIGTERM"; fi
drc=0
wait "$PID" 2>/dev/null || drc=$?
PID=""
check "(e) daemon exit code 0" test "$drc" = 0
grep -E "AddressSanitizer|runtime error|Assertion" "$DAEMON_LOG" | head -5 | sed 's/^/       | /'
check "no sanitizer report or assertion in the daemon logs" bash -c "! grep -qE 'AddressSanitizer|runtime error|Assertion' $TEST_TMP/daemon.*.log"

finish
