#!/usr/bin/env bash
# test_bert.sh — Hugging Face BERT / DistilBERT sequence classifiers served as
# they are (tests/ref/bert_tiny and distilbert_tiny: config.json with id2label,
# model.safetensors, vocab.txt; written by tests/ref/make_bert_ref.py) through
# POST /v1/classifications: the probabilities equal the PyTorch reference's
# (expected.json), a batch of texts of different lengths answered in order,
# top_k, concurrent requests, and the 4xx answers (text over the model's
# length limit naming it, empty string, an image to a text model); a BERT
# directory without id2label does not load and says why.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

MODELS_DIR=$TEST_TMP/models
mkdir -p "$MODELS_DIR"
for m in bert_tiny distilbert_tiny; do
  need "tests/ref/$m" test -f "$REPO_ROOT/tests/ref/$m/model.safetensors"
  cp -r "$REPO_ROOT/tests/ref/$m" "$MODELS_DIR/$m"
done
need_done
# the same BERT without its label names: not a sequence classifier
mkdir -p "$MODELS_DIR/bert_nolabels"
cp "$REPO_ROOT/tests/ref/bert_tiny/"{model.safetensors,vocab.txt} "$MODELS_DIR/bert_nolabels/"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c.pop("id2label"); c.pop("label2id"); json.dump(c, open(sys.argv[2],"w"))' \
  "$REPO_ROOT/tests/ref/bert_tiny/config.json" "$MODELS_DIR/bert_nolabels/config.json"

start_daemon || { finish; exit; }
CLS=$BASE/v1/classifications
J=(-H 'Content-Type: application/json')

for m in bert_tiny distilbert_tiny; do
  n_labels=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["labels"]))' "$REPO_ROOT/tests/ref/$m/expected.json")
  texts=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["texts"][:-1]))' "$REPO_ROOT/tests/ref/$m/expected.json")
  # the reference list ends with "" (an empty string is a 400 here): send the others, then check
  # them against the reference without its last entry
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); [e[k].pop() for k in ("texts","ids","logits","probs")]; json.dump(e, open(sys.argv[2],"w"))' \
    "$REPO_ROOT/tests/ref/$m/expected.json" "$TEST_TMP/$m.expected.json"
  if expect_status "$m: a batch of texts of different lengths 200" 200 "${J[@]}" \
       -d "{\"model\":\"$m\",\"input\":$texts,\"top_k\":$n_labels}" "$CLS"; then
    # every answer's scores (all labels) within 2e-6 of the reference (answers round to 6 decimals)
    check "$m: probabilities equal the PyTorch reference, in order" \
      python3 - "$BODY" "$TEST_TMP/$m.expected.json" <<'PY'
import json, sys
got, exp = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
data = got["data"]
assert len(data) == len(exp["texts"]), (len(data), len(exp["texts"]))
worst = 0.0
for i, (d, p) in enumerate(zip(data, exp["probs"])):
    assert d["index"] == i, d
    scores = {l["label"]: l["score"] for l in d["labels"]}
    assert sorted(scores) == sorted(exp["labels"]), scores
    for name, want in zip(exp["labels"], p):
        worst = max(worst, abs(scores[name] - want))
    ranked = [l["score"] for l in d["labels"]]
    assert ranked == sorted(ranked, reverse=True), ranked
print("max |score - reference| = %.2g" % worst)
assert worst <= 2e-6, worst
PY
  fi
  expect_status "$m: top_k 1" 200 "${J[@]}" -d "{\"model\":\"$m\",\"input\":\"I loved it\",\"top_k\":1}" "$CLS" &&
    check "$m: top_k 1 gives one label" test "$(json_get "$BODY" '.data[0].labels|length')" = 1
  long=$(python3 -c 'print("ok " * 63)')   # 63 words + [CLS] + [SEP] = 65 ids > 64 positions
  expect_status "$m: text over max_position_embeddings 400" 400 "${J[@]}" -d "{\"model\":\"$m\",\"input\":\"$long\"}" "$CLS" &&
    check "$m: the error names the limit" grep -q '64 tokens' "$BODY"
  fits=$(python3 -c 'print("ok " * 62)')
  expect_status "$m: text at the limit 200" 200 "${J[@]}" -d "{\"model\":\"$m\",\"input\":\"$fits\"}" "$CLS"
  expect_status "$m: empty string 400" 400 "${J[@]}" -d "{\"model\":\"$m\",\"input\":\"\"}" "$CLS"
  expect_status "$m: an image to a text model 4xx" 400 "${J[@]}" -d "{\"model\":\"$m\",\"image\":\"aGVsbG8=\"}" "$CLS"
done

# concurrent requests (batched by the scheduler) each get their own answer
want=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(max(e["probs"][2]))' "$REPO_ROOT/tests/ref/bert_tiny/expected.json")
pids=()
for i in $(seq 16); do
  curl -s "${J[@]}" -d '{"model":"bert_tiny","input":"I loved it","top_k":1}' "$CLS" >"$TEST_TMP/c.$i" &
  pids+=($!)
done
wait "${pids[@]}"
ok=1
for i in $(seq 16); do
  got=$(json_get "$TEST_TMP/c.$i" '.data[0].labels[0].score' 2>/dev/null)
  python3 -c 'import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 2e-6)' "${got:-9}" "$want" || ok=0
done
check "16 concurrent requests: each answer equals the reference" test "$ok" = 1

# a BERT directory without id2label is listed as failed, with the reason
expect_status "models list 200" 200 "$BASE/v1/models"
check "bert_nolabels did not load" python3 -c '
import json, sys
d = {m["id"]: m for m in json.load(open(sys.argv[1]))["data"]}
assert d.get("bert_tiny", {}).get("status") == "ready", d.get("bert_tiny")
m = d.get("bert_nolabels")
assert m is None or m.get("status") != "ready", m' "$BODY"
check "the log says why (id2label)" grep -q 'id2label' "$DAEMON_LOG"

stop_daemon
finish
