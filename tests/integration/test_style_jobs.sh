#!/usr/bin/env bash
# test_style_jobs.sh — training a style network as a job: POST /v1/jobs with
# task image-stylization, training_file = an uploaded tar of photos,
# hyperparameters.style_file = an uploaded style image: bad inputs answer 400
# or 404 naming the field; a tiny job (width 1/8, 32-pixel crops, 8 steps)
# succeeds with progress events, and the model it installs is served by
# POST /v1/stylizations.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

export MODELS_DIR=$TEST_TMP/models
mkdir -p "$MODELS_DIR" "$DATA_DIR" "$TEST_TMP/photos/sub"
J=(-H 'Content-Type: application/json')

# a striped "painting", four "photos" of shapes (one in a subfolder), junk
python3 - "$TEST_TMP" <<'PY'
import math, struct, sys, zlib
d = sys.argv[1]
def png(path, w, h, px):
    raw = b"".join(b"\0" + bytes(px(x, y)[c] for x in range(w) for c in range(3)) for y in range(h))
    chunk = lambda k, b: struct.pack(">I", len(b)) + k + b + struct.pack(">I", zlib.crc32(k + b))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                           chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(f"{d}/style.png", 80, 64, lambda x, y: (240, 60, 30) if (x + y) // 5 % 2 else (20, 40, 200))
for i in range(4):
    sub = "sub/" if i == 3 else ""
    png(f"{d}/photos/{sub}p{i}.png", 48 + 4 * i, 40,
        lambda x, y: (30, 160, 60) if (x - 20 - i) ** 2 + (y - 18) ** 2 < 120 else (90 + 2 * x, 120 + i * 20, 200 - 3 * y))
png(f"{d}/small.png", 20, 20, lambda x, y: (x * 10, y * 10, 0))
open(f"{d}/junk.png", "wb").write(b"this is not an image at all")
PY
tar -C "$TEST_TMP" -czf "$TEST_TMP/photos.tar.gz" photos
mkdir -p "$TEST_TMP/none" && echo notes >"$TEST_TMP/none/notes.txt" && tar -C "$TEST_TMP" -cf "$TEST_TMP/none.tar" none

start_daemon --max-running-jobs 1 --train-threads 1 || { finish; exit; }
upload() {
  curl -s -X POST --data-binary @"$1" -H 'Content-Type: application/octet-stream' \
    "$BASE/v1/files?purpose=train&filename=$(basename "$1")" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
SF=$(upload "$TEST_TMP/style.png"); PF=$(upload "$TEST_TMP/photos.tar.gz"); JUNK=$(upload "$TEST_TMP/junk.png")
NONE=$(upload "$TEST_TMP/none.tar")
check "uploaded" test -n "$SF" -a -n "$PF" -a -n "$JUNK" -a -n "$NONE"
post_job() { expect_status "$1" "$2" "${J[@]}" -X POST "$BASE/v1/jobs" -d "$3"; }
error_param() { test "$(json_get "$BODY" .error.param)" = "$1"; }
T='"task":"image-stylization","output_model":"my-style"'
HP='"size":32,"width":0.125,"steps":8,"log_every":4,"learning_rate":0.02'

post_job "no style_file" 400 "{$T,\"training_file\":\"$PF\",\"hyperparameters\":{$HP}}"
check "no style_file: param" error_param hyperparameters.style_file
post_job "unknown style file" 404 "{$T,\"training_file\":\"$PF\",\"hyperparameters\":{$HP,\"style_file\":\"file-000000000000000000000000\"}}"
check "unknown style file: param" error_param hyperparameters.style_file
post_job "style file is not an image" 400 "{$T,\"training_file\":\"$PF\",\"hyperparameters\":{$HP,\"style_file\":\"$JUNK\"}}"
check "not an image: param" error_param hyperparameters.style_file
check "not an image: named by its id" grep -q "$JUNK" "$BODY"
post_job "a tar without photos" 400 "{$T,\"training_file\":\"$NONE\",\"hyperparameters\":{$HP,\"style_file\":\"$SF\"}}"
check "no photos: param" error_param training_file
post_job "width out of range" 400 "{$T,\"training_file\":\"$PF\",\"hyperparameters\":{\"style_file\":\"$SF\",\"width\":9}}"
check "width: param" error_param hyperparameters.width
post_job "crops larger than the photos" 400 "{$T,\"training_file\":\"$PF\",\"hyperparameters\":{\"size\":64,\"style_file\":\"$SF\"}}"
check "crop size: param" error_param training_file

post_job "create a style job" 202 "{$T,\"training_file\":\"$PF\",\"hyperparameters\":{$HP,\"style_file\":\"$SF\"}}"
ID=$(json_get "$BODY" .id)
curl -s -N --max-time 120 "$BASE/v1/jobs/$ID/events" >"$TEST_TMP/events.sse"
check "events: two progress reports, then succeeded" python3 - "$TEST_TMP/events.sse" <<'PY'
import json, sys
evs = [json.loads(l[6:]) for l in open(sys.argv[1]).read().splitlines() if l.startswith("data: ")]
prog = [e for e in evs if e["type"] == "progress"]
assert [e["step"] for e in prog] == [4, 8], [e["step"] for e in prog]
assert evs[-1]["type"] == "status" and evs[-1]["status"] == "succeeded", evs[-1]
PY
if expect_status "the trained style is served" 200 -H 'Content-Type: image/png' -H 'Accept: image/png' \
     --data-binary "@$TEST_TMP/photos/p0.png" "$BASE/v1/stylizations?model=my-style"; then
  check "a PNG of the photo's size" python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); sys.exit(struct.unpack(">II", d[16:24]) != (48, 40))' "$BODY"
fi
stop_daemon
finish
