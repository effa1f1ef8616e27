#!/usr/bin/env bash
# test_prefill.sh — chunked prefill (prefill_chunk) over HTTP, against a daemon
# serving random-weight models written by $TOOLS/mkmodel: one Llama (GQA,
# context 4096, big enough that a long prompt takes seconds one token per step)
# and one GPT-2 (context 1024), each under several ids whose config.json sets
# a different prefill_chunk (1, 7, 0 = whole prompts; the daemon's default
# for the plain id). Same weights, so:
#
#  (a) the same long prompt and seed give the same tokens, text and logprobs
#      under every prefill_chunk (greedy and sampled), streaming or not;
#      usage.prompt_tokens is the prompt's length;
#  (b) ... also while other streams (short prompts, decoding, and another
#      long prompt) share the steps: each answer equals its answer alone;
#  (c) three equal long prompts sent together share the budget fairly: their
#      first tokens arrive close together (one after the other would spread
#      them over 2/3 of the time);
#  (d) a streaming client that goes away mid-prefill: the prefill stops and
#      its KV cache is freed (the model's kv_cache_mb holds only one such
#      request: the next one is admitted and answered).
#
# Needs: $INFERD, $TOOLS/mkmodel, the GPT-2 vocabulary in $GPT2_VOCAB and a
# llama2.c tokenizer.bin in $LLAMA_TOKENIZER (as test_completions.sh).
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

MKMODEL=$TOOLS/mkmodel
GPT2_VOCAB=${GPT2_VOCAB:-$REPO_ROOT/tests/ref/gpt2-vocab}
LLAMA_TOKENIZER=${LLAMA_TOKENIZER:-$REPO_ROOT/../shared/data/tokenizer.bin}
REPO=$TEST_TMP/repo
PYH=$TEST_TMP/prefill.py
OUT=$TEST_TMP/out

if [ ! -f "$GPT2_VOCAB/vocab.json" ] && [ "$GPT2_VOCAB" = "$REPO_ROOT/tests/ref/gpt2-vocab" ]; then
  "$REPO_ROOT/scripts/fetch-test-vocab.sh" >/dev/null 2>&1 || true
fi
need "binary $INFERD" test -x "$INFERD"
need "test tool $MKMODEL (make build/tools/mkmodel)" test -x "$MKMODEL"
need "GPT-2 vocab in $GPT2_VOCAB (scripts/fetch-test-vocab.sh)" test -f "$GPT2_VOCAB/merges.txt"
need "llama2.c tokenizer $LLAMA_TOKENIZER" test -f "$LLAMA_TOKENIZER"
need "python3" python3 -c 'import json'
need_done

