#!/usr/bin/env bash
# test_images.sh — image generation with models/fashion-dcgan:
#
#  (a) the shipped model's quality, judged by models/fashion-cnn over 200
#      generated images (`inferd eval --classifier`): mean top-1 confidence
#      above a floor (the figure measured at commit time minus a margin), at
#      least 8 of 10 classes represented, and most images classified as the
#      label they were asked for;
#  (b) POST /v1/images/generations: n images, each a 28x28 gray PNG; the same
#      seed gives the same images (alone, and while 24 other requests run),
#      image i of n=4 equals image i of n=1 (batch invariance);
#  (c) label: every image carries it, and fashion-cnn mostly agrees;
#  (d) Accept: image/png: one grid PNG, min(n,8) columns of 28 pixels;
#  (e) errors in the API.md shape: n out of range or not an integer, bad seed
#      type, unknown label, a label for an unconditional model, wrong task,
#      no model, unknown model.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

need "binary $INFERD" test -x "$INFERD"
need_models fashion-dcgan fashion-cnn
need_done

# Floors from the shipped model's README (measured on 1,000 images) minus a margin.
CONF_FLOOR=${CONF_FLOOR:-0.77}   # measured 0.87 (200 images, seed 3: 0.869)
MATCH_FLOOR=${MATCH_FLOOR:-0.70}   # measured 0.86 (seed 3: 0.835)

# ---- (a) quality --------------------------------------------------------------------
"$INFERD" eval --model "$MODELS_DIR/fashion-dcgan" --classifier "$MODELS_DIR/fashion-cnn" --n 200 --seed 3 \
  >"$TEST_TMP/eval.txt" 2>&1
sed 's/^/       | /' "$TEST_TMP/eval.txt"
conf=$(awk '/^images/ {print $6}' "$TEST_TMP/eval.txt")
classes=$(awk '/^images/ {split($9, a, "/"); print a[1]}' "$TEST_TMP/eval.txt")
match=$(awk '/^images/ {print $15}' "$TEST_TMP/eval.txt")
ge() { [ -n "$1" ] && python3 -c 'import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))' "$1" "$2"; }
check "quality: mean top-1 confidence $conf >= $CONF_FLOOR" ge "$conf" "$CONF_FLOOR"
check "quality: classes represented $classes >= 8" ge "$classes" 8
check "quality: classified as the requested label $match >= $MATCH_FLOOR" ge "$match" "$MATCH_FLOOR"

# ---- the daemon: fashion-dcgan, fashion-cnn, a tiny unconditional generator ------------
REPO=$TEST_TMP/repo
mkdir -p "$REPO"
cp -r "$MODELS_DIR/fashion-dcgan" "$REPO/fashion-dcgan"
cp -r "$MODELS_DIR/fashion-cnn" "$REPO/fashion-cnn"
"$INFERD" train --task image-generation --data /usr/share/datasets/fashion-mnist --out "$REPO/uncond" \
  --labels none --steps 2 --batch-size 8 --dim 4 --log-every 1 >"$TEST_TMP/train.log" 2>&1
check "an unconditional generator trains (--labels none)" test -f "$REPO/uncond/model.safetensors"
MODELS_DIR=$REPO start_daemon --workers 2 || { finish; exit; }
J=(-H 'Content-Type: application/json')
URL=$BASE/v1/images/generations

# PYH CMD FILE...: checks on response bodies
PYH=$TEST_TMP/check.py
cat >"$PYH" <<'PY'
import base64, hashlib, json, struct, sys
def png_size(b):
    assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h, depth, ctype = struct.unpack(">IIBB", b[16:26])
    return w, h, depth, ctype
cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "images":          # images FILE N: N 28x28 8-bit gray PNGs
    d = json.load(open(args[0]))
    assert len(d["data"]) == int(args[1]), f"{len(d['data'])} images"
    for it in d["data"]:
        w, h, depth, ctype = png_size(base64.b64decode(it["b64_png"]))
        assert (w, h, depth, ctype) == (28, 28, 8, 0), (w, h, depth, ctype)
