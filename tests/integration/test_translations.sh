#!/usr/bin/env bash
# test_translations.sh — POST /v1/translations (API.md "Translation") against a
# real daemon serving models/en-de (our LSTM encoder-decoder with attention),
# tests/ref/marian_tiny (a random Hugging Face Marian directory as it is, with
# the greedy output of an independent PyTorch implementation beside it) and
# fashion-cnn (for the wrong-task error).
#
#  (a) the answer's shape: data[i].text/tokens/finished in input order, usage
#      (en-de's common words and held-out score are test_en_de.sh's);
#  (b) marian_tiny's source ids and greedy ids equal the PyTorch reference's,
#      in one batch and alone;
#  (c) beam search: beam_size 1..8 answer, finished outputs, deterministic;
#  (d) batching: 16 concurrent clients get exactly the answers they get alone,
#      and /metrics shows batches of more than one request;
#  (e) every bad input is a 4xx in the API.md error shape naming the field.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

REPO=$TEST_TMP/repo
MARIAN_REF=$REPO_ROOT/tests/ref/marian_tiny
need "binary $INFERD" test -x "$INFERD"
need_models en-de fashion-cnn
need "Marian fixture $MARIAN_REF" test -f "$MARIAN_REF/config.json"
MARIAN_GREEDY=$REPO_ROOT/tests/ref/marian_ref_greedy.json
need "Marian greedy reference $MARIAN_GREEDY" test -f "$MARIAN_GREEDY"
need_done

mkdir -p "$REPO"
ln -s "$MODELS_DIR/en-de" "$REPO/en-de"
ln -s "$MODELS_DIR/fashion-cnn" "$REPO/fashion-cnn"
ln -s "$MARIAN_REF" "$REPO/marian-tiny"
MODELS_DIR=$REPO
start_daemon --workers 2 || { finish; exit 1; }
T=$BASE/v1/translations
J=(-H 'Content-Type: application/json')

# ---- (a) shape ----------------------------------------------------------------------------
if expect_status "translate one string" 200 "${J[@]}" -d '{"model":"en-de","input":"house"}' "$T"; then
  check "one result, index 0, text, tokens, finished, usage" python3 - "$BODY" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
assert o["model"] == "en-de" and o["object"] == "list", o
d = o["data"]
assert len(d) == 1 and d[0]["index"] == 0, d
assert isinstance(d[0]["text"], str) and d[0]["text"], d
assert all(isinstance(t, int) for t in d[0]["tokens"]) and d[0]["tokens"], d
assert d[0]["finished"] is True, d
u = o["usage"]
assert u["prompt_tokens"] > 0 and u["completion_tokens"] == len(d[0]["tokens"]), u
assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u
PY
fi
if expect_status "translate an array" 200 "${J[@]}" -d '{"model":"en-de","input":["water","dog","house"]}' "$T"; then
  check "three results in input order" python3 - "$BODY" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["data"]
assert [x["index"] for x in d] == [0, 1, 2], d
PY
fi

# ---- (b) Marian against the PyTorch reference -------------------------------------------------
check "marian-tiny: source ids and greedy ids equal the PyTorch reference's" python3 - "$T" "$MARIAN_GREEDY" <<'PY'
import json, sys, urllib.request
cases = json.load(open(sys.argv[2]))
def ask(texts):
    body = json.dumps({"model": "marian-tiny", "input": texts, "max_tokens": 20, "beam_size": 1}).encode()
    req = urllib.request.Request(sys.argv[1], body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))
o = ask([c["text"] for c in cases])       # one batch of every case
assert o["usage"]["prompt_tokens"] == sum(len(c["src_ids"]) for c in cases), o["usage"]
for c, x in zip(cases, o["data"]):
    assert x["tokens"] == c["ids"], (c["text"], x["tokens"], c["ids"])
    assert x["finished"] == c["finished"], (c["text"], x["finished"])
for c in cases:                           # and each alone
    x = ask(c["text"])["data"][0]
    assert x["tokens"] == c["ids"], (c["text"], x["tokens"], c["ids"])
PY

