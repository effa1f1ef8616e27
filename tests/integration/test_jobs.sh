#!/usr/bin/env bash
# test_jobs.sh — training jobs over HTTP (POST /v1/jobs and friends) against a
# live daemon with its own model repository and data directory:
#   - every bad-input path of POST /v1/jobs (400 naming the field, 404
#     unknown files / jobs, 409 existing output_model, the dataset's format);
#   - a text-generation job (tiny GPT) end to end: events live and for a late
#     client (SSE framing, history, final state, stream end), loss.png (a PNG
#     of the right size with both curves drawn), the model served at once;
#   - a text-classification job, then /v1/classifications on its model; a
#     translation job, then /v1/translations; an image-classification job on
#     an uploaded tar of label folders, then held-out images classified;
#   - queueing (max_running_jobs 1), cancel of a queued and a running job,
#     paging, replace: true;
#   - kill -9 of the daemon mid-job, twice at random moments: the restarted
#     daemon resumes from the checkpoint and finishes with the same total steps;
#   - a file-size limit (RLIMIT_FSIZE lowered on the running daemon with
#     prlimit, SIGXFSZ ignored): the job fails with a clear error and the
#     previous checkpoint stays intact;
#   - SIGTERM with a job running: a prompt clean stop, the job stays
#     "running" on disk and resumes at the next start; /metrics' job gauges.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

FORTUNES=/usr/share/games/fortunes/fortunes
need "fortunes ($FORTUNES)" test -f "$FORTUNES"
need "prlimit (util-linux)" command -v prlimit
FASHION=/usr/share/datasets/fashion-mnist
need "Fashion-MNIST ($FASHION)" test -f "$FASHION/train-images-idx3-ubyte.gz"
need_done

export MODELS_DIR=$TEST_TMP/models
mkdir -p "$MODELS_DIR" "$DATA_DIR"
trap '' XFSZ   # the daemon inherits it: a write past RLIMIT_FSIZE fails with EFBIG instead of killing it
FLAGS=(--max-job-steps 5000 --max-queued-jobs 4 --max-running-jobs 1 --train-threads 1)
J=(-H 'Content-Type: application/json')

# ---- datasets -------------------------------------------------------------------
head -c 30000 "$FORTUNES" >"$TEST_TMP/text.txt"
python3 - "$TEST_TMP" <<'PY'
import random, sys
d = sys.argv[1]
random.seed(7)
words = {"en": "the house is big and the garden is green we walk home today".split(),
         "de": "das haus ist gross und der garten ist gruen wir gehen heute heim".split()}
with open(f"{d}/langs.tsv", "w") as f:
    for i in range(400):
        lang = "en" if i % 2 else "de"
        f.write(lang + "\t" + " ".join(random.choice(words[lang]) for _ in range(6)) + "\n")
pairs = [("house", "haus"), ("garden", "garten"), ("green", "gruen"), ("home", "heim"), ("today", "heute"), ("big", "gross")]
with open(f"{d}/pairs.tsv", "w") as f:
    for i in range(300):
        a, b = pairs[i % len(pairs)]
        f.write(f"{a}\t{b}\n")
with open(f"{d}/bad.tsv", "w") as f:
    f.write("en\tthe house\nde\tdas haus\nthis line has no tab\nen\tgreen\n")
PY
# a tar of label folders of PNGs: 3 Fashion-MNIST classes, 64 images each
# (PNGs written here with zlib), and one held-out image of each class
python3 - "$TEST_TMP" "$FASHION" <<'PY'
import gzip, os, struct, sys, tarfile, zlib
d, src = sys.argv[1], sys.argv[2]
imgs = gzip.open(f"{src}/train-images-idx3-ubyte.gz").read()[16:]
labs = gzip.open(f"{src}/train-labels-idx1-ubyte.gz").read()[8:]
names = {0: "tshirt", 1: "trouser", 7: "sneaker"}
def png(px):
    raw = b"".join(b"\0" + px[y * 28:(y + 1) * 28] for y in range(28))
    chunk = lambda k, b: struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
count = {k: 0 for k in names}
os.makedirs(f"{d}/tar", exist_ok=True)
for i, l in enumerate(labs):
    if l not in names or count[l] > 64: continue
    data = png(imgs[i * 784:(i + 1) * 784])
    if count[l] == 64: open(f"{d}/held-{names[l]}.png", "wb").write(data)
    else:
        os.makedirs(f"{d}/tar/{names[l]}", exist_ok=True)
        open(f"{d}/tar/{names[l]}/{i}.png", "wb").write(data)
    count[l] += 1