mkdir -p "$REPO" "$OUT"
mk() { "$MKMODEL" "$@" >"$TEST_TMP/mkmodel.log" 2>&1 || { cat "$TEST_TMP/mkmodel.log"; return 1; }; }
check "mkmodel llama (dim 128, 4 layers, GQA, context 4096)" mk llama "$REPO/llama" "$LLAMA_TOKENIZER" 128 4 4 2 344 4096 7
check "mkmodel gpt2 (dim 64, 2 layers, context 1024)" mk gpt2 "$REPO/gpt2" "$GPT2_VOCAB" 64 2 4 1024 3
# copies KEY=VALUE... -> MODEL-cN directories: the same weights, another config.json
variant() {
  local src=$1 dst=$2 chunk=$3 kv=${4:-}
  mkdir -p "$REPO/$dst" &&
    for f in "$REPO/$src"/*; do ln -s "$f" "$REPO/$dst/"; done &&
    rm "$REPO/$dst/config.json" &&
    python3 - "$REPO/$src/config.json" "$REPO/$dst/config.json" "$chunk" "$kv" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["prefill_chunk"] = int(sys.argv[3])
if sys.argv[4]:
    c["kv_cache_mb"] = int(sys.argv[4])
    c["timeout_ms"] = 60000
json.dump(c, open(sys.argv[2], "w"), indent=2)
PY
}
for m in llama gpt2; do
  for c in 1 7 0; do check "model $m-c$c (prefill_chunk $c)" variant "$m" "$m-c$c" "$c"; done
done
# (d): room for one 2000-token request (2 KiB of cache per token), not two
check "model llama-kv (prefill_chunk 1, kv_cache_mb 6)" variant llama llama-kv 1 6

cat >"$PYH" <<'PY'
"""Requests for test_prefill.sh: each writes one JSON result file."""
import http.client, json, os, sys, threading, time

PORT = int(os.environ["PORT"])

def ids(n, seed, vocab):
    return [3 + (j * 7919 + seed * 104729) % (vocab - 3) for j in range(n)]

def request(body, out):
    """one completion; out: status, tokens, text, logprobs, usage, t_first, t_done (s from send)"""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=300)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    out.update(status=r.status, t_first=None)
    if not body.get("stream"):
        v = json.loads(r.read())
        out["t_done"] = time.perf_counter() - t0
        if r.status == 200:
            c = v["choices"][0]
            out.update(tokens=c["tokens"], text=c["text"], usage=v["usage"],
                       logprobs=c["logprobs"]["token_logprobs"] if c.get("logprobs") else None)
        else:
            out["error"] = v
        return
    text, usage = "", None
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        v = json.loads(data)
        for c in v.get("choices") or []:
            if c.get("text") and out["t_first"] is None:
                out["t_first"] = time.perf_counter() - t0
            text += c.get("text") or ""
        usage = v.get("usage") or usage
    out.update(text=text, usage=usage, t_done=time.perf_counter() - t0)

def body(model, n_prompt, pseed, vocab, max_tokens, temperature, seed, stream=False, logprobs=None):
    b = {"model": model, "prompt": ids(n_prompt, pseed, vocab), "max_tokens": max_tokens,
         "temperature": temperature, "seed": seed}
    if stream:
        b.update(stream=True, stream_options={"include_usage": True})
    if logprobs is not None:
        b["logprobs"] = logprobs
    return b

def together(path, *specs):
    """specs: MODEL:N_PROMPT:PROMPT_SEED:VOCAB:MAX_TOKENS:TEMPERATURE:SEED:STREAM(0/1); all sent at once"""
    outs = [dict() for _ in specs]
    ths = []
    for s, o in zip(specs, outs):
        m, n, ps, v, mt, t, sd, st = s.split(":")
        b = body(m, int(n), int(ps), int(v), int(mt), float(t), int(sd), st == "1", None if st == "1" else 2)
        ths.append(threading.Thread(target=request, args=(b, o)))
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    json.dump(outs, open(path, "w"))

def same(a_path, ai, b_path, bi):
    """result ai of file a and result bi of file b: 200, same tokens/text/logprobs"""
    a, b = json.load(open(a_path))[int(ai)], json.load(open(b_path))[int(bi)]
    for x in (a, b):
        if x.get("status") != 200:
            sys.exit(f"HTTP {x.get('status')}: {x.get('error')}")
    for k in ("tokens", "text", "logprobs"):
        if k in a and k in b and a[k] != b[k]:
            sys.exit(f"{k} differ: {str(a[k])[:200]} vs {str(b[k])[:200]}")
    if not a.get("text") and not a.get("tokens"):
        sys.exit("empty answer")

def usage(path, i, n_prompt, max_tokens):
    u = json.load(open(path))[int(i)].get("usage") or {}
    want = {"prompt_tokens": int(n_prompt), "completion_tokens": int(max_tokens),
            "total_tokens": int(n_prompt) + int(max_tokens)}
    if u != want:
        sys.exit(f"usage {u}, expected {want}")

def spread(path):
    """(last first-token time - first one) / last, over streamed results"""
    t = [o["t_first"] for o in json.load(open(path))]
    if any(x is None for x in t):
        sys.exit(f"a stream without text: {t}")
    print("%.3f %s" % ((max(t) - min(t)) / max(t), " ".join("%.2f" % x for x in t)))

if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
PY
py() { python3 "$PYH" "$@"; }
num_lt() { python3 -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' "$1" "$2"; }
metric() {
  curl -s --max-time 10 "$BASE/metrics" |
    sed -n "s/^$1{model=\"$2\"} \\([0-9.e+]*\\)\$/\\1/p" | head -1 | python3 -c 'import sys; print(int(float(sys.stdin.read() or 0)))'
}

# shellcheck disable=SC2119 # no flags: every model of $REPO is loaded
MODELS_DIR=$REPO start_daemon --workers 1 || { finish; exit; }
export PORT
LV=32000; GV=50257

# ======================================================================================
# (a) the same answer whatever the chunking
# ======================================================================================
# MODEL:N_PROMPT:PROMPT_SEED:VOCAB:MAX_TOKENS:TEMPERATURE:SEED:STREAM
for m in llama gpt2; do
  V=$LV; [ "$m" = gpt2 ] && V=$GV
  for temp in 0 1; do
    for c in "" -c1 -c7 -c0; do
      py together "$OUT/a-$m$c-$temp.json" "$m$c:700:1:$V:24:$temp:11:0"
    done
    for c in -c1 -c7 -c0; do
      check "$m, 700-token prompt, temperature $temp: prefill_chunk ${c#-c} == default chunk (tokens, text, logprobs)" \
        py same "$OUT/a-$m-$temp.json" 0 "$OUT/a-$m$c-$temp.json" 0
    done
  done
  check "$m: usage.prompt_tokens 700 (chunked)" py usage "$OUT/a-$m-c7-1.json" 0 700 24
  py together "$OUT/a-$m-stream.json" "$m-c7:700:1:$V:24:1:11:1"
  check "$m: streamed with chunks of 7 == not streamed, whole prompt" py same "$OUT/a-$m-stream.json" 0 "$OUT/a-$m-c0-1.json" 0
  check "$m: streamed usage (include_usage)" py usage "$OUT/a-$m-stream.json" 0 700 24
done

# ======================================================================================
# (b) with concurrent traffic in the same steps
# ======================================================================================
for c in -c7 ""; do
  py together "$OUT/b-alone2.json" "llama:900:2:$LV:24:1:12:0"
  py together "$OUT/b-short.json" "llama:5:3:$LV:40:1:13:1" "llama:9:4:$LV:40:0:0:1"
  py together "$OUT/b$c.json" "llama$c:700:1:$LV:24:1:11:0" "llama$c:5:3:$LV:40:1:13:1" "llama$c:9:4:$LV:40:0:0:1" \
    "llama$c:900:2:$LV:24:1:12:0" "llama$c:5:3:$LV:40:1:13:1"
  check "llama${c:-}: the long prompt with 4 neighbours == alone" py same "$OUT/b$c.json" 0 "$OUT/a-llama-c0-1.json" 0
  check "llama${c:-}: a second long prompt beside it == alone" py same "$OUT/b$c.json" 3 "$OUT/b-alone2.json" 0
  check "llama${c:-}: short streams beside them == alone (sampled)" py same "$OUT/b$c.json" 1 "$OUT/b-short.json" 0
  check "llama${c:-}: short streams beside them == alone (greedy)" py same "$OUT/b$c.json" 2 "$OUT/b-short.json" 1
  check "llama${c:-}: a repeated request in the same steps == the first" py same "$OUT/b$c.json" 4 "$OUT/b$c.json" 1
done

# ======================================================================================
# (c) fair sharing between long prompts
# ======================================================================================
py together "$OUT/c.json" "llama-c7:1500:5:$LV:4:1:1:1" "llama-c7:1500:6:$LV:4:1:2:1" "llama-c7:1500:7:$LV:4:1:3:1"
read -r sp times < <(py spread "$OUT/c.json")
check "three 1500-token prompts, chunk 7: first tokens close together (spread $sp of the last; at s: $times)" num_lt "$sp" 0.34

# ======================================================================================
# (d) a client that goes away mid-prefill
# ======================================================================================
steps0=$(metric inferd_batch_size_sum llama-kv)
python3 -c 'import json; print(json.dumps({"model": "llama-kv", "prompt": [3 + (j * 7919) % 31997 for j in range(2000)],
                                           "max_tokens": 100, "stream": True}))' >"$OUT/d-body.json"
# curl, not python: the client must be the process that is killed (python3 may be a wrapper script)
curl -s -N --max-time 120 -H 'Content-Type: application/json' --data-binary @"$OUT/d-body.json" -o "$OUT/d.sse" "$BASE/v1/completions" &
cpid=$!
deadline=$((SECONDS + 20))
while [ "$(metric inferd_batch_size_sum llama-kv)" -lt $((steps0 + 100)) ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
steps_kill=$(metric inferd_batch_size_sum llama-kv)
kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
check "cancel mid-prefill: it was prefilling when killed ($((steps_kill - steps0)) of 2000 chunks)" \
  test $((steps_kill - steps0)) -ge 100 -a $((steps_kill - steps0)) -lt 2000
sleep 0.5
s1=$(metric inferd_batch_size_sum llama-kv); sleep 1; s2=$(metric inferd_batch_size_sum llama-kv)
check "cancel mid-prefill: the prefill stopped (steps $s1 == $s2)" test "$s1" -eq "$s2"
check "cancel mid-prefill: it stopped before the prompt was consumed ($((s2 - steps0)) < 2000 steps)" test $((s2 - steps0)) -lt 2000
# the KV budget holds one such request: this one runs only if the first one's cache was freed
py together "$OUT/d-next.json" "llama-kv:2000:1:$LV:4:0:0:0"
check "cancel mid-prefill: its KV cache was freed (the next 2000-token request is answered)" \
  python3 -c 'import json,sys; o=json.load(open(sys.argv[1]))[0]; sys.exit(o.get("status") != 200 and str(o))' "$OUT/d-next.json"

expect_status "healthz at the end" 200 "$BASE/healthz"
rc=0
stop_daemon || rc=$?
check "daemon exits 0 on SIGTERM" test "$rc" -eq 0
finish
