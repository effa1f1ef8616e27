#!/usr/bin/env bash
# test_files.sh — POST/GET/DELETE /v1/files against a live daemon:
#   raw (application/octet-stream) and multipart (curl -F) uploads, whose
#   sha256 must equal sha256sum's and whose stored bytes equal the upload;
#   list with paging, get, delete; 400/404/413/415 in the API.md shape;
#   413 over max_file_bytes (at once from Content-Length, and mid-stream for
#   chunked and multipart bodies) with no partial file left behind;
#   a client hanging up mid-upload leaves no temp file; traversal attempts
#   in ids and filenames; a restart keeps the files;
#   uploads running while classifications are served.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

# Debian's python3 when there is one: a pyenv shim first on PATH costs ~2 s
# per call, and json_get is called for most checks.
if [ -x /usr/bin/python3 ]; then python3() { /usr/bin/python3 "$@"; }; fi
need "curl" command -v curl
need "sha256sum" command -v sha256sum
need_models fashion-cnn
need_done

LIMIT=1048576   # max_file_bytes for this test (1 MiB)
FILES=$DATA_DIR/files
W=$TEST_TMP/w
mkdir -p "$W"
head -c 300000 /dev/urandom >"$W/a.bin"
head -c $((LIMIT)) /dev/urandom >"$W/exact.bin"
head -c $((LIMIT + 1)) /dev/urandom >"$W/over1.bin"
head -c $((3 * LIMIT)) /dev/urandom >"$W/big.bin"
: >"$W/empty.bin"

start_daemon --max-file-bytes "$LIMIT" --max-body-bytes 65536 || { finish; exit; }