with tarfile.open(f"{d}/images.tar", "w") as t:
    for n in sorted(names.values()): t.add(f"{d}/tar/{n}", arcname=n)
PY

# upload FILE → prints the file id: POST /v1/files when the daemon serves it,
# else (files API not in this build) the file goes straight into the data
# directory in the layout of server/files.h and is picked up at the next start.
upload() {
  local f=$1 id
  id=$(curl -s -X POST --data-binary @"$f" -H 'Content-Type: application/octet-stream' \
         "$BASE/v1/files?purpose=train&filename=$(basename "$f")" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["id"])
except Exception: pass')
  if [ -z "$id" ]; then
    id=file-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    mkdir -p "$DATA_DIR/files"
    cp "$f" "$DATA_DIR/files/$id"
    printf '{"id":"%s","object":"file","bytes":%d,"created_at":%d,"filename":"%s","purpose":"train"}' \
      "$id" "$(stat -c %s "$f")" "$(date +%s)" "$(basename "$f")" >"$DATA_DIR/files/$id.json"
  fi
  echo "$id"
}

# job_field ID EXPR — one field of GET /v1/jobs/ID
job_field() { curl -s "$BASE/v1/jobs/$1" >"$TEST_TMP/job.json" && json_get "$TEST_TMP/job.json" "$2"; }
# wait_status ID STATUS SECONDS — until the job has STATUS (0) or the time is up (1)
wait_status() {
  local deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(job_field "$1" .status 2>/dev/null)" = "$2" ] && return 0
    sleep 0.2
  done
  echo "job $1: status $(job_field "$1" .status) after $3 s (wanted $2); error: $(job_field "$1" .error)"
  return 1
}
# wait_step ID N SECONDS — until the job reports step >= N
wait_step() {
  local deadline=$((SECONDS + $3)) s
  while [ "$SECONDS" -lt "$deadline" ]; do
    s=$(job_field "$1" .step 2>/dev/null || echo 0)
    [ "${s:-0}" -ge "$2" ] 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}
post_job() { expect_status "$1" "$2" "${J[@]}" -X POST "$BASE/v1/jobs" -d "$3"; }
# error_param EXPECTED — the param of the error in $BODY
error_param() { test "$(json_get "$BODY" .error.param)" = "$1"; }
error_says() { grep -q -- "$1" "$BODY"; }

start_daemon "${FLAGS[@]}" || { finish; exit; }
files_api=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/v1/files")
TEXT=$(upload "$TEST_TMP/text.txt")
LANGS=$(upload "$TEST_TMP/langs.tsv")
BAD=$(upload "$TEST_TMP/bad.tsv")
PAIRS=$(upload "$TEST_TMP/pairs.tsv")
IMAGES=$(upload "$TEST_TMP/images.tar")
if [ "$files_api" = 501 ]; then stop_daemon; start_daemon "${FLAGS[@]}" || { finish; exit; }; fi

GPT='"task":"text-generation","arch":"gpt","training_file":"'$TEXT'"'
TINY='"batch_size":8,"dim":32,"layers":1,"heads":2,"context_len":32'

