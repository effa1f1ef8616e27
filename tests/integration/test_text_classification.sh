#!/usr/bin/env bash
# test_text_classification.sh — text classification with models/langid:
#
#  (a) the default model's held-out accuracy from `inferd eval` on the split
#      scripts/data/langid-fortunes.py makes: >= 97% on texts over 20 characters;
#  (b) POST /v1/classifications with "input": one string, an array answered in
#      order, scores probabilities sorted, top_k honoured;
#  (c) every error path answers 4xx in the API.md shape: empty string,
#      non-string item, empty array, too many items, text over the limit, text
#      without letters, an image to a text model, text to an image model,
#      neither field, a raw image body to a text model, top_k out of range,
#      invalid UTF-8;
#  (d) 40 concurrent requests are batched (inferd_batch_size in /metrics).
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

REPO=$TEST_TMP/repo
need "binary $INFERD" test -x "$INFERD"
need_models langid fashion-cnn
need "fortunes of Debian's language packages (scripts/install-deps.sh)" test -d /usr/share/games/fortunes/de
need_done

# ---- (a) held-out accuracy of the default model ----------------------------------
python3 "$REPO_ROOT/scripts/data/langid-fortunes.py" "$TEST_TMP/langid" 2>"$TEST_TMP/data.log"
check "langid data: train.tsv and test.tsv built" test -s "$TEST_TMP/langid/test.tsv"
"$INFERD" eval --model "$MODELS_DIR/langid" --data "$TEST_TMP/langid" >"$TEST_TMP/eval.txt" 2>&1
sed 's/^/       | /' "$TEST_TMP/eval.txt"
acc_long=$(awk '/^accuracy over 20 characters/ {print $5}' "$TEST_TMP/eval.txt")
acc_all=$(awk '/^accuracy [0-9]/ {print $2}' "$TEST_TMP/eval.txt")
ge() { [ -n "$1" ] && python3 -c 'import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))' "$1" "$2"; }
check "langid: held-out accuracy over 20 characters $acc_long >= 0.97" ge "$acc_long" 0.97
check "langid: held-out accuracy (all texts) $acc_all >= 0.97" ge "$acc_all" 0.97
check "langid: eval reports every language" test "$(grep -c '^label ' "$TEST_TMP/eval.txt")" -ge 13

# ---- the daemon: langid (batching settings), a 4-item copy, fashion-cnn ----------
mkdir -p "$REPO"
copy() { # copy SRC ID KEY=VALUE... — a model copy with config.json keys set (integers)
  cp -r "$MODELS_DIR/$1" "$REPO/$2"
  local id=$2
  shift 2
  python3 - "$REPO/$id/config.json" "$@" <<'PY'
import json, sys
path = sys.argv[1]
cfg = json.load(open(path))
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    cfg[k] = int(v)
json.dump(cfg, open(path, "w"), indent=2)
PY
}
copy langid langid max_queue_delay_us=20000 max_batch_size=64 timeout_ms=30000
copy langid langid-small max_batch_size=4 max_text_ids=200
cp -r "$MODELS_DIR/fashion-cnn" "$REPO/fashion-cnn"
MODELS_DIR=$REPO start_daemon --workers 1 || { finish; exit; }
J=(-H 'Content-Type: application/json')
URL=$BASE/v1/classifications

# ---- (b) answers ------------------------------------------------------------------
if expect_status "one text: 200" 200 "${J[@]}" -d '{"model":"langid","input":"Die Bundesregierung hat am Mittwoch ein neues Gesetz beschlossen."}' "$URL"; then
  check "one text: German" test "$(json_get "$BODY" '.data[0].labels[0].label')" = de
  check "one text: model named" test "$(json_get "$BODY" .model)" = langid
  check "one text: 5 labels by default" test "$(json_get "$BODY" '.data[0].labels|length')" = 5
  check "one text: scores are probabilities, sorted, summing to <= 1" python3 - "$BODY" <<'PY'
import json, sys
s = [l["score"] for l in json.load(open(sys.argv[1]))["data"][0]["labels"]]
assert all(0 <= x <= 1 for x in s) and s == sorted(s, reverse=True) and sum(s) <= 1 + 1e-5, s
assert s[0] > 0.9, s
PY
fi
if expect_status "array: 200" 200 "${J[@]}" -d '{"model":"langid","top_k":2,"input":["The central bank raised interest rates on Thursday.","В среду правительство утвердило новый бюджет.","政府昨天宣布了降低电价的新措施。","El gobierno anunció ayer nuevas medidas."]}' "$URL"; then
  check "array: four answers" test "$(json_get "$BODY" '.data|length')" = 4
  check "array: answered in order (en ru zh es), indexes 0..3" python3 - "$BODY" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["data"]
assert [x["index"] for x in d] == [0, 1, 2, 3], d
assert [x["labels"][0]["label"] for x in d] == ["en", "ru", "zh", "es"], d
assert all(len(x["labels"]) == 2 for x in d), d
PY
fi
if expect_status "top_k 13: 200" 200 "${J[@]}" -d '{"model":"langid","input":"Dziękuję bardzo za pomoc","top_k":13}' "$URL"; then
  check "top_k 13: every label, summing to 1" python3 - "$BODY" <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))["data"][0]["labels"]
