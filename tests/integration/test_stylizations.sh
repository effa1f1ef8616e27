#!/usr/bin/env bash
# test_stylizations.sh — POST /v1/stylizations with tests/ref/transformer_net_tiny
# (a randomly initialised TransformerNet, width 0.25, whose PyTorch outputs
# tests/ref/make_transformer_net_ref.py recorded):
#  (a) a raw RGBA PNG answered as PNG (Accept: image/png): the same size, the
#      alpha channel carried through, every pixel within 1/255 of PyTorch's;
#      the JSON answer (b64_png, width, height) holds the same PNG; a JPEG is
#      within 1/255 of PyTorch's output for the pixels PIL decoded;
#  (b) EXIF orientation 6 turns the image upright (width and height swap);
#      max_side shrinks (aspect kept), never enlarges;
#  (c) a batch of concurrent requests of two sizes, each answered with its own size;
#  (d) errors: undecodable (415/400), truncated, too large for max_image_bytes
#      (413 naming it; max_side then fits), smaller than the network takes, a
#      model of another task, missing image or model, bad max_side, bad base64.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

REF=$REPO_ROOT/tests/ref/transformer_net_tiny
MKIMG=$TOOLS/mkimg
need "binary $INFERD" test -x "$INFERD"
need "test tool $MKIMG (make build/tools/mkimg)" test -x "$MKIMG"
need "fixture $REF (tests/ref/make_transformer_net_ref.py)" test -s "$REF/model.safetensors"
need_done

REPO=$TEST_TMP/repo
IMG=$TEST_TMP/img
mkdir -p "$REPO" "$IMG"
cp -r "$REF" "$REPO/tiny-style"
rm -f "$REPO/tiny-style/"*.png "$REPO/tiny-style/"*.jpg "$REPO/tiny-style/ref.txt"
cp -r "$REPO_ROOT/tests/ref/cnn_ref/full" "$REPO/a-classifier"
# 4 MiB per request: 2 MiB of im2col tile plus about 120 bytes a pixel for
# this network, so 200x120 is refused and 50x30 fits
MODELS_DIR=$REPO start_daemon --workers 1 --max-image-bytes 4194304 || { finish; exit; }
URL=$BASE/v1/stylizations
J=(-H 'Content-Type: application/json')
PNG=(-H 'Accept: image/png')

err_is() { # err_is CODE PARAM — the body is an API.md error with that code and param
  python3 - "$BODY" "$1" "$2" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert e["code"] == sys.argv[2], e
assert sys.argv[3] == "-" or e.get("param") == sys.argv[3], e
assert e["message"], e
print(e["message"])
PY
}
max_diff() { "$MKIMG" diff "$1" "$2"; }
le() { [ -n "$1" ] && [ "$1" -le "$2" ]; }
info() { "$MKIMG" info "$1"; }

# ---- (a) PyTorch's pixels -----------------------------------------------------------
if expect_status "raw PNG, Accept image/png: 200" 200 "${PNG[@]}" -H 'Content-Type: image/png' \
     --data-binary "@$REF/input.png" "$URL?model=tiny-style"; then
  cp "$BODY" "$IMG/out.png"
  check "PNG answer: same size, alpha kept" test "$(info "$IMG/out.png")" = "23 18 alpha"
  d=$(max_diff "$IMG/out.png" "$REF/expected.png")
  check "PNG answer: within 1/255 of PyTorch (max diff $d)" le "$d" 1
fi
if expect_status "JSON with base64 PNG: 200" 200 "${J[@]}" \
     -d "{\"model\":\"tiny-style\",\"image\":\"$(base64 -w0 "$REF/input.png")\"}" "$URL"; then
  check "JSON answer: model, width, height" test "$(json_get "$BODY" .model) $(json_get "$BODY" .data[0].width) $(json_get "$BODY" .data[0].height)" = "tiny-style 23 18"
  json_get "$BODY" .data[0].b64_png | base64 -d >"$IMG/out_json.png"
  check "JSON answer: the same PNG as the raw answer" cmp -s "$IMG/out_json.png" "$IMG/out.png"
fi
if expect_status "raw JPEG: 200" 200 "${PNG[@]}" -H 'Content-Type: image/jpeg' --data-binary "@$REF/input.jpg" \
     "$URL?model=tiny-style"; then
  cp "$BODY" "$IMG/out_jpg.png"
  check "JPEG answer: opaque, same size" test "$(info "$IMG/out_jpg.png")" = "23 18 opaque"
  d=$(max_diff "$IMG/out_jpg.png" "$REF/expected_jpg.png")
  check "JPEG answer: within 1/255 of PyTorch on PIL's decode (max diff $d)" le "$d" 1
fi

# ---- (b) orientation, max_side ------------------------------------------------------------
"$MKIMG" exif "$REF/input.jpg" "$IMG/rot6.jpg" 6
if expect_status "JPEG with EXIF orientation 6: 200" 200 "${PNG[@]}" -H 'Content-Type: image/jpeg' \
     --data-binary "@$IMG/rot6.jpg" "$URL?model=tiny-style"; then
  check "orientation 6: turned upright (18 wide, 23 high)" test "$(info "$BODY")" = "18 23 opaque"