# ---- bad input ------------------------------------------------------------------
post_job "not JSON" 400 '{"task":'
post_job "unknown field" 400 "{$GPT,\"output_model\":\"m\",\"modle\":1}"
check "unknown field named" error_says modle
post_job "task missing" 400 "{\"training_file\":\"$TEXT\",\"output_model\":\"m\"}"
check "task missing: param" error_param task
post_job "unknown task" 400 "{\"task\":\"juggling\",\"training_file\":\"$TEXT\",\"output_model\":\"m\"}"
post_job "training_file missing" 400 '{"task":"text-generation","output_model":"m"}'
check "training_file missing: param" error_param training_file
post_job "output_model missing" 400 "{$GPT}"
post_job "output_model with a slash" 400 "{$GPT,\"output_model\":\"../etc\"}"
check "output_model: param" error_param output_model
post_job "output_model .." 400 "{$GPT,\"output_model\":\"..\"}"
post_job "hyperparameters not an object" 400 "{$GPT,\"output_model\":\"m\",\"hyperparameters\":[1]}"
post_job "unknown hyperparameter" 400 "{$GPT,\"output_model\":\"m\",\"hyperparameters\":{\"stepz\":10}}"
check "unknown hyperparameter named" error_says stepz
post_job "steps as a string" 400 "{$GPT,\"output_model\":\"m\",\"hyperparameters\":{\"steps\":\"10\"}}"
check "steps: param" error_param hyperparameters.steps
post_job "steps 0" 400 "{$GPT,\"output_model\":\"m\",\"hyperparameters\":{\"steps\":0}}"
post_job "negative learning rate" 400 "{$GPT,\"output_model\":\"m\",\"hyperparameters\":{\"learning_rate\":-1}}"
check "learning_rate: param" error_param hyperparameters.learning_rate
post_job "augment not a bool" 400 "{$GPT,\"output_model\":\"m\",\"hyperparameters\":{\"augment\":1}}"
post_job "steps over max_job_steps" 400 "{$GPT,\"output_model\":\"m\",\"hyperparameters\":{\"steps\":5001}}"
check "max_job_steps named" error_says max_job_steps
post_job "unknown training file" 404 '{"task":"text-generation","training_file":"file-000000000000000000000000","output_model":"m"}'
post_job "file id with a path" 404 '{"task":"text-generation","training_file":"../../../etc/passwd","output_model":"m"}'
post_job "unknown validation file" 404 "{$GPT,\"validation_file\":\"file-ffffffffffffffffffffffff\",\"output_model\":\"m\"}"
post_job "base_model not loaded" 404 "{$GPT,\"base_model\":\"nothere\",\"output_model\":\"m\"}"
post_job "dataset in the wrong format" 400 "{\"task\":\"text-classification\",\"training_file\":\"$BAD\",\"output_model\":\"m\"}"
check "wrong format: the file (by its id) and line are named" error_says "$BAD:3: "
check "wrong format: no server path in the message" sh -c "! grep -q '$DATA_DIR' '$BODY'"
post_job "replace not a bool" 400 "{$GPT,\"output_model\":\"m\",\"replace\":\"yes\"}"
expect_status "unknown job" 404 "$BASE/v1/jobs/job-000000000000000000000000"
expect_status "malformed job id" 404 "$BASE/v1/jobs/..%2F..%2Fetc"
expect_status "unknown job: events" 404 "$BASE/v1/jobs/job-000000000000000000000000/events"
expect_status "unknown job: loss.png" 404 "$BASE/v1/jobs/job-000000000000000000000000/loss.png"
expect_status "unknown job: cancel" 404 -X POST "$BASE/v1/jobs/job-000000000000000000000000/cancel"
expect_status "unknown job subresource" 404 "$BASE/v1/jobs/job-000000000000000000000000/nope"
expect_status "limit 0" 400 "$BASE/v1/jobs?limit=0"
expect_status "after: not a job id" 400 "$BASE/v1/jobs?after=x"
expect_status "DELETE a job: 405" 405 -X DELETE "$BASE/v1/jobs/job-000000000000000000000000"

# ---- a text-generation job end to end ---------------------------------------------
post_job "create a text-generation job" 202 \
  "{$GPT,\"output_model\":\"tiny-gpt\",\"hyperparameters\":{\"steps\":60,$TINY,\"log_every\":5,\"checkpoint_every\":10,\"seed\":3}}"