elif cmd == "hashes":        # hashes FILE: one md5 per image
    d = json.load(open(args[0]))
    print(" ".join(hashlib.md5(base64.b64decode(it["b64_png"])).hexdigest() for it in d["data"]))
elif cmd == "labels":        # labels FILE LABEL: every image carries it
    d = json.load(open(args[0]))
    assert all(it.get("label") == args[1] for it in d["data"]), [it.get("label") for it in d["data"]]
elif cmd == "pngsize":       # pngsize FILE W H
    w, h, _, _ = png_size(open(args[0], "rb").read())
    assert (w, h) == (int(args[1]), int(args[2])), (w, h)
elif cmd == "err":           # err FILE PARAM: the API.md error shape naming PARAM
    e = json.load(open(args[0]))["error"]
    assert e["message"] and e["type"] and e["code"], e
    if len(args) > 1: assert e["param"] == args[1], e
elif cmd == "b64":           # b64 FILE I: image I's base64 (for /v1/classifications)
    print(json.load(open(args[0]))["data"][int(args[1])]["b64_png"])
PY

# ---- (b) n, seed, batch invariance -------------------------------------------------------
if expect_status "n=4 seed=7: 200" 200 "${J[@]}" -d '{"model":"fashion-dcgan","n":4,"seed":7}' "$URL"; then
  check "n=4: four 28x28 gray PNGs" python3 "$PYH" images "$BODY" 4
  check "the response repeats the seed" test "$(json_get "$BODY" .seed)" = 7
  h4=$(python3 "$PYH" hashes "$BODY")
fi
expect_status "n=4 seed=7 again: 200" 200 "${J[@]}" -d '{"model":"fashion-dcgan","n":4,"seed":7}' "$URL" &&
  check "same seed, same images" test "$(python3 "$PYH" hashes "$BODY")" = "${h4:-x}"
expect_status "n=1 seed=7: 200" 200 "${J[@]}" -d '{"model":"fashion-dcgan","n":1,"seed":7}' "$URL" &&
  check "image 0 of n=1 == image 0 of n=4" test "$(python3 "$PYH" hashes "$BODY")" = "${h4%% *}"
expect_status "n=4 seed=8: 200" 200 "${J[@]}" -d '{"model":"fashion-dcgan","n":4,"seed":8}' "$URL" &&
  check "another seed, other images" test "$(python3 "$PYH" hashes "$BODY")" != "${h4:-x}"
# under load: 24 other requests (other seeds, sizes, labels) in flight, batched with ours
pids=()
for i in $(seq 1 24); do
  curl -s "${J[@]}" -d "{\"model\":\"fashion-dcgan\",\"n\":$((i % 7 + 1)),\"seed\":$((100 + i))}" "$URL" \
    -o "$TEST_TMP/load.$i" &
  pids+=($!)
done
curl -s "${J[@]}" -d '{"model":"fashion-dcgan","n":4,"seed":7}' "$URL" -o "$TEST_TMP/under_load.json"
wait "${pids[@]}"   # the curls only: the daemon is a background job too
check "same seed under concurrent load, same images" test "$(python3 "$PYH" hashes "$TEST_TMP/under_load.json")" = "${h4:-x}"
ok=0
for i in $(seq 1 24); do python3 "$PYH" images "$TEST_TMP/load.$i" $((i % 7 + 1)) 2>/dev/null && ok=$((ok + 1)); done
check "24 concurrent requests all answered with their images ($ok)" test "$ok" = 24
if expect_status "n=64: 200" 200 "${J[@]}" -d '{"model":"fashion-dcgan","n":64,"seed":1}' "$URL"; then
  check "n=64: 64 PNGs" python3 "$PYH" images "$BODY" 64