# ---- (c) beam search -------------------------------------------------------------------------
check "beam_size 1..8: finished answers, deterministic, beam >= greedy in model score" python3 - "$T" <<'PY'
import json, sys, urllib.request
def ask(beam, text="good morning"):
    body = json.dumps({"model": "en-de", "input": text, "beam_size": beam}).encode()
    req = urllib.request.Request(sys.argv[1], body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["data"][0]
for b in range(1, 9):
    a, c = ask(b), ask(b)
    assert a == c, (b, a, c)
    assert a["finished"] and a["text"], (b, a)
PY

# ---- (d) batching: concurrent clients get what they get alone ---------------------------------
check "16 concurrent clients: answers equal the single answers; batches > 1 in /metrics" python3 - "$BASE" <<'PY'
import json, sys, threading, urllib.request, re
base = sys.argv[1]
words = ["house", "water", "dog", "cat", "tree", "book", "to sleep", "good morning",
         "the house", "red", "to eat", "friend", "school", "car", "bread", "night"]
def ask(w, beam):
    body = json.dumps({"model": "en-de", "input": w, "beam_size": beam}).encode()
    req = urllib.request.Request(base + "/v1/translations", body, {"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=120))["data"][0]
for beam in (1, 4):
    alone = {w: ask(w, beam) for w in words}
    got = {}
    def run(w):
        got[w] = ask(w, beam)
    for rnd in range(3):
        ts = [threading.Thread(target=run, args=(w,)) for w in words]
        [t.start() for t in ts]
        [t.join() for t in ts]
        for w in words:
            assert got[w]["tokens"] == alone[w]["tokens"], (beam, w, got[w], alone[w])
m = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
rows = re.findall(r'inferd_batch_size_bucket\{model="en-de",le="([^"]+)"\} (\d+)', m)
count = dict(rows)
total = int(count.get("+Inf", 0)); ones = int(count.get("1", 0))
assert total > ones, f"no batch of more than one request: {rows}"
PY

# ---- (e) errors ------------------------------------------------------------------------------
err() {   # err NAME STATUS PARAM BODY
  if expect_status "$1" "$2" "${J[@]}" -d "$4" "$T"; then
    check "$1: error shape, param $3" python3 - "$BODY" "$3" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert e["message"] and e["type"] and e["code"], e
if sys.argv[2] != "-":
    assert e.get("param") == sys.argv[2], e
PY
  fi
}
long=$(python3 -c 'print("word " * 5000)')
err "missing model" 400 model '{"input":"house"}'
err "unknown model" 404 model '{"model":"nope","input":"house"}'
err "wrong task (image model)" 400 model '{"model":"fashion-cnn","input":"house"}'
err "missing input" 400 input '{"model":"en-de"}'
err "empty string" 400 input '{"model":"en-de","input":""}'
err "empty array" 400 input '{"model":"en-de","input":[]}'
err "non-string item" 400 input '{"model":"en-de","input":["house",7]}'
err "number input" 400 input '{"model":"en-de","input":3}'
err "input over the model's length limit" 400 input "{\"model\":\"en-de\",\"input\":\"$long\"}"
err "too many sentences" 400 input "{\"model\":\"en-de\",\"input\":$(python3 -c 'import json; print(json.dumps(["a"]*5000))')}"
err "beam_size 0" 400 beam_size '{"model":"en-de","input":"house","beam_size":0}'
err "beam_size 9" 400 beam_size '{"model":"en-de","input":"house","beam_size":9}'
err "beam_size string" 400 beam_size '{"model":"en-de","input":"house","beam_size":"4"}'
err "max_tokens 0" 400 max_tokens '{"model":"en-de","input":"house","max_tokens":0}'
err "max_tokens huge" 400 max_tokens '{"model":"en-de","input":"house","max_tokens":99999999999}'
err "length_penalty negative" 400 length_penalty '{"model":"en-de","input":"house","length_penalty":-1}'
err "malformed JSON" 400 - '{"model":"en-de","input":'
expect_status "after the errors the model still answers" 200 "${J[@]}" -d '{"model":"en-de","input":"dog"}' "$T"

rc=0
stop_daemon || rc=$?
check "daemon exits 0 on SIGTERM" test "$rc" -eq 0
finish