G=$(json_get "$BODY" .id)
check "202 job object" test "$(json_get "$BODY" .object)/$(json_get "$BODY" .total_steps)/$(json_get "$BODY" .output_model)" = "training.job/60/tiny-gpt"
curl -s -N --max-time 60 "$BASE/v1/jobs/$G/events" >"$TEST_TMP/live.sse" &
LIVE=$!
check "text-generation job succeeds" wait_status "$G" succeeded 60
wait "$LIVE"; check "the live stream ended by itself after the final state" test $? -eq 0
curl -s -N --max-time 10 "$BASE/v1/jobs/$G/events" >"$TEST_TMP/late.sse"
check "late client: ended by itself" test $? -eq 0
# sse_check FILE: SSE framing (id + data per event, blank line between), seq
# 0.., progress events for steps 5..60, the last event the final state
sse_check() {
  python3 - "$1" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n\n"), "the stream must end after a whole event"
events = []
for block in text.split("\n\n")[:-1]:
    lines = block.split("\n")
    assert len(lines) == 2 and lines[0].startswith("id: ") and lines[1].startswith("data: "), f"bad frame {block!r}"
    ev = json.loads(lines[1][6:])
    assert int(lines[0][4:]) == ev["seq"] == len(events), f"event ids in order: {block!r}"
    events.append(ev)
assert events[0]["type"] == "status" and events[0]["status"] == "queued", events[0]
steps = [e["step"] for e in events if e["type"] == "progress" and "loss" in e]
assert steps == list(range(5, 61, 5)), f"progress steps {steps}"
assert all(e["total_steps"] == 60 for e in events if e["type"] == "progress")
last = events[-1]
assert last["type"] == "status" and last["status"] == "succeeded" and last["output_model"] == "tiny-gpt", last
print(len(events), "events")
PY
}
check "live events: framing, history, final state" sse_check "$TEST_TMP/live.sse"
check "late client: the whole history, the same events" cmp "$TEST_TMP/live.sse" "$TEST_TMP/late.sse"
expect_status "job object" 200 "$BASE/v1/jobs/$G"
check "job: step = total_steps, loss, val_loss, times" python3 - "$BODY" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["step"] == j["total_steps"] == 60, j
assert 0 < j["loss"] < 10 and 0 < j["val_loss"] < 10, j
assert j["created_at"] <= j["started_at"] <= j["finished_at"], j
assert j["error"] is None and j["eta_seconds"] == 0 and j["examples_per_s"] > 0, j
PY
expect_status "loss.png" 200 -D "$TEST_TMP/headers" "$BASE/v1/jobs/$G/loss.png"
check "loss.png: Content-Type image/png" grep -qi '^content-type: image/png' "$TEST_TMP/headers"
# png_check FILE W H: a PNG of W x H (decoded here with zlib) with both curves drawn
png_check() {
  python3 - "$@" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
w_want, h_want = int(sys.argv[2]), int(sys.argv[3])
assert data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], f"CRC of {kind}"
    if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
    if kind == b"IDAT": idat += body
    pos += 12 + n
w, h, depth, color = ihdr[:4]
assert (w, h) == (w_want, h_want) and depth == 8 and color == 2, ihdr
raw, bpp, stride = zlib.decompress(idat), 3, w * 3
rows, prev = [], bytearray(stride)
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
px = [tuple(r[i:i + 3]) for r in rows for i in range(0, stride, 3)]
red, blue, dark = px.count((214, 39, 40)), px.count((31, 119, 180)), px.count((0, 0, 0))
assert red > 300 and blue > 300 and dark > 500, f"train {red} px, validation {blue} px, black {dark} px"
print(f"{w}x{h}: train {red} px, validation {blue} px, axes+text {dark} px")
PY
}
check "loss.png: 640x400, both curves and axes drawn" png_check "$BODY" 640 400
expect_status "loss.png?width=800&height=500" 200 "$BASE/v1/jobs/$G/loss.png?width=800&height=500"
check "loss.png: the asked size" png_check "$BODY" 800 500
expect_status "loss.png: width out of range" 400 "$BASE/v1/jobs/$G/loss.png?width=5"
check "model directory: config, weights, README with the job" grep -q "$G" "$MODELS_DIR/tiny-gpt/README.md"
check "model directory: weights" test -s "$MODELS_DIR/tiny-gpt/model.safetensors"
check "job directory: the checkpoint is removed once the job succeeded" test ! -e "$DATA_DIR/jobs/$G/checkpoint.bin"
expect_status "the new model is listed" 200 "$BASE/v1/models/tiny-gpt"
expect_status "completions on the new model, no restart" 200 "${J[@]}" "$BASE/v1/completions" \
  -d '{"model":"tiny-gpt","prompt":"The ","max_tokens":8,"temperature":0}'
check "a completion of 8 tokens" test "$(json_get "$BODY" '.choices[0].tokens|length')" = 8
post_job "same output_model: 409" 409 "{$GPT,\"output_model\":\"tiny-gpt\",\"hyperparameters\":{\"steps\":10,$TINY}}"
check "409: param output_model" error_param output_model
expect_status "cancel a finished job: 409" 409 -X POST "$BASE/v1/jobs/$G/cancel"

# ---- text classification -----------------------------------------------------------
post_job "create a text-classification job" 202 \
  "{\"task\":\"text-classification\",\"training_file\":\"$LANGS\",\"output_model\":\"tiny-langid\",\"hyperparameters\":{\"epochs\":5,\"dim\":8,\"buckets\":4096}}"
C=$(json_get "$BODY" .id)
check "text-classification job succeeds" wait_status "$C" succeeded 60
expect_status "classify with the new model" 200 "${J[@]}" "$BASE/v1/classifications" -d '{"model":"tiny-langid","input":["der garten ist gruen","the garden is green"]}'
check "it tells the languages apart" test "$(json_get "$BODY" '.data[0].labels[0].label')/$(json_get "$BODY" '.data[1].labels[0].label')" = "de/en"