fi
expect_status "no seed: 200 with a drawn seed" 200 "${J[@]}" -d '{"model":"fashion-dcgan"}' "$URL" &&
  check "no seed: the response names the seed it drew" python3 -c 'import json,sys; assert isinstance(json.load(open(sys.argv[1]))["seed"], int)' "$BODY"

# ---- (c) label ------------------------------------------------------------------------------
if expect_status "label Trouser: 200" 200 "${J[@]}" -d '{"model":"fashion-dcgan","n":8,"seed":5,"label":"Trouser"}' "$URL"; then
  check "every image labelled Trouser" python3 "$PYH" labels "$BODY" Trouser
  cp "$BODY" "$TEST_TMP/trousers.json"
  agree=0
  for i in 0 1 2 3 4 5 6 7; do
    b64=$(python3 "$PYH" b64 "$TEST_TMP/trousers.json" $i)
    curl -s "${J[@]}" -d "{\"model\":\"fashion-cnn\",\"image\":\"$b64\",\"top_k\":1}" "$BASE/v1/classifications" \
      -o "$TEST_TMP/cls.json"
    [ "$(json_get "$TEST_TMP/cls.json" .data[0].labels[0].label)" = Trouser ] && agree=$((agree + 1))
  done
  check "fashion-cnn sees Trouser in $agree of 8 >= 6" test "$agree" -ge 6
fi
expect_status "no label: 200" 200 "${J[@]}" -d '{"model":"fashion-dcgan","n":10,"seed":2}' "$URL" &&
  check "no label: image i has label i % 10" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["data"]
want = ["T-shirt/top","Trouser","Pullover","Dress","Coat","Sandal","Shirt","Sneaker","Bag","Ankle boot"]
assert [it["label"] for it in d] == want, [it["label"] for it in d]' "$BODY"

# ---- (d) grid PNG ---------------------------------------------------------------------------
for nw in "1 28 28" "3 84 28" "10 224 56" "64 224 224"; do
  set -- $nw
  if expect_status "Accept: image/png n=$1: 200" 200 "${J[@]}" -H 'Accept: image/png' \
       -d "{\"model\":\"fashion-dcgan\",\"n\":$1,\"seed\":4}" "$URL"; then
    check "grid of $1: ${2}x$3 PNG" python3 "$PYH" pngsize "$BODY" "$2" "$3"
  fi
done

# ---- (e) errors -----------------------------------------------------------------------------
err() { # err NAME STATUS PARAM BODY
  expect_status "$1: $2" "$2" "${J[@]}" -d "$4" "$URL" && check "$1: error names $3" python3 "$PYH" err "$BODY" "$3"
}
err "n=0" 400 n '{"model":"fashion-dcgan","n":0}'
err "n=65" 400 n '{"model":"fashion-dcgan","n":65}'
err "n a string" 400 n '{"model":"fashion-dcgan","n":"4"}'
err "n fractional" 400 n '{"model":"fashion-dcgan","n":2.5}'
err "seed a string" 400 seed '{"model":"fashion-dcgan","seed":"7"}'
err "seed negative" 400 seed '{"model":"fashion-dcgan","seed":-1}'
err "seed fractional" 400 seed '{"model":"fashion-dcgan","seed":1.5}'
err "unknown label" 400 label '{"model":"fashion-dcgan","label":"Cat"}'
err "label not a string" 400 label '{"model":"fashion-dcgan","label":3}'
err "label for an unconditional model" 400 label '{"model":"uncond","label":"Trouser"}'
err "wrong task" 400 model '{"model":"fashion-cnn","n":1}'
err "no model" 400 model '{"n":1}'
err "unknown model" 404 model '{"model":"nope","n":1}'
expect_status "bad JSON: 400" 400 "${J[@]}" -d '{"model":' "$URL"
expect_status "unconditional model: 200" 200 "${J[@]}" -d '{"model":"uncond","n":2,"seed":1}' "$URL" &&
  check "unconditional: two PNGs, no labels" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["data"]
assert len(d) == 2 and all("label" not in it for it in d)' "$BODY"

stop_daemon
finish
