#!/usr/bin/env bash
# test_default_styles.sh — the default styles in models/ served over HTTP:
# POST /v1/stylizations with tests/ref/style_photo.jpg (a photo none of them
# was trained on), raw JPEG in and PNG out, answers a PNG of the photo's size
# that restyles it substantially rather than tinting it: the mean absolute
# change of the RGB values is large, and still large once each channel's mean
# shift is taken out (build/tools/mkimg change). The same request in JSON
# answers the same pixels; the model is listed by GET /v1/models.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

STYLES=(elephants rhythm)
PHOTO=$REPO_ROOT/tests/ref/style_photo.jpg
MKIMG=$TOOLS/mkimg
need "binary $INFERD" test -x "$INFERD"
need "test tool $MKIMG (make build/tools/mkimg)" test -x "$MKIMG"
need "photo $PHOTO" test -s "$PHOTO"
need_models "${STYLES[@]}"
need_done

REPO=$TEST_TMP/repo
mkdir -p "$REPO"
for s in "${STYLES[@]}"; do cp -r "$MODELS_DIR/$s" "$REPO/$s"; done
MODELS_DIR=$REPO start_daemon --workers 1 || { finish; exit; }
URL=$BASE/v1/stylizations
expect_status "models listed" 200 "$BASE/v1/models" &&
  for s in "${STYLES[@]}"; do check "$s listed" grep -q "\"$s\"" "$BODY"; done

gt() { python3 -c 'import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))' "$1" "$2"; }
for s in "${STYLES[@]}"; do
  if expect_status "$s: JPEG in, PNG out" 200 -H 'Content-Type: image/jpeg' -H 'Accept: image/png' \
       --data-binary "@$PHOTO" "$URL?model=$s"; then
    cp "$BODY" "$TEST_TMP/$s.png"
    check "$s: the photo's size" test "$("$MKIMG" info "$TEST_TMP/$s.png")" = "256 170 opaque"
    read -r change centred < <("$MKIMG" change "$PHOTO" "$TEST_TMP/$s.png")
    check "$s: mean change $change of 255 (> 20)" gt "$change" 20
    check "$s: change without the channel shifts $centred (> 12, a tint scores ~0)" gt "$centred" 12
  fi
  if expect_status "$s: JSON in and out" 200 -H 'Content-Type: application/json' \
       -d "{\"model\":\"$s\",\"image\":\"$(base64 -w0 "$PHOTO")\"}" "$URL"; then
    python3 -c 'import base64,json,sys; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["data"][0]["b64_png"]))' \
      "$BODY" "$TEST_TMP/$s.json.png"
    check "$s: JSON answer has the same pixels" test "$("$MKIMG" diff "$TEST_TMP/$s.png" "$TEST_TMP/$s.json.png")" = 0
  fi
done
finish