# ---- translation ------------------------------------------------------------------------
post_job "create a translation job" 202 \
  "{\"task\":\"translation\",\"training_file\":\"$PAIRS\",\"output_model\":\"tiny-mt\",\"hyperparameters\":{\"steps\":30,\"batch_size\":16,\"dim\":32,\"log_every\":5}}"
M=$(json_get "$BODY" .id)
check "translation job succeeds" wait_status "$M" succeeded 90
expect_status "translate with the new model" 200 "${J[@]}" "$BASE/v1/translations" -d '{"model":"tiny-mt","input":"house","max_tokens":16}'
check "a translation (a string)" python3 -c 'import json,sys; assert isinstance(json.load(open(sys.argv[1]))["data"][0]["text"], str)' "$BODY"

# ---- image classification from a tar of label folders ---------------------------------
post_job "create an image-classification job" 202 \
  "{\"task\":\"image-classification\",\"arch\":\"cnn\",\"training_file\":\"$IMAGES\",\"output_model\":\"tiny-fashion\",\"hyperparameters\":{\"steps\":40,\"batch_size\":16,\"log_every\":5,\"learning_rate\":0.003}}"
I=$(json_get "$BODY" .id)
check "image-classification job succeeds" wait_status "$I" succeeded 90
for c in trouser sneaker; do
  expect_status "classify a held-out $c (raw PNG body)" 200 -H 'Content-Type: image/png' --data-binary @"$TEST_TMP/held-$c.png" \
    "$BASE/v1/classifications?model=tiny-fashion"
  check "the held-out $c is classified as $c" test "$(json_get "$BODY" '.data[0].labels[0].label')" = "$c"
done

# ---- queue, cancel, replace, paging --------------------------------------------------
post_job "a long job" 202 "{$GPT,\"output_model\":\"long\",\"hyperparameters\":{\"steps\":5000,$TINY,\"log_every\":1}}"
L=$(json_get "$BODY" .id)
post_job "a second job waits (max_running_jobs 1)" 202 "{$GPT,\"output_model\":\"tiny-gpt\",\"replace\":true,\"hyperparameters\":{\"steps\":20,$TINY}}"
Q=$(json_get "$BODY" .id)
check "the long job runs" wait_status "$L" running 10
check "the second one is queued" test "$(job_field "$Q" .status)" = queued
expect_status "cancel the queued job" 200 -X POST "$BASE/v1/jobs/$Q/cancel"
check "queued → cancelled at once" test "$(json_get "$BODY" .status)" = cancelled
check "the long job makes progress" wait_step "$L" 3 20
expect_status "cancel the running job" 200 -X POST "$BASE/v1/jobs/$L/cancel"
check "running → cancelled at its next step" wait_status "$L" cancelled 20
check "cancelled: error says so" test "$(job_field "$L" .error.code)" = cancelled
check "the old tiny-gpt is still served" test -s "$MODELS_DIR/tiny-gpt/model.safetensors"
expect_status "list, limit 2" 200 "$BASE/v1/jobs?limit=2"
check "newest first, has_more" test "$(json_get "$BODY" '.data[0].id')/$(json_get "$BODY" '.data|length')/$(json_get "$BODY" .has_more)" = "$Q/2/true"
expect_status "list, after the second" 200 "$BASE/v1/jobs?limit=10&after=$(json_get "$BODY" .last_id)"
check "the rest: 4 more, no more after" test "$(json_get "$BODY" '.data|length')/$(json_get "$BODY" .has_more)/$(json_get "$BODY" '.data[3].id')" = "4/false/$G"

# ---- kill -9 and resume --------------------------------------------------------------
post_job "a job to kill the daemon under" 202 "{$GPT,\"output_model\":\"survivor\",\"hyperparameters\":{\"steps\":800,$TINY,\"log_every\":5,\"checkpoint_every\":10}}"
K=$(json_get "$BODY" .id)
for round in 1 2; do
  at=$((round * 250 - 50 + RANDOM % 100))   # 200..299, then 450..549 (random moments)
  check "round $round: reaches step $at" wait_step "$K" "$at" 60
  kill -KILL "$PID"; wait "$PID" 2>/dev/null; PID=""
  start_daemon "${FLAGS[@]}" || { finish; exit; }
  check "round $round: the job is resumed" grep -q "1 to resume" "$DAEMON_LOG"