# the error body's shape: error.{message,type,code} with the given code
err_is() {
  python3 - "$BODY" "$1" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert e["code"] == sys.argv[2], e
assert e["type"] == "invalid_request_error" and e["message"], e
PY
}
# files in the data directory other than committed ones (temp files of uploads)
temp_files() { find "$FILES" -name '.tmp-*' | wc -l; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# ---- uploads --------------------------------------------------------------------
expect_status "multipart upload (curl -F)" 200 -F "file=@$W/a.bin" -F purpose=train "$BASE/v1/files"
ID_A=$(json_get "$BODY" .id)
check "multipart: id shape" grep -qE '^file-[0-9a-f]{24}$' <<<"$ID_A"
check "multipart: object file" test "$(json_get "$BODY" .object)" = file
check "multipart: bytes" test "$(json_get "$BODY" .bytes)" = 300000
check "multipart: filename from the form" test "$(json_get "$BODY" .filename)" = a.bin
check "multipart: purpose" test "$(json_get "$BODY" .purpose)" = train
check "multipart: sha256 = sha256sum" test "$(json_get "$BODY" .sha256)" = "$(sha_of "$W/a.bin")"
check "multipart: created_at is now" python3 -c "import json,time,sys; t=json.load(open('$BODY'))['created_at']; sys.exit(abs(t-time.time())>60)"
check "multipart: stored bytes = upload" cmp "$FILES/$ID_A" "$W/a.bin"

# purpose before the file, and a larger body than max_body_bytes (streamed, not buffered)
expect_status "multipart, purpose first, 1 MiB (> max_body_bytes)" 200 -F purpose=train -F "file=@$W/exact.bin;filename=exact.bin" "$BASE/v1/files"
ID_X=$(json_get "$BODY" .id)
check "exact limit: sha256" test "$(json_get "$BODY" .sha256)" = "$(sha_of "$W/exact.bin")"

expect_status "raw upload" 200 -H 'Content-Type: application/octet-stream' --data-binary "@$W/a.bin" "$BASE/v1/files?purpose=train&filename=raw.tar.gz"
ID_R=$(json_get "$BODY" .id)
check "raw: filename from the query" test "$(json_get "$BODY" .filename)" = raw.tar.gz
check "raw: sha256 = sha256sum" test "$(json_get "$BODY" .sha256)" = "$(sha_of "$W/a.bin")"
check "raw: stored bytes = upload" cmp "$FILES/$ID_R" "$W/a.bin"
expect_status "raw upload, chunked" 200 -H 'Content-Type: application/octet-stream' -H 'Transfer-Encoding: chunked' --data-binary "@$W/exact.bin" "$BASE/v1/files?purpose=train"
check "chunked: sha256" test "$(json_get "$BODY" .sha256)" = "$(sha_of "$W/exact.bin")"
ID_C=$(json_get "$BODY" .id)
expect_status "raw upload, empty" 200 -H 'Content-Type: application/octet-stream' --data-binary "@$W/empty.bin" "$BASE/v1/files?purpose=train&filename=empty"
check "empty: sha256 of nothing" test "$(json_get "$BODY" .sha256)" = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

# ---- limits: 413, and nothing left behind ----------------------------------------
expect_status "raw over the limit (Content-Length): 413 at once" 413 -H 'Content-Type: application/octet-stream' --data-binary "@$W/big.bin" "$BASE/v1/files?purpose=train"
check "413 body" err_is payload_too_large
expect_status "chunked over the limit: 413 mid-stream" 413 -H 'Content-Type: application/octet-stream' -H 'Transfer-Encoding: chunked' --data-binary "@$W/big.bin" "$BASE/v1/files?purpose=train"
check "413 mid-stream body names max_file_bytes" grep -q max_file_bytes "$BODY"
expect_status "multipart one byte over the limit: 413 mid-stream" 413 -F "file=@$W/over1.bin" -F purpose=train "$BASE/v1/files"
check "no partial file left" test "$(temp_files)" = 0
expect_status "multipart over the limit (Content-Length): 413" 413 -F "file=@$W/big.bin" -F purpose=train "$BASE/v1/files"
check "still no partial file" test "$(temp_files)" = 0

# a client that goes away mid-upload leaves no temp file
curl -s -o /dev/null --limit-rate 200k -H 'Content-Type: application/octet-stream' --data-binary "@$W/exact.bin" "$BASE/v1/files?purpose=train" &
slow=$!
for _ in $(seq 1 50); do [ "$(temp_files)" = 1 ] && break; sleep 0.1; done
check "a slow upload has its temp file" test "$(temp_files)" = 1
kill "$slow" 2>/dev/null; wait "$slow" 2>/dev/null
for _ in $(seq 1 50); do [ "$(temp_files)" = 0 ] && break; sleep 0.1; done
check "the client hung up: temp file removed" test "$(temp_files)" = 0

# ---- bad requests -----------------------------------------------------------------
expect_status "multipart without file: 400" 400 -F purpose=train "$BASE/v1/files"
check "400 missing file" err_is missing_required_parameter
expect_status "multipart without purpose: 400" 400 -F "file=@$W/a.bin" "$BASE/v1/files"
expect_status "multipart with a wrong purpose: 400" 400 -F "file=@$W/a.bin" -F purpose=nope "$BASE/v1/files"
expect_status "raw without purpose: 400" 400 -H 'Content-Type: application/octet-stream' --data-binary "@$W/a.bin" "$BASE/v1/files"
expect_status "form-urlencoded: 415" 415 --data-binary "@$W/a.bin" "$BASE/v1/files"
check "415 body" err_is unsupported_media_type
expect_status "JSON body: 415" 415 -H 'Content-Type: application/json' -d '{}' "$BASE/v1/files"
expect_status "two file fields: 400" 400 -F "file=@$W/a.bin" -F "file=@$W/a.bin" -F purpose=train "$BASE/v1/files"
check "no partial file after the 400s" test "$(temp_files)" = 0

# traversal in filenames: refused, and never a path on disk
for fn in '../../etc/passwd' '..' 'a/b' '.' 'x%00y' 'a%2Fb'; do
  expect_status "raw filename '$fn': 400" 400 -H 'Content-Type: application/octet-stream' --data-binary "@$W/a.bin" "$BASE/v1/files?purpose=train&filename=$fn"
done
expect_status "multipart filename '../../x': 400" 400 -F "file=@$W/a.bin;filename=../../x" -F purpose=train "$BASE/v1/files"
# (the jobs table's directory exists from the start, empty: no job ran here)
check "nothing written outside files/" test -z "$(find "$DATA_DIR" -mindepth 1 -not -path "$FILES" -not -path "$FILES/*" -not \( -path "$DATA_DIR/jobs" -type d -empty \))"
check "every stored name derives from an id" test -z "$(find "$FILES" -mindepth 1 | grep -vE '/file-[0-9a-f]{24}(\.json)?$')"
# traversal in ids
for id in '..%2F..%2Fetc%2Fpasswd' '..' 'file-..' "$ID_A.json" 'file-0123456789abcdef0123456%00' "${ID_A}x"; do
  expect_status "GET id '$id': 400" 400 --path-as-is "$BASE/v1/files/$id"
done
expect_status "GET id with '/' (path-as-is): 400" 400 --path-as-is "$BASE/v1/files/../files/$ID_A"
expect_status "DELETE traversal id: 400" 400 -X DELETE "$BASE/v1/files/..%2F$ID_A"
check "file A still there" test -f "$FILES/$ID_A"

# ---- list, get, delete -------------------------------------------------------------
expect_status "list" 200 "$BASE/v1/files"
check "list: object list with 5 files" test "$(json_get "$BODY" .object)/$(json_get "$BODY" '.data|length')" = list/5
check "list: has_more false" test "$(json_get "$BODY" .has_more)" = false
# pages of 2 cover every file once, in both orders
for order in asc desc; do
  after="" ; all=""
  for _ in 1 2 3 4; do
    expect_status "list page ($order, after=${after:-start})" 200 "$BASE/v1/files?limit=2&order=$order${after:+&after=$after}" >/dev/null
    all="$all $(python3 -c "import json; print(' '.join(f['id'] for f in json.load(open('$BODY'))['data']))")"
    [ "$(json_get "$BODY" .has_more)" = true ] || break
    after=$(json_get "$BODY" .last_id)
  done
  check "paging $order: 5 distinct ids" test "$(tr ' ' '\n' <<<"$all" | grep -c . )/$(tr ' ' '\n' <<<"$all" | grep . | sort -u | wc -l)" = 5/5
done
expect_status "list: bad limit 400" 400 "$BASE/v1/files?limit=0"
expect_status "list: unknown after 400" 400 "$BASE/v1/files?after=file-000000000000000000000000"
expect_status "get" 200 "$BASE/v1/files/$ID_R"
check "get: same object" test "$(json_get "$BODY" .sha256)" = "$(sha_of "$W/a.bin")"
expect_status "get unknown: 404" 404 "$BASE/v1/files/file-000000000000000000000000"
check "404 body" err_is not_found
expect_status "delete" 200 -X DELETE "$BASE/v1/files/$ID_R"
check "delete: deleted true" test "$(json_get "$BODY" .deleted)" = true
check "delete: bytes and metadata gone" test ! -e "$FILES/$ID_R" -a ! -e "$FILES/$ID_R.json"
expect_status "get deleted: 404" 404 "$BASE/v1/files/$ID_R"
expect_status "delete again: 404" 404 -X DELETE "$BASE/v1/files/$ID_R"

# ---- uploads while classifications are served -----------------------------------
python3 - "$W/img.png" <<'PY'
import struct, sys, zlib
w = h = 28
raw = b"".join(b"\x00" + bytes((x * 9 + y * 5) % 256 for x in range(w)) for y in range(h))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
pids=()
for i in 1 2 3 4; do
  ( curl -s -o "$W/up$i.json" -F "file=@$W/exact.bin" -F purpose=train "$BASE/v1/files" ) &
  pids+=($!)
done
cls_ok=0
for i in $(seq 1 20); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: image/png' --data-binary "@$W/img.png" "$BASE/v1/classifications?model=fashion-cnn")
  [ "$code" = 200 ] && cls_ok=$((cls_ok + 1))
done
for p in "${pids[@]}"; do wait "$p"; done
check "20 classifications during 4 concurrent uploads all 200" test "$cls_ok" = 20
for i in 1 2 3 4; do
  check "concurrent upload $i: sha256" test "$(json_get "$W/up$i.json" .sha256)" = "$(sha_of "$W/exact.bin")"
done

# ---- restart keeps the files -----------------------------------------------------
rc=0; stop_daemon || rc=$?
check "daemon stopped cleanly" test "$rc" = 0
start_daemon --max-file-bytes "$LIMIT" || { finish; exit; }
expect_status "after restart: list" 200 "$BASE/v1/files?limit=100"
check "after restart: 8 files" test "$(json_get "$BODY" '.data|length')" = 8
expect_status "after restart: get A" 200 "$BASE/v1/files/$ID_A"
check "after restart: A's sha256" test "$(json_get "$BODY" .sha256)" = "$(sha_of "$W/a.bin")"
expect_status "after restart: deleted stays deleted" 404 "$BASE/v1/files/$ID_R"
expect_status "after restart: delete X" 200 -X DELETE "$BASE/v1/files/$ID_X"
expect_status "after restart: chunked file C" 200 "$BASE/v1/files/$ID_C"

rc=0; stop_daemon || rc=$?
check "daemon stopped cleanly" test "$rc" = 0
finish