fi
"$MKIMG" noise "$IMG/big.png" 200 120 rgba
if expect_status "max_side 50 on 200x120: 200" 200 "${J[@]}" \
     -d "{\"model\":\"tiny-style\",\"image\":\"$(base64 -w0 "$IMG/big.png")\",\"max_side\":50}" "$URL"; then
  check "max_side: 50x30" test "$(json_get "$BODY" .data[0].width)x$(json_get "$BODY" .data[0].height)" = 50x30
  json_get "$BODY" .data[0].b64_png | base64 -d >"$IMG/small.png"
  check "max_side: alpha kept through the resize" test "$(info "$IMG/small.png")" = "50 30 alpha"
fi
if expect_status "max_side larger than the image: 200" 200 "${PNG[@]}" -H 'Content-Type: image/png' \
     --data-binary "@$REF/input.png" "$URL?model=tiny-style&max_side=1000"; then
  check "max_side never enlarges" test "$(info "$BODY")" = "23 18 alpha"
fi

# ---- (c) concurrent requests, two sizes ------------------------------------------------
"$MKIMG" noise "$IMG/a.png" 40 30
"$MKIMG" noise "$IMG/b.png" 32 32
pids=()
for i in $(seq 1 8); do
  f=$([ $((i % 2)) = 0 ] && echo a || echo b)
  curl -s -o "$IMG/c$i.png" -w '%{http_code}' "${PNG[@]}" -H 'Content-Type: image/png' --data-binary "@$IMG/$f.png" \
    "$URL?model=tiny-style" >"$IMG/c$i.code" &
  pids+=($!)
done
wait "${pids[@]}"   # not the daemon
ok=1
for i in $(seq 1 8); do
  want=$([ $((i % 2)) = 0 ] && echo "40 30 opaque" || echo "32 32 opaque")
  [ "$(cat "$IMG/c$i.code")" = 200 ] && [ "$(info "$IMG/c$i.png")" = "$want" ] || ok=0
done
check "8 concurrent requests of two sizes: each answered at its own size" test $ok = 1
check "concurrent answers of one image are identical" cmp -s "$IMG/c2.png" "$IMG/c4.png"

# ---- (d) errors ----------------------------------------------------------------------------
printf 'not an image at all' >"$IMG/text.bin"
expect_status "undecodable body: 415" 415 -H 'Content-Type: image/png' --data-binary "@$IMG/text.bin" "$URL?model=tiny-style" &&
  check "undecodable: unsupported_media_type" err_is unsupported_media_type image
"$MKIMG" truncated "$IMG/big.png" "$IMG/trunc.png" 300
expect_status "truncated PNG: 400" 400 -H 'Content-Type: image/png' --data-binary "@$IMG/trunc.png" "$URL?model=tiny-style" &&
  check "truncated: invalid_image" err_is invalid_image image
"$MKIMG" huge "$IMG/huge.png"
expect_status "PNG claiming 100000x100000: 413" 413 -H 'Content-Type: image/png' --data-binary "@$IMG/huge.png" "$URL?model=tiny-style" &&
  check "huge: payload_too_large" err_is payload_too_large image
if expect_status "200x120 over max_image_bytes: 413" 413 -H 'Content-Type: image/png' --data-binary "@$IMG/big.png" \
     "$URL?model=tiny-style"; then
  check "413 names max_image_bytes and max_side" python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["error"]["message"]; sys.exit(not ("max_image_bytes" in m and "max_side" in m))' "$BODY"
fi
"$MKIMG" noise "$IMG/tiny.png" 4 9
expect_status "4x9 image: 400" 400 -H 'Content-Type: image/png' --data-binary "@$IMG/tiny.png" "$URL?model=tiny-style" &&
  check "too small: invalid_value" err_is invalid_value image
expect_status "image-classification model: 400" 400 -H 'Content-Type: image/png' --data-binary "@$REF/input.png" "$URL?model=a-classifier" &&
  check "wrong task: wrong_task" err_is wrong_task model
expect_status "JSON without image: 400" 400 "${J[@]}" -d '{"model":"tiny-style"}' "$URL" &&
  check "missing image: missing_required_parameter" err_is missing_required_parameter image
expect_status "JSON without model: 400" 400 "${J[@]}" -d "{\"image\":\"$(base64 -w0 "$REF/input.png")\"}" "$URL" &&
  check "missing model: missing_required_parameter" err_is missing_required_parameter model
expect_status "unknown model: 404" 404 "${J[@]}" -d '{"model":"nope","image":"aGk="}' "$URL"
expect_status "max_side 0: 400" 400 -H 'Content-Type: image/png' --data-binary "@$REF/input.png" "$URL?model=tiny-style&max_side=0" &&
  check "max_side 0: invalid_value" err_is invalid_value max_side
expect_status "max_side a string: 400" 400 "${J[@]}" -d '{"model":"tiny-style","image":"aGk=","max_side":"big"}' "$URL"
expect_status "bad base64: 400" 400 "${J[@]}" -d '{"model":"tiny-style","image":"***"}' "$URL" &&
  check "bad base64: invalid_value" err_is invalid_value image
expect_status "image array: 400" 400 "${J[@]}" -d '{"model":"tiny-style","image":["aGk="]}' "$URL"
expect_status "empty raw body: 400" 400 -H 'Content-Type: image/png' --data-binary '' "$URL?model=tiny-style"
expect_status "still serving after the errors" 200 "${PNG[@]}" -H 'Content-Type: image/png' --data-binary "@$REF/input.png" "$URL?model=tiny-style"
finish