assert len(l) == 13 and len({x["label"] for x in l}) == 13 and abs(sum(x["score"] for x in l) - 1) < 1e-4, l
assert l[0]["label"] == "pl", l
PY
fi

# ---- (c) errors ---------------------------------------------------------------------
# err NAME STATUS PARAM BODY [curl args...] — a JSON error answer in the API.md shape
err() {
  local name=$1 status=$2 param=$3 body=$4
  shift 4
  if expect_status "$name: $status" "$status" "${J[@]}" "$@" -d "$body" "$URL"; then
    check "$name: error shape" python3 - "$BODY" "$param" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert isinstance(e["message"], str) and e["message"] and isinstance(e["type"], str) and isinstance(e["code"], str), e
assert sys.argv[2] == "-" or e["param"] == sys.argv[2], e
PY
  fi
}
long=$(python3 -c 'print(" ".join(["Wortschatz"] * 40))')
err "empty string" 400 input '{"model":"langid","input":""}'
err "empty string in an array" 400 input '{"model":"langid","input":["Guten Tag",""]}'
err "non-string item" 400 input '{"model":"langid","input":["Guten Tag",42]}'
err "input a number" 400 input '{"model":"langid","input":7}'
err "empty array" 400 input '{"model":"langid","input":[]}'
err "too many items (max_batch_size 4)" 400 input '{"model":"langid-small","input":["a b","c d","e f","g h","i j"]}'
err "text over the limit (max_text_ids 200)" 400 input "{\"model\":\"langid-small\",\"input\":\"$long\"}"
check "text over the limit: the message names max_text_ids" grep -q max_text_ids "$BODY"
err "text without letters" 400 input '{"model":"langid","input":"12345 + 678 = ?"}'
err "image to a text model" 400 input '{"model":"langid","image":"iVBORw0KGgo="}'
err "text to an image model" 400 image '{"model":"fashion-cnn","input":"Guten Tag"}'
err "neither input nor image" 400 input '{"model":"langid"}'
err "top_k 0" 400 top_k '{"model":"langid","input":"Guten Tag","top_k":0}'
err "top_k 14" 400 top_k '{"model":"langid","input":"Guten Tag","top_k":14}'
printf '{"model":"langid","input":"Gr\xfc\xdfe"}' >"$TEST_TMP/bad-utf8.json"
if expect_status "invalid UTF-8 in the body: 400" 400 "${J[@]}" --data-binary "@$TEST_TMP/bad-utf8.json" "$URL"; then
  check "invalid UTF-8 in the body: invalid_json" test "$(json_get "$BODY" .error.code)" = invalid_json
fi
if expect_status "raw image body to a text model: 400" 400 -H 'Content-Type: image/png' --data-binary 'not really a png' "$URL?model=langid"; then
  check "raw image body to a text model: wrong_task" test "$(json_get "$BODY" .error.code)" = wrong_task
fi
check "daemon still serving after the errors" curl -sf --max-time 10 "$BASE/healthz"

# ---- (d) batching -------------------------------------------------------------------
N=40
python3 - "$URL" "$N" "$TEST_TMP/burst.json" <<'PY'
import json, sys, threading, urllib.request
url, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
texts = [("de", "Guten Morgen, wie geht es dir heute?"), ("en", "The weather is nice today, isn't it?"),
         ("ru", "Доброе утро, как у тебя дела?"), ("it", "Buongiorno, come stai oggi?")]
res = [None] * n
barrier = threading.Barrier(n)
def one(i):
    body = json.dumps({"model": "langid", "input": texts[i % 4][1], "top_k": 1}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        barrier.wait(timeout=20)
    except threading.BrokenBarrierError:
        pass
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            res[i] = (r.status, json.loads(r.read())["data"][0]["labels"][0]["label"])
    except Exception as e:
        res[i] = (getattr(e, "code", 0), repr(e))
th = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in th: t.start()
for t in th: t.join()
ok = sum(1 for i, r in enumerate(res) if r == (200, texts[i % 4][0]))
json.dump({"ok": ok, "bad": [r for i, r in enumerate(res) if r != (200, texts[i % 4][0])]}, open(out, "w"))
PY
check "burst: $N concurrent texts all 200 with the right language" test "$(json_get "$TEST_TMP/burst.json" .ok)" = "$N"
[ "$(json_get "$TEST_TMP/burst.json" .ok)" = "$N" ] && true || json_get "$TEST_TMP/burst.json" .bad | head -c 1000
metric() { curl -s --max-time 10 "$BASE/metrics" | grep -E "^$1\{[^}]*$2[^}]*\} " | head -n 1 | awk '{print $NF}'; }
lt() { [ -n "$1" ] && [ -n "$2" ] && python3 -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' "$1" "$2"; }
b_le1=$(metric inferd_batch_size_bucket 'model="langid",le="1"')
b_count=$(metric inferd_batch_size_count 'model="langid"')
b_sum=$(metric inferd_batch_size_sum 'model="langid"')
echo "       | inferd_batch_size{model=langid}: le=1 $b_le1, count $b_count, sum $b_sum"
check "metrics: a text batch larger than 1 (le=\"1\" $b_le1 < count $b_count)" lt "$b_le1" "$b_count"
check "metrics: fewer batches than requests ($b_count < $b_sum)" lt "$b_count" "$b_sum"

stop_daemon
check "daemon exits 0 on SIGTERM" test $? -eq 0
finish
