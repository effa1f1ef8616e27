#!/usr/bin/env bash
# test_stylize.sh — style transfer by optimisation: `inferd stylize` on two
# small generated images (the loss falls to well under half, the PNG has the
# photo's size, bad inputs exit non-zero with a message), then the same over
# HTTP as an image-stylization-optimize job: every bad input (400 naming the
# field, 404 unknown files), a job end to end (progress events with the
# loss's parts, the final state naming result.png, the image served), and
# result.png of an unfinished job (409), then cancelling it.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

export MODELS_DIR=$TEST_TMP/models
mkdir -p "$MODELS_DIR" "$DATA_DIR"
J=(-H 'Content-Type: application/json')

# ---- images: a colourful striped "painting", a "photo" of shapes, junk ------------
python3 - "$TEST_TMP" <<'PY'
import math, struct, sys, zlib
d = sys.argv[1]
def png(path, w, h, px):
    raw = b"".join(b"\0" + bytes(px(x, y)[c] for x in range(w) for c in range(3)) for y in range(h))
    chunk = lambda k, b: struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                           chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
def style(x, y):
    t = math.sin((x + 2 * y) * 0.5)
    return (int(127 + 120 * t), 40, int(127 - 120 * t)) if (x // 6 + y // 6) % 2 else (240, 200, 30)
def content(x, y):
    inside = (x - 30) ** 2 + (y - 22) ** 2 < 150
    return (30, 160, 60) if inside else (90 + x % 150, 120, 200 - y % 150)
png(f"{d}/style.png", 80, 64, style)
png(f"{d}/content.png", 64, 48, content)
png(f"{d}/tiny.png", 16, 16, content)
png(f"{d}/big.png", 200, 150, content)
open(f"{d}/junk.png", "wb").write(b"this is not an image at all")
PY
S=$TEST_TMP/style.png C=$TEST_TMP/content.png

# png_size FILE → "WxH" of a PNG
png_size() { python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1"; }

# ---- the command line ------------------------------------------------------------
OPENBLAS_NUM_THREADS=1 "$INFERD" stylize --style "$S" --content "$C" --out "$TEST_TMP/cli.png" --size 64 --steps 40 \
  --log-every 10 >"$TEST_TMP/cli.out" 2>&1
check "inferd stylize exits 0" test $? -eq 0
check "progress lines (step, loss, content, style, time)" grep -q "step    10/40  loss .* content .* style .*s$" "$TEST_TMP/cli.out"
check "result is a 64x48 PNG" test "$(png_size "$TEST_TMP/cli.png")" = 64x48
# "loss A -> B (...)": the optimisation lowers the loss to under half
check "the loss falls to under half" python3 - "$TEST_TMP/cli.out" <<'PY'
import re, sys
m = re.search(r"^loss ([\d.]+) -> ([\d.]+)", open(sys.argv[1]).read(), re.M)
a, b = float(m.group(1)), float(m.group(2))
print(a, b)
sys.exit(0 if b < 0.5 * a else 1)
PY
"$INFERD" stylize --content "$C" --out "$TEST_TMP/x.png" >"$TEST_TMP/o" 2>&1
check "stylize without --style: exit 2" test $? -eq 2
"$INFERD" stylize --style "$TEST_TMP/junk.png" --content "$C" --out "$TEST_TMP/x.png" >"$TEST_TMP/o" 2>&1
check "junk style image: exit 1, named" sh -c "test $? -eq 1 && grep -q 'style .*junk.png' '$TEST_TMP/o'"
"$INFERD" stylize --style "$S" --content "$TEST_TMP/tiny.png" --out "$TEST_TMP/x.png" >"$TEST_TMP/o" 2>&1
check "16x16 content: exit 1, says the minimum" sh -c "test $? -eq 1 && grep -q 'at least 32' '$TEST_TMP/o'"
"$INFERD" stylize --style "$S" --content "$C" --out "$TEST_TMP/x.png" --steps -3 >"$TEST_TMP/o" 2>&1
check "negative steps: exit 2" test $? -eq 2

# ---- over HTTP ---------------------------------------------------------------------
# 32 MiB of optimisation memory: about 6,500 pixels (80x64 fits, 200x150 does not)
start_daemon --max-job-steps 5000 --max-running-jobs 1 --train-threads 1 --max-job-image-bytes 33554432 || { finish; exit; }
upload() {
  curl -s -X POST --data-binary @"$1" -H 'Content-Type: application/octet-stream' \
    "$BASE/v1/files?purpose=train&filename=$(basename "$1")" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
SF=$(upload "$S"); CF=$(upload "$C"); JUNK=$(upload "$TEST_TMP/junk.png"); TINY=$(upload "$TEST_TMP/tiny.png")
BIG=$(upload "$TEST_TMP/big.png")
check "uploaded" test -n "$SF" -a -n "$CF" -a -n "$JUNK" -a -n "$TINY" -a -n "$BIG"
post_job() { expect_status "$1" "$2" "${J[@]}" -X POST "$BASE/v1/jobs" -d "$3"; }
error_param() { test "$(json_get "$BODY" .error.param)" = "$1"; }
T='"task":"image-stylization-optimize"'

post_job "no style_file" 400 "{$T,\"hyperparameters\":{\"content_file\":\"$CF\"}}"
check "no style_file: param" error_param hyperparameters.style_file
post_job "no hyperparameters at all" 400 "{$T}"
post_job "unknown content file" 404 "{$T,\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"file-000000000000000000000000\"}}"
check "unknown content file: param" error_param hyperparameters.content_file
post_job "style file is not an image" 400 "{$T,\"hyperparameters\":{\"style_file\":\"$JUNK\",\"content_file\":\"$CF\"}}"
check "not an image: param" error_param hyperparameters.style_file
post_job "content image too small" 400 "{$T,\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"$TINY\"}}"
check "too small: param" error_param hyperparameters.content_file
post_job "size out of range" 400 "{$T,\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"$CF\",\"size\":8}}"
check "size: param" error_param hyperparameters.size
post_job "style_weight negative" 400 "{$T,\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"$CF\",\"style_weight\":-1}}"
check "style_weight: param" error_param hyperparameters.style_weight
post_job "over max_job_image_bytes" 400 "{$T,\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"$BIG\"}}"
check "over max_job_image_bytes: param, and the size that fits" sh -c "test \"\$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))[\"error\"]; print(e[\"param\"], \"max_job_image_bytes\" in e[\"message\"], \"at most\" in e[\"message\"])' '$BODY')\" = 'hyperparameters.size True True'"
post_job "output_model does not apply" 400 "{$T,\"output_model\":\"m\",\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"$CF\"}}"
check "output_model: param" error_param output_model
post_job "steps over max_job_steps" 400 "{$T,\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"$CF\",\"steps\":5001}}"
expect_status "result.png of an unknown job" 404 "$BASE/v1/jobs/job-000000000000000000000000/result.png"

post_job "create a stylize job" 202 \
  "{$T,\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"$CF\",\"steps\":40,\"size\":64,\"log_every\":10}}"
ID=$(json_get "$BODY" .id)
check "202: a training.job with task and no model" test "$(json_get "$BODY" .object)/$(json_get "$BODY" .task)/$(json_get "$BODY" .output_model)" = "training.job/image-stylization-optimize/null"
curl -s -N --max-time 90 "$BASE/v1/jobs/$ID/events" >"$TEST_TMP/events.sse"
check "events: progress with the loss's parts, falling; the final state names result.png" python3 - "$TEST_TMP/events.sse" "$ID" <<'PY'
import json, sys
evs = [json.loads(l[6:]) for l in open(sys.argv[1]).read().splitlines() if l.startswith("data: ")]
prog = [e for e in evs if e["type"] == "progress"]
assert [e["step"] for e in prog] == [1, 10, 20, 30, 40], [e["step"] for e in prog]
assert all({"loss", "content_loss", "style_loss", "eta_seconds"} <= e.keys() for e in prog)
assert prog[-1]["loss"] < 0.5 * prog[0]["loss"], (prog[0]["loss"], prog[-1]["loss"])
assert evs[-1]["type"] == "status" and evs[-1]["status"] == "succeeded", evs[-1]
assert evs[-1]["result"] == f"/v1/jobs/{sys.argv[2]}/result.png", evs[-1]
PY
check "job object: succeeded, result URL" test "$(curl -s "$BASE/v1/jobs/$ID" | python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["status"], o["result"], o["step"])')" = "succeeded /v1/jobs/$ID/result.png 40"
expect_status "GET result.png" 200 -D "$TEST_TMP/headers" "$BASE/v1/jobs/$ID/result.png"
check "result.png: image/png, the photo's size" sh -c "grep -qi '^content-type: image/png' '$TEST_TMP/headers' && test \"\$(python3 -c 'import struct,sys; d=open(sys.argv[1],\"rb\").read(24); print(\"%dx%d\" % struct.unpack(\">II\", d[16:24]))' '$BODY')\" = 64x48"
expect_status "loss.png of the job" 200 "$BASE/v1/jobs/$ID/loss.png"

post_job "a long stylize job" 202 \
  "{$T,\"hyperparameters\":{\"style_file\":\"$SF\",\"content_file\":\"$CF\",\"steps\":4000,\"size\":64}}"
LONG=$(json_get "$BODY" .id)
expect_status "result.png before it has finished: 409" 409 "$BASE/v1/jobs/$LONG/result.png"
expect_status "cancel it" 200 -X POST "$BASE/v1/jobs/$LONG/cancel"
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ] && [ "$(curl -s "$BASE/v1/jobs/$LONG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" != cancelled ]; do sleep 0.2; done
check "cancelled" test "$(curl -s "$BASE/v1/jobs/$LONG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = cancelled
expect_status "result.png of a cancelled job: 409" 409 "$BASE/v1/jobs/$LONG/result.png"
stop_daemon
finish