done
check "the killed job succeeds" wait_status "$K" succeeded 90
check "same total steps, and the steps resumed (never back to the start)" python3 - "$DATA_DIR/jobs/$K/events.jsonl" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
runs = [e for e in ev if e["type"] == "status" and e["status"] == "running"]
assert len(runs) == 3, f"{len(runs)} starts (want 3: first run + 2 restarts)"
prog = [e for e in ev if e["type"] == "progress"]
assert all(e["total_steps"] == 800 for e in prog), "total steps changed"
assert prog[-1]["step"] == 800
# after each restart the first report continues from a checkpoint (step > 10)
idx = [i for i, e in enumerate(ev) if e["type"] == "status" and e["status"] == "running"][1:]
for i in idx:
    first = next(e for e in ev[i:] if e["type"] == "progress")
    assert first["step"] > 150, f"restarted from step {first['step']}"
print("resumed at", [next(e for e in ev[i:] if e["type"] == "progress")["step"] for i in idx])
PY
expect_status "the resumed job's model serves" 200 "${J[@]}" "$BASE/v1/completions" -d '{"model":"survivor","prompt":"A","max_tokens":4}'
expect_status "jobs survive the restarts" 200 "$BASE/v1/jobs/$G"
check "the first job is still succeeded" test "$(json_get "$BODY" .status)" = succeeded
check "its loss plot is still drawn" sh -c "curl -s '$BASE/v1/jobs/$G/loss.png' >'$TEST_TMP/old.png'"
check "its loss plot: both curves" png_check "$TEST_TMP/old.png" 640 400

# ---- a full disk: RLIMIT_FSIZE on the running daemon ---------------------------------
post_job "a job for the full disk" 202 "{$GPT,\"output_model\":\"full\",\"hyperparameters\":{\"steps\":3000,$TINY,\"log_every\":5,\"checkpoint_every\":5}}"
F=$(json_get "$BODY" .id)
check "it has written a checkpoint" wait_step "$F" 20 30
CK=$DATA_DIR/jobs/$F/checkpoint.bin
size=$(stat -c %s "$CK" 2>/dev/null || echo 0)
check "checkpoint present" test "$size" -gt 4096
prlimit --pid "$PID" --fsize=$((size / 2)):   # (the soft limit) smaller than a checkpoint, larger than job.json
sleep 0.5                                     # a write that had finished before may still rename
sum=$(sha256sum <"$CK")
check "the job fails" wait_status "$F" failed 30
clear_error() { m=$(job_field "$F" .error.message) && echo "$m" && echo "$m" | grep -qiE 'too large|no space'; }
check "with a clear error" clear_error
check "the previous checkpoint is intact" test -s "$CK" -a "$(sha256sum <"$CK")" = "$sum"
prlimit --pid "$PID" --fsize=unlimited:
expect_status "the daemon still serves" 200 "$BASE/v1/models/tiny-gpt"

# ---- SIGTERM with a job running: it stops at a step, stays "running", resumes --------------
post_job "a job for SIGTERM" 202 "{$GPT,\"output_model\":\"after-term\",\"hyperparameters\":{\"steps\":300,$TINY,\"log_every\":5,\"checkpoint_every\":10}}"
T=$(json_get "$BODY" .id)
check "it runs" wait_step "$T" 50 60
expect_status "/metrics: training-job gauges" 200 "$BASE/metrics"
check "/metrics: inferd_training_jobs{status=\"running\"} 1" grep -q '^inferd_training_jobs{status="running"} 1$' "$BODY"
t0=$SECONDS
stop_daemon
check "SIGTERM with a job running: clean stop" test $? -eq 0
check "SIGTERM: stopped within 10 s" test $((SECONDS - t0)) -le 10
check "SIGTERM: the job stays running on disk" test "$(json_get "$DATA_DIR/jobs/$T/job.json" .status)" = running
start_daemon "${FLAGS[@]}" || { finish; exit; }
check "SIGTERM: the job succeeds after the restart" wait_status "$T" succeeded 60
check "SIGTERM: it resumed from its checkpoint" python3 - "$DATA_DIR/jobs/$T/events.jsonl" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
i = [k for k, e in enumerate(ev) if e["type"] == "status" and e["status"] == "running"][1]
first = next(e for e in ev[i:] if e["type"] == "progress")
assert first["step"] > 40 and ev[-1]["status"] == "succeeded" and ev[-1]["total_steps"] == 300, (first, ev[-1])
PY

stop_daemon
check "clean stop" test $? -eq 0
finish
