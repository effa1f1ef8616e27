#!/usr/bin/env bash
# test_completions.sh — POST /v1/completions (API.md "Text generation") against a
# real daemon serving random-weight models written by $TOOLS/mkmodel into a temp
# repository: tiny-gpt2 (HF GPT-2 dir, real GPT-2 BPE, context 256), tiny-llama
# (HF Llama dir + llama2.c tokenizer.bin, context 256), long-llama (the same
# layout, context 4096, a little bigger so 2000 tokens take seconds) and a copy
# of fashion-cnn (an image model, for the wrong-task error).
#
#  (a) non-streaming: response shape and usage, max_tokens, greedy determinism,
#      seeds (also with 6 other requests running), echo, n, logprobs, stop,
#      prompt as token ids, text == decode(tokens) (decoded here in Python from
#      vocab.json / tokenizer.bin);
#  (b) streaming: SSE framing, deltas == the non-streaming text, finish_reason,
#      include_usage, stop and n > 1 in a stream, multi-byte UTF-8 never split
#      (llama byte-fallback tokens, CJK/emoji prompt, several seeds);
#  (c) errors: 400 + API.md shape + param for bad parameters, 404, wrong task;
#  (d) cancellation: a killed streaming client stops its generation (/metrics);
#  (e) continuous batching: 8 concurrent streams all correct, batches > 1.
#
# Needs: $INFERD, $TOOLS/mkmodel, the GPT-2 vocabulary in $GPT2_VOCAB (default
# tests/ref/gpt2-vocab; scripts/fetch-test-vocab.sh is run when it is missing)
# and a llama2.c tokenizer.bin in $LLAMA_TOKENIZER (default ../shared/data/).
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

MKMODEL=$TOOLS/mkmodel
GPT2_VOCAB=${GPT2_VOCAB:-$REPO_ROOT/tests/ref/gpt2-vocab}
LLAMA_TOKENIZER=${LLAMA_TOKENIZER:-$REPO_ROOT/../shared/data/tokenizer.bin}
REPO=$TEST_TMP/repo
PYH=$TEST_TMP/helpers.py
OUT=$TEST_TMP/out
HDRS=$TEST_TMP/headers
G=tiny-gpt2
L=tiny-llama
LL=long-llama

# ---- prerequisites -------------------------------------------------------------

if [ ! -f "$GPT2_VOCAB/vocab.json" ] && [ "$GPT2_VOCAB" = "$REPO_ROOT/tests/ref/gpt2-vocab" ]; then
  "$REPO_ROOT/scripts/fetch-test-vocab.sh" >/dev/null 2>&1 || true
fi
missing=""
[ -x "$INFERD" ] || missing="$missing binary $INFERD;"
[ -x "$MKMODEL" ] || missing="$missing test tool $MKMODEL (make build/tools/mkmodel);"
[ -f "$GPT2_VOCAB/vocab.json" ] && [ -f "$GPT2_VOCAB/merges.txt" ] ||
  missing="$missing GPT-2 vocab in $GPT2_VOCAB (scripts/fetch-test-vocab.sh);"
[ -f "$LLAMA_TOKENIZER" ] || missing="$missing llama2.c tokenizer $LLAMA_TOKENIZER;"
[ -f "$MODELS_DIR/fashion-cnn/config.json" ] || missing="$missing model $MODELS_DIR/fashion-cnn;"
if [ -n "$missing" ]; then
  fail "prerequisites" "missing:$missing"
  finish
  exit
fi

mkdir -p "$REPO" "$OUT"
mk() { "$MKMODEL" "$@" >"$TEST_TMP/mkmodel.log" 2>&1 || { cat "$TEST_TMP/mkmodel.log"; return 1; }; }
check "mkmodel gpt2 (dim 64, 2 layers, context 256)" mk gpt2 "$REPO/$G" "$GPT2_VOCAB"
check "mkmodel llama (dim 64, 2 layers, context 256)" mk llama "$REPO/$L" "$LLAMA_TOKENIZER"
check "mkmodel llama (dim 128, 4 layers, context 4096)" mk llama "$REPO/$LL" "$LLAMA_TOKENIZER" 128 4 4 2 344 4096 7
cp -r "$MODELS_DIR/fashion-cnn" "$REPO/fashion-cnn"

# ---- helpers -------------------------------------------------------------------

cat >"$PYH" <<'PY'
import json, re, struct, sys, time

TYPES = {"invalid_request_error", "authentication_error", "rate_limit_error",
         "timeout_error", "server_error"}

def need(cond, msg):
    if not cond:
        sys.exit(msg)

def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        sys.exit(f"not JSON ({e}): {raw[:300]!r}")

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)

def err(path, status_type, code, param):
    """{"error":{"message":str,"type":str,"param":str|null,"code":str}}; '-' = any"""
    v = load(path)
    need(isinstance(v, dict) and isinstance(v.get("error"), dict), f"no error object: {v}")
    e = v["error"]
    need(isinstance(e.get("message"), str) and e["message"].strip(), f"error.message missing/empty: {e}")
    need(e.get("type") in TYPES, f"error.type not one of API.md's: {e}")
    need(isinstance(e.get("code"), str) and e["code"], f"error.code missing/empty: {e}")
    need("param" in e and (e["param"] is None or isinstance(e["param"], str)), f"error.param missing: {e}")
    need(status_type == "-" or e["type"] == status_type, f"error.type {e['type']!r}, expected {status_type!r}")
    need(code == "-" or e["code"] == code, f"error.code {e['code']!r}, expected {code!r}")
    need(param == "-" or e["param"] in param.split("|"), f"error.param {e['param']!r}, expected {param!r}")

def shape(path, model, n, prompt_tokens="-"):
    """a complete text_completion object with n choices and consistent usage"""
    v = load(path)
    need(isinstance(v.get("id"), str) and v["id"].startswith("cmpl-") and len(v["id"]) > 5, f"id {v.get('id')!r}")
    need(v.get("object") == "text_completion", f"object {v.get('object')!r}")
    need(is_int(v.get("created")) and abs(v["created"] - time.time()) < 3600, f"created {v.get('created')!r} is not a recent unix time")
    need(v.get("model") == model, f"model {v.get('model')!r}, expected {model!r}")
    ch = v.get("choices")
    need(isinstance(ch, list) and len(ch) == int(n), f"{len(ch) if isinstance(ch, list) else ch!r} choices, expected {n}")
    total = 0
    for i, c in enumerate(ch):
        need(c.get("index") == i, f"choices[{i}].index {c.get('index')!r}")
        need(isinstance(c.get("text"), str), f"choices[{i}].text {c.get('text')!r}")
        need(c.get("finish_reason") in ("length", "stop"), f"choices[{i}].finish_reason {c.get('finish_reason')!r}")
        need("logprobs" in c, f"choices[{i}] has no logprobs key")
        t = c.get("tokens")
        need(isinstance(t, list) and all(is_int(x) for x in t), f"choices[{i}].tokens {t!r}")
        total += len(t)
    u = v.get("usage")
    need(isinstance(u, dict) and all(is_int(u.get(k)) for k in ("prompt_tokens", "completion_tokens", "total_tokens")), f"usage {u!r}")
    need(u["prompt_tokens"] >= 1, f"usage.prompt_tokens {u['prompt_tokens']}")
    need(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], f"usage does not add up: {u}")
    need(u["completion_tokens"] == total, f"usage.completion_tokens {u['completion_tokens']} but the choices hold {total} tokens")
    need(prompt_tokens == "-" or u["prompt_tokens"] == int(prompt_tokens), f"usage.prompt_tokens {u['prompt_tokens']}, expected {prompt_tokens}")

def finish_is(path, reason, ntok="-"):
    """every choice finished with `reason` (and holds ntok tokens)"""
    for c in load(path)["choices"]:
        need(c["finish_reason"] == reason, f"choice {c['index']}: finish_reason {c['finish_reason']!r}, expected {reason!r}")
        need(ntok == "-" or len(c["tokens"]) == int(ntok), f"choice {c['index']}: {len(c['tokens'])} tokens, expected {ntok}")

def same(a, b):
    """same texts and tokens in every choice"""
    ca, cb = load(a)["choices"], load(b)["choices"]
    need(len(ca) == len(cb), f"{len(ca)} vs {len(cb)} choices")
    for x, y in zip(ca, cb):
        need(x["tokens"] == y["tokens"], f"choice {x['index']}: tokens differ:\n{x['tokens']}\n{y['tokens']}")
        need(x["text"] == y["text"], f"choice {x['index']}: texts differ: {x['text']!r} vs {y['text']!r}")

def differ(a, b):
    ta, tb = load(a)["choices"][0]["tokens"], load(b)["choices"][0]["tokens"]
    need(ta != tb, f"identical outputs: {ta}")

def choices_distinct(path):
    ts = [tuple(c["tokens"]) for c in load(path)["choices"]]
    need(len(set(ts)) == len(ts), f"some sampled choices are identical: {ts}")

def echo(path_echo, path_plain, prompt):
    e, p = load(path_echo)["choices"][0], load(path_plain)["choices"][0]
    need(e["text"] == prompt + p["text"], f"echo text {e['text']!r}, expected prompt + {p['text']!r}")
    need(e["tokens"] == p["tokens"], "echo changed the generated tokens")

def text_of(path, i=0):
    print(load(path)["choices"][int(i)]["text"])

def logprobs(path, k, greedy):
    """logprobs object: arrays as long as tokens, values <= 0, tokens join to the text"""
    k = int(k)
    for c in load(path)["choices"]:
        lp = c.get("logprobs")
        need(isinstance(lp, dict), f"choice {c['index']}: logprobs {lp!r}")
        n = len(c["tokens"])
        for key in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
            need(isinstance(lp.get(key), list) and len(lp[key]) == n, f"logprobs.{key} has {len(lp[key]) if isinstance(lp.get(key), list) else lp.get(key)!r} entries for {n} tokens")
        need(all(isinstance(x, str) for x in lp["tokens"]), f"logprobs.tokens {lp['tokens']!r}")
        need(all(isinstance(x, (int, float)) and not isinstance(x, bool) and x <= 1e-6 for x in lp["token_logprobs"]), f"token_logprobs not all <= 0: {lp['token_logprobs']}")
        # a token that is part of a character is labelled "bytes:\\xNN..." (OpenAI's convention)
        raw = [label_bytes(t) for t in lp["tokens"]]
        joined = b"".join(raw).decode("utf-8", errors="replace")
        need(collapse(joined) == collapse(c["text"]), f"logprobs.tokens join to {joined!r}, the text is {c['text']!r}")
        # offsets of each token in the text: counted in characters (as OpenAI) or
        # in UTF-8 bytes; either way consistently (only bytes are exact when a
        # token holds part of a character)
        octets = [sum(len(t) for t in raw[:i]) for i in range(n)]
        if all(not t.startswith("bytes:") for t in lp["tokens"]):
            chars = [sum(len(t) for t in lp["tokens"][:i]) for i in range(n)]
            need(lp["text_offset"] in (chars, octets), f"text_offset {lp['text_offset']}, expected {chars} (characters) or {octets} (bytes)")
        else:
            need(lp["text_offset"] == octets, f"text_offset {lp['text_offset']}, expected {octets} (bytes)")
        for i, top in enumerate(lp["top_logprobs"]):
            need(isinstance(top, dict) and len(top) == k, f"top_logprobs[{i}] has {len(top) if isinstance(top, dict) else top!r} entries, expected {k}: {top!r}")
            need(all(isinstance(x, (int, float)) and x <= 1e-6 for x in top.values()), f"top_logprobs[{i}] values not all <= 0: {top}")
            if int(greedy):
                # the greedy pick is the most likely token: listed first-best, same string, same logprob
                t = lp["tokens"][i]
                need(t in top, f"greedy token {i} {t!r} is not a key of its top_logprobs {top!r}")
                need(abs(top[t] - lp["token_logprobs"][i]) < 1e-4, f"top_logprobs[{i}][{t!r}] = {top[t]} but token_logprobs[{i}] = {lp['token_logprobs'][i]}")
                need(top[t] >= max(top.values()) - 1e-6, f"greedy token {t!r} is not the top entry of {top}")

def label_bytes(t):
    if t.startswith("bytes:"):
        hexes = re.findall(r"\\x([0-9a-fA-F]{2})", t[6:])
        need(hexes and "".join("\\x" + h for h in hexes) == t[6:], f"bad bytes: label {t!r}")
        return bytes(int(h, 16) for h in hexes)
    return t.encode("utf-8")

def pick_stop(path):
    """a substring of the text (not at its start) to use as a stop sequence"""
    text = load(path)["choices"][0]["text"]
    need(len(text) >= 8, f"text too short to pick a stop string from: {text!r}")
    start = len(text) // 2
    s = text[start:start + 3]
    need(s.strip() != "", f"picked a blank stop string from {text!r}")
    print(s)

def stop_cut(path_stop, path_full, stop):
    c, full = load(path_stop)["choices"][0], load(path_full)["choices"][0]["text"]
    cut = full[:full.index(stop)]
    need(c["finish_reason"] == "stop", f"finish_reason {c['finish_reason']!r}, expected 'stop'")
    need(c["text"] == cut, f"text {c['text']!r}, expected {cut!r} (the greedy text {full!r} cut before {stop!r})")
    need(stop not in c["text"], f"the stop string {stop!r} is in the text {c['text']!r}")

def tokens_prefix(a, b):
    """choice 0 of a generated a prefix of choice 0 of b"""
    ta, tb = load(a)["choices"][0]["tokens"], load(b)["choices"][0]["tokens"]
    need(ta == tb[:len(ta)], f"tokens {ta} are not a prefix of {tb}")

# ---- decoding, independent of the server ------------------------------------------
def gpt2_byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}

def gpt2_decode(vocab_json, ids):
    with open(vocab_json, encoding="utf-8") as f:
        vocab = {v: k for k, v in json.load(f).items()}
    dec = gpt2_byte_decoder()
    out = b""
    for i in ids:
        s = vocab[i]
        out += s.encode("utf-8") if s == "<|endoftext|>" else bytes(dec[ch] for ch in s)
    return out

def llama_pieces(tokbin):
    with open(tokbin, "rb") as f:
        d = f.read()
    pieces, o = [], 4
    while o < len(d):
        (l,) = struct.unpack_from("<i", d, o + 4)
        pieces.append(d[o + 8:o + 8 + l])
        o += 8 + l
    return pieces

def llama_decode(tokbin, ids, prev):
    """run.c's decode: '<0xNN>' is a byte, BOS/EOS nothing, no leading space after BOS"""
    p = llama_pieces(tokbin)
    out = b""
    for i in ids:
        s = p[i]
        if i in (1, 2):
            s = b""
        elif re.fullmatch(rb"<0x[0-9A-Fa-f]{2}>", s):
            s = bytes([int(s[3:5], 16)])
        elif (prev < 0 or prev == 1) and s.startswith(b" "):
            s = s[1:]
        out += s
        prev = i
    return out

def decode_check(kind, tokfile, path, prev="-1"):
    """choices[].text == decode(choices[].tokens) (an EOS that ended the choice is not text)"""
    for c in load(path)["choices"]:
        ids = list(c["tokens"])
        eos = 50256 if kind == "gpt2" else 2
        if ids and ids[-1] == eos and c["finish_reason"] == "stop":
            ids = ids[:-1]
        raw = gpt2_decode(tokfile, ids) if kind == "gpt2" else llama_decode(tokfile, ids, int(prev))
        want = raw.decode("utf-8", errors="replace")
        need(collapse(c["text"]) == collapse(want), f"choice {c['index']}: text {c['text']!r}, decode(tokens) {want!r}")

def gpt2_ids_are(vocab_json, text, ids_json):
    got = gpt2_decode(vocab_json, json.loads(ids_json)).decode("utf-8")
    need(got == text, f"decode({ids_json}) is {got!r}, not {text!r}")

def collapse(s):
    return re.sub("\ufffd+", "\ufffd", s)

# ---- SSE ----------------------------------------------------------------------------
def sse_parse(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        sys.exit(f"the stream is not valid UTF-8 ({e}): {raw[max(0, e.start - 80):e.start + 20]!r}")
    need(text.endswith("\n\n"), f"the stream does not end with a blank line: {text[-100:]!r}")
    events = []
    for block in text.split("\n\n")[:-1]:
        lines = [l for l in block.split("\n") if l and not l.startswith(":")]
        if not lines:
            continue   # a comment-only event (keep-alive)
        need(len(lines) == 1 and lines[0].startswith("data: "), f"unexpected SSE event {block!r}")
        events.append(lines[0][6:])
    need(events and events[-1] == "[DONE]", f"the stream does not end with data: [DONE] (last: {events[-1:]!r})")
    need(events.count("[DONE]") == 1, "more than one [DONE]")
    chunks = []
    for e in events[:-1]:
        try:
            chunks.append(json.loads(e))
        except ValueError as x:
            sys.exit(f"data line is not JSON ({x}): {e[:200]!r}")
    return chunks

def sse_summary(path, model="-"):
    chunks = sse_parse(path)
    texts, finish, usage, seen_fin = {}, {}, None, set()
    ids = set()
    for i, ch in enumerate(chunks):
        need("error" not in ch, f"error event in the stream: {ch}")
        need(ch.get("object") == "text_completion", f"chunk {i}: object {ch.get('object')!r}")
        need(isinstance(ch.get("id"), str) and ch["id"].startswith("cmpl-"), f"chunk {i}: id {ch.get('id')!r}")
        need(model == "-" or ch.get("model") == model, f"chunk {i}: model {ch.get('model')!r}")
        ids.add(ch["id"])
        if ch.get("choices") == []:
            need(usage is None and i == len(chunks) - 1, "a chunk with empty choices that is not the single last (usage) chunk")
            usage = ch.get("usage")
            need(isinstance(usage, dict), f"empty-choices chunk without usage: {ch}")
            continue
        need(isinstance(ch.get("choices"), list) and len(ch["choices"]) >= 1, f"chunk {i}: choices {ch.get('choices')!r}")
        for c in ch["choices"]:
            idx = c.get("index")
            need(idx not in seen_fin, f"chunk {i}: choice {idx} continues after its finish_reason")
            need(isinstance(c.get("text"), str), f"chunk {i}: text {c.get('text')!r}")
            texts[idx] = texts.get(idx, "") + c["text"]
            if c.get("finish_reason") is not None:
                need(c["finish_reason"] in ("length", "stop"), f"chunk {i}: finish_reason {c['finish_reason']!r}")
                finish[idx] = c["finish_reason"]
                seen_fin.add(idx)
    need(len(ids) == 1, f"chunks carry {len(ids)} different ids")
    return {"texts": texts, "finish": finish, "usage": usage, "chunks": chunks}

def sse_ok(path, model, n="1"):
    s = sse_summary(path, model)
    need(sorted(s["texts"]) == list(range(int(n))), f"choices streamed: {sorted(s['texts'])}, expected {int(n)}")
    need(sorted(s["finish"]) == list(range(int(n))), f"choices with a finish_reason: {sorted(s['finish'])}")

def sse_vs_json(path_sse, path_json):
    """the concatenated deltas and the finish reasons equal the non-streaming answer"""
    s, v = sse_summary(path_sse), load(path_json)
    need(isinstance(v.get("choices"), list), f"no choices in the non-streaming answer: {v}")
    for c in v["choices"]:
        got = s["texts"].get(c["index"])
        need(got is not None and collapse(got) == collapse(c["text"]), f"choice {c['index']}: streamed {got!r}, non-streaming {c['text']!r}")
        need(s["finish"].get(c["index"]) == c["finish_reason"], f"choice {c['index']}: streamed finish_reason {s['finish'].get(c['index'])!r}, non-streaming {c['finish_reason']!r}")

def sse_usage(path_sse, path_json):
    s, v = sse_summary(path_sse), load(path_json)
    need("usage" in v, f"no usage in the non-streaming answer: {v}")
    need(s["usage"] is not None, "no usage chunk")
    need(s["usage"] == v["usage"], f"streamed usage {s['usage']}, non-streaming {v['usage']}")

def sse_no_usage(path_sse):
    s = sse_summary(path_sse)
    need(s["usage"] is None and all("usage" not in c or c["usage"] is None for c in s["chunks"]), "usage sent without include_usage")

def sse_text(path_sse):
    print(sse_summary(path_sse)["texts"].get(0, ""))

def sse_ok_utf8(path, model):
    sse_ok(path, model)
    sse_utf8(path)

def stream_matches(path_sse, path_json, model, ntok):
    """a well-formed one-choice stream == the non-streaming answer of ntok tokens"""
    sse_ok(path_sse, model)
    sse_vs_json(path_sse, path_json)
    finish_is(path_json, "length", ntok)

def sse_utf8(path):
    """every data line is valid UTF-8, and every delta is whole characters"""
    with open(path, "rb") as f:
        raw = f.read()
    for n, line in enumerate(raw.split(b"\n")):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            sys.exit(f"line {n} is not valid UTF-8 ({e}): {line[:200]!r}")
    for ch in sse_parse(path):
        for c in ch.get("choices", []):
            try:
                c["text"].encode("utf-8")
            except UnicodeEncodeError as e:
                sys.exit(f"a delta holds a lone surrogate (a split character): {c['text']!r}")

# ---- metrics ------------------------------------------------------------------------
def metric(path, name, model):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^" + re.escape(name) + r'\{model="' + re.escape(model) + r'"\} (\S+)$', text, re.M)
    print(m.group(1) if m else 0)

def batches_over1(path, model):
    """number of batches of the model with more than one sequence"""
    text = open(path, encoding="utf-8").read()
    def val(pat):
        m = re.search(pat, text, re.M)
        return float(m.group(1)) if m else 0.0
    cnt = val(r'^inferd_batch_size_count\{model="' + re.escape(model) + r'"\} (\S+)$')
    le1 = val(r'^inferd_batch_size_bucket\{model="' + re.escape(model) + r'",le="1(?:\.0)?"\} (\S+)$')
    print(int(cnt - le1))

if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
PY

J=(-H 'Content-Type: application/json')
py() { python3 "$PYH" "$@"; }

# post NAME CODE OUTFILE JSON [curl args] — one completion request; body kept in OUTFILE
post() {
  local name=$1 code=$2 out=$3 data=$4
  shift 4
  local rc=0
  expect_status "$name" "$code" "${J[@]}" --data-binary "$data" "$@" "$CMPL" || rc=1
  cp "$BODY" "$out"
  return "$rc"
}
# stream NAME OUTFILE JSON — one streaming request (curl -N); headers in $HDRS
stream() {
  local name=$1 out=$2 data=$3 rc=0
  expect_status "$name" 200 -N -D "$HDRS" "${J[@]}" --data-binary "$data" "$CMPL" || rc=1
  cp "$BODY" "$out"
  return "$rc"
}
header() { tr -d '\r' <"$HDRS" | sed -n "s/^$1: *//Ip" | tail -n 1; }
# expect_error NAME STATUS CODE PARAM JSON — a 400/404 with the API.md error body
expect_error() {
  local name=$1 status=$2 code=$3 param=$4 data=$5
  expect_status "$name" "$status" "${J[@]}" --data-binary "$data" "$CMPL" &&
    check "$name: error body (code $code, param $param)" py err "$BODY" invalid_request_error "$code" "$param"
}
chunks() { if [ -f "$1" ]; then grep -c '^data: {' "$1"; else echo 0; fi; }
not_done() { ! grep -q '^data: \[DONE\]' "$1"; }
num_lt() { python3 -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' "$1" "$2"; }
num_eq() { python3 -c 'import sys; sys.exit(not float(sys.argv[1]) == float(sys.argv[2]))' "$1" "$2"; }
metric() { curl -s --max-time 10 "$BASE/metrics" >"$TEST_TMP/metrics" && py metric "$TEST_TMP/metrics" "$1" "$2"; }

# shellcheck disable=SC2119 # no flags: every model of $REPO is loaded
MODELS_DIR=$REPO start_daemon || { finish; exit; }
CMPL=$BASE/v1/completions
GVOCAB=$REPO/$G/vocab.json
LTOK=$REPO/$L/tokenizer.bin

# ======================================================================================
# (a) non-streaming
# ======================================================================================
P1="The capital of France is"
REQ_G="{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0}"
if post "gpt2 greedy 200" 200 "$OUT/g1.json" "$REQ_G"; then
  check "gpt2 greedy: response shape, usage adds up" py shape "$OUT/g1.json" "$G" 1
  check "gpt2 greedy: max_tokens 12 honoured (finish_reason length, 12 tokens)" py finish_is "$OUT/g1.json" length 12
  check "gpt2 greedy: logprobs is null when not asked" test "$(json_get "$OUT/g1.json" '.choices[0].logprobs')" = null
  check "gpt2 greedy: text == decode(tokens) with vocab.json" py decode_check gpt2 "$GVOCAB" "$OUT/g1.json"
fi
post "gpt2 greedy again 200" 200 "$OUT/g2.json" "$REQ_G" &&
  check "gpt2 greedy is deterministic across two calls" py same "$OUT/g1.json" "$OUT/g2.json"
check "gpt2: two requests get different ids" test "$(json_get "$OUT/g1.json" .id)" != "$(json_get "$OUT/g2.json" .id)"

post "default max_tokens 200" 200 "$OUT/def.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"temperature\":0}" &&
  check "default max_tokens is 16" py finish_is "$OUT/def.json" length 16
post "max_tokens 1 200" 200 "$OUT/one.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":1}" &&
  check "max_tokens 1: one token" py finish_is "$OUT/one.json" length 1

# prompt as token ids: "Hello world" is [15496, 995] in GPT-2's vocabulary
HW_IDS='[15496,995]'
check "[15496,995] decodes to 'Hello world' (vocab.json)" py gpt2_ids_are "$GVOCAB" "Hello world" "$HW_IDS"
if post "gpt2 prompt as token ids 200" 200 "$OUT/ids.json" "{\"model\":\"$G\",\"prompt\":$HW_IDS,\"max_tokens\":6,\"temperature\":0}"; then
  check "token-id prompt: shape, prompt_tokens == 2 ids" py shape "$OUT/ids.json" "$G" 1 2
  check "token-id prompt: text == decode(tokens)" py decode_check gpt2 "$GVOCAB" "$OUT/ids.json"
fi
# the same prompt as a string must be the same request (GPT-2 adds no BOS, as HF and OpenAI)
post "gpt2 prompt 'Hello world' as a string 200" 200 "$OUT/hw.json" "{\"model\":\"$G\",\"prompt\":\"Hello world\",\"max_tokens\":6,\"temperature\":0}" && {
  check "'Hello world' as a string: usage.prompt_tokens 2, as its token ids" py shape "$OUT/hw.json" "$G" 1 2
  check "'Hello world' as a string generates what its token ids generate" py same "$OUT/hw.json" "$OUT/ids.json"
}
post "llama prompt as token ids [1, ...] 200" 200 "$OUT/lids.json" "{\"model\":\"$L\",\"prompt\":[1,15043,3186,29892,1788],\"max_tokens\":6,\"temperature\":0}" &&
  check "llama token-id prompt: prompt_tokens == 5 ids" py shape "$OUT/lids.json" "$L" 1 5

# seeds
SEEDED="{\"model\":\"$G\",\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":1,\"seed\":4242}"
post "seeded request alone 200" 200 "$OUT/seed_alone.json" "$SEEDED" &&
  check "seeded: text == decode(tokens)" py decode_check gpt2 "$GVOCAB" "$OUT/seed_alone.json"
post "seeded request again 200" 200 "$OUT/seed_again.json" "$SEEDED" &&
  check "same seed + same request -> same output" py same "$OUT/seed_alone.json" "$OUT/seed_again.json"
# the same seeded request while 6 different ones run: it must not change
pids=()
for i in 1 2 3 4 5 6; do
  curl -s --max-time 60 "${J[@]}" -o "$OUT/other$i.json" -w '%{http_code}' \
    --data-binary "{\"model\":\"$G\",\"prompt\":\"request number $i of the crowd\",\"max_tokens\":$((100 + i * 10)),\"temperature\":0}" \
    "$CMPL" >"$OUT/other$i.code" &
  pids+=($!)
done
sleep 0.05
post "seeded request among 6 concurrent ones 200" 200 "$OUT/seed_conc.json" "$SEEDED" &&
  check "same seed -> same output while 6 other requests run" py same "$OUT/seed_alone.json" "$OUT/seed_conc.json"
for p in "${pids[@]}"; do wait "$p"; done
ok=0
for i in 1 2 3 4 5 6; do
  [ "$(cat "$OUT/other$i.code")" = 200 ] && py shape "$OUT/other$i.json" "$G" 1 >/dev/null 2>&1 && ok=$((ok + 1))
done
check "the 6 concurrent requests: all 200 and well-formed ($ok/6)" test "$ok" -eq 6
post "seed 1, temperature 1 200" 200 "$OUT/s1.json" "{\"model\":\"$G\",\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"temperature\":1,\"seed\":1}"
post "seed 2, temperature 1 200" 200 "$OUT/s2.json" "{\"model\":\"$G\",\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"temperature\":1,\"seed\":2}" &&
  check "different seeds -> different outputs (temperature 1)" py differ "$OUT/s1.json" "$OUT/s2.json"

# echo
post "echo 200" 200 "$OUT/echo.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0,\"echo\":true}" &&
  check "echo prepends the prompt to the same completion" py echo "$OUT/echo.json" "$OUT/g1.json" "$P1"

# n (sampled texts of these random-weight models are often not valid UTF-8, which
# the UTF-8 section below covers: seeds 11 here and 4 below give valid text)
if post "n=3 200" 200 "$OUT/n3.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":10,\"temperature\":1,\"seed\":11,\"n\":3}"; then
  check "n=3: 3 choices, index 0..2, usage counts all of them" py shape "$OUT/n3.json" "$G" 3
  check "n=3: each choice has max_tokens tokens" py finish_is "$OUT/n3.json" length 10
  check "n=3 (temperature 1): the choices differ" py choices_distinct "$OUT/n3.json"
  check "n=3: every text == decode(tokens)" py decode_check gpt2 "$GVOCAB" "$OUT/n3.json"
fi

# logprobs
if post "gpt2 logprobs=2 (greedy) 200" 200 "$OUT/lp.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":8,\"temperature\":0,\"logprobs\":2}"; then
  check "gpt2 logprobs=2: tokens/token_logprobs/top_logprobs/text_offset consistent, <= 0" py logprobs "$OUT/lp.json" 2 1
  check "gpt2 logprobs do not change the greedy tokens" py tokens_prefix "$OUT/lp.json" "$OUT/g1.json"
fi
post "gpt2 logprobs=2 (temperature 1, n=2) 200" 200 "$OUT/lp2.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":8,\"temperature\":1,\"seed\":4,\"n\":2,\"logprobs\":2}" &&
  check "gpt2 logprobs=2, sampled, n=2: consistent, <= 0" py logprobs "$OUT/lp2.json" 2 0
# top candidates whose text is not whole UTF-8 on its own (GPT-2 byte-level
# tokens holding part of a character) are still candidates: logprobs=5 means 5
# entries at every step ([15496,995] greedy meets one at its 3rd step with these
# weights)
post "gpt2 logprobs=5 (greedy, token-id prompt) 200" 200 "$OUT/lp5.json" "{\"model\":\"$G\",\"prompt\":$HW_IDS,\"max_tokens\":16,\"temperature\":0,\"logprobs\":5}" &&
  check "gpt2 logprobs=5: 5 top_logprobs entries at every step, consistent, <= 0" py logprobs "$OUT/lp5.json" 5 1
post "llama logprobs=2 (greedy) 200" 200 "$OUT/llp.json" "{\"model\":\"$L\",\"prompt\":\"Hello world\",\"max_tokens\":8,\"temperature\":0,\"logprobs\":2}" &&
  check "llama logprobs=2: the greedy token is its top_logprobs' best entry, same string" py logprobs "$OUT/llp.json" 2 1

# stop: a substring of the greedy text
if stop=$(py pick_stop "$OUT/g1.json") && [ -n "$stop" ]; then
  stop_json=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$stop")
  post "stop $stop_json 200" 200 "$OUT/stop.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0,\"stop\":$stop_json}" &&
    check "stop $stop_json: text cut before it, finish_reason stop" py stop_cut "$OUT/stop.json" "$OUT/g1.json" "$stop"
  post "stop as an array of 2 200" 200 "$OUT/stop2.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0,\"stop\":[\"zzzqqq\",$stop_json]}" &&
    check "stop [\"zzzqqq\", $stop_json]: text cut before it" py stop_cut "$OUT/stop2.json" "$OUT/g1.json" "$stop"
  post "stop that never occurs 200" 200 "$OUT/stop3.json" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0,\"stop\":\"zzzqqq\"}" &&
    check "stop that never occurs: the full greedy text, finish_reason length" py same "$OUT/stop3.json" "$OUT/g1.json"
else
  fail "pick a stop string from the greedy text" "$stop"
fi

# the llama model: plain text in, text == decode(tokens)
post "llama greedy 200" 200 "$OUT/l1.json" "{\"model\":\"$L\",\"prompt\":\"Hello world\",\"max_tokens\":16,\"temperature\":0}" && {
  check "llama greedy: shape; prompt_tokens 3 (BOS + 2)" py shape "$OUT/l1.json" "$L" 1 3
  # the token before the first generated one is the prompt's last (" world" = 3186)
  check "llama greedy: text == decode(tokens) with tokenizer.bin" py decode_check llama "$LTOK" "$OUT/l1.json" 3186
}

# ======================================================================================
# (b) streaming
# ======================================================================================
SREQ="{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0,\"stream\":true}"
if stream "stream 200" "$OUT/s.sse" "$SREQ"; then
  check "stream: Content-Type text/event-stream" sh -c "case '$(header Content-Type)' in text/event-stream*) ;; *) exit 1;; esac"
  check "stream: data lines are JSON chunks, then data: [DONE]; one choice with a finish_reason" py sse_ok "$OUT/s.sse" "$G" 1
  check "stream: more than one text chunk" test "$(grep -c '^data: {' "$OUT/s.sse")" -gt 1
  check "stream: deltas joined == the non-streaming greedy text, same finish_reason" py sse_vs_json "$OUT/s.sse" "$OUT/g1.json"
  check "stream: no usage chunk without include_usage" py sse_no_usage "$OUT/s.sse"
fi
stream "stream with include_usage 200" "$OUT/su.sse" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" && {
  check "include_usage: deltas == the greedy text" py sse_vs_json "$OUT/su.sse" "$OUT/g1.json"
  check "include_usage: last chunk has choices [] and the same usage as non-streaming" py sse_usage "$OUT/su.sse" "$OUT/g1.json"
}
[ -n "${stop_json:-}" ] && stream "stream with stop 200" "$OUT/sstop.sse" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0,\"stream\":true,\"stop\":$stop_json}" &&
  check "stream with stop: deltas == the non-streaming stop text, finish_reason stop" py sse_vs_json "$OUT/sstop.sse" "$OUT/stop.json"
stream "stream n=3 seeded 200" "$OUT/sn3.sse" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":10,\"temperature\":1,\"seed\":11,\"n\":3,\"stream\":true}" && {
  check "stream n=3: 3 choices each with a finish_reason" py sse_ok "$OUT/sn3.sse" "$G" 3
  check "stream n=3: each choice's deltas == the non-streaming choice" py sse_vs_json "$OUT/sn3.sse" "$OUT/n3.json"
}
stream "stream with echo 200" "$OUT/secho.sse" "{\"model\":\"$G\",\"prompt\":\"$P1\",\"max_tokens\":12,\"temperature\":0,\"echo\":true,\"stream\":true}" &&
  check "stream with echo: deltas == the non-streaming echo text (prompt first)" py sse_vs_json "$OUT/secho.sse" "$OUT/echo.json"

# multi-byte UTF-8: llama byte-fallback tokens can produce partial characters
UPROMPT='日本語のテキスト 😀🎉 emoji, 中文 你好世界, 한국어'
split_bad="" ns_bad="" eq_bad=""
for seed in $(seq 13 24); do
  ureq="{\"model\":\"$L\",\"prompt\":\"$UPROMPT\",\"max_tokens\":64,\"temperature\":1.0,\"seed\":$seed"
  code=$(curl -s -N --max-time 60 "${J[@]}" -o "$OUT/u$seed.sse" -w '%{http_code}' --data-binary "$ureq,\"stream\":true}" "$CMPL")
  if [ "$code" != 200 ] || ! py sse_ok_utf8 "$OUT/u$seed.sse" "$L" >"$OUT/u$seed.why" 2>&1; then
    split_bad="$split_bad $seed"
    echo "       | seed $seed: HTTP $code $(head -c 300 "$OUT/u$seed.why")"
    continue
  fi
  code=$(curl -s --max-time 60 "${J[@]}" -o "$OUT/u$seed.json" -w '%{http_code}' --data-binary "$ureq}" "$CMPL")
  if [ "$code" != 200 ]; then
    ns_bad="$ns_bad $seed"
    echo "       | seed $seed non-streaming: HTTP $code $(head -c 200 "$OUT/u$seed.json")"
    continue
  fi
  if ! py sse_vs_json "$OUT/u$seed.sse" "$OUT/u$seed.json" >"$OUT/u$seed.why" 2>&1; then
    eq_bad="$eq_bad $seed"
    echo "       | seed $seed: $(head -c 400 "$OUT/u$seed.why")"
  fi
done
check "UTF-8 stream, llama, CJK/emoji prompt, seeds 13-24: well-formed, every chunk whole UTF-8 characters${split_bad:+ (bad:$split_bad)}" test -z "$split_bad"
check "UTF-8, the same 12 requests non-streaming: 200 with a JSON body${ns_bad:+ (failed seeds:$ns_bad)}" test -z "$ns_bad"
check "UTF-8: streamed text == non-streaming text for every seed${eq_bad:+ (differ:$eq_bad)}" test -z "$eq_bad"
# seed 18 emits lone byte tokens with these weights: their logprobs entries
post "UTF-8: seed 18 with logprobs=1 200" 200 "$OUT/u18lp.json" "{\"model\":\"$L\",\"prompt\":\"$UPROMPT\",\"max_tokens\":64,\"temperature\":1.0,\"seed\":18,\"logprobs\":1}" && {
  check "UTF-8, seed 18, logprobs: tokens (bytes:... for partial characters) join to the text" py logprobs "$OUT/u18lp.json" 1 0
  check "UTF-8, seed 18: text == decode(tokens), invalid bytes as U+FFFD" py decode_check llama "$LTOK" "$OUT/u18lp.json" 0
}

# ======================================================================================
# (c) errors
# ======================================================================================
M="\"model\":\"$G\""
expect_error "missing prompt 400" 400 - prompt "{$M,\"max_tokens\":4}"
expect_error "prompt: 5 400" 400 - prompt "{$M,\"prompt\":5}"
expect_error "prompt: {} 400" 400 - prompt "{$M,\"prompt\":{}}"
expect_error "prompt: [] 400" 400 - prompt "{$M,\"prompt\":[]}"
for mt in 0 4097 '"5"' -1 2.5 true; do
  expect_error "max_tokens: $mt 400" 400 - max_tokens "{$M,\"prompt\":\"hi\",\"max_tokens\":$mt}"
done
for t in 3 -1 '"1"'; do
  expect_error "temperature: $t 400" 400 - temperature "{$M,\"prompt\":\"hi\",\"temperature\":$t}"
done
expect_error "top_p: 0 400" 400 - top_p "{$M,\"prompt\":\"hi\",\"top_p\":0}"
expect_error "top_p: 1.5 400" 400 - top_p "{$M,\"prompt\":\"hi\",\"top_p\":1.5}"
expect_error "n: 0 400" 400 - n "{$M,\"prompt\":\"hi\",\"n\":0}"
expect_error "n: 9 400" 400 - n "{$M,\"prompt\":\"hi\",\"n\":9}"
expect_error "stop: 5 strings 400" 400 - stop "{$M,\"prompt\":\"hi\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}"
expect_error "stop: 5 400" 400 - stop "{$M,\"prompt\":\"hi\",\"stop\":5}"
expect_error "stop: [1] 400" 400 - stop "{$M,\"prompt\":\"hi\",\"stop\":[1]}"
expect_error "logprobs: 6 400" 400 - logprobs "{$M,\"prompt\":\"hi\",\"logprobs\":6}"
expect_error "logprobs: -1 400" 400 - logprobs "{$M,\"prompt\":\"hi\",\"logprobs\":-1}"
expect_error "stream: \"yes\" 400" 400 - stream "{$M,\"prompt\":\"hi\",\"stream\":\"yes\"}"
ids200=$(python3 -c 'print([464] * 200)' | tr -d ' ')
ids56=$(python3 -c 'print([464] * 56)' | tr -d ' ')
expect_error "200 prompt ids + max_tokens 100 > context 256: 400" 400 - 'max_tokens|prompt' "{$M,\"prompt\":$ids200,\"max_tokens\":100}"
expect_error "56 prompt ids + max_tokens 201 = 257 > 256: 400" 400 - 'max_tokens|prompt' "{$M,\"prompt\":$ids56,\"max_tokens\":201}"
post "56 prompt ids + max_tokens 200 = 256 (exactly the context): 200" 200 "$OUT/full.json" "{$M,\"prompt\":$ids56,\"max_tokens\":200,\"temperature\":0}" &&
  check "exactly the context: 200 tokens, prompt_tokens 56" py shape "$OUT/full.json" "$G" 1 56
long_prompt=$(python3 -c 'print(" ".join(["word"] * 400))')
expect_error "string prompt of 400 tokens > context: 400" 400 - 'prompt|max_tokens' "{$M,\"prompt\":\"$long_prompt\",\"max_tokens\":4}"
expect_error "token id 50257 (out of vocab) 400" 400 - prompt "{$M,\"prompt\":[464,50257]}"
expect_error "token id -1 400" 400 - prompt "{$M,\"prompt\":[-1]}"
expect_error "unknown model 404" 404 - - '{"model":"no-such-model","prompt":"hi"}'
expect_error "missing model 400" 400 - model '{"prompt":"hi"}'
expect_error "image model (fashion-cnn) -> 400 wrong task" 400 - model '{"model":"fashion-cnn","prompt":"hi"}'
expect_error "malformed JSON 400" 400 invalid_json - "{$M,\"prompt\":\"hi\","
expect_status "healthz after the error paths" 200 "$BASE/healthz"

# ======================================================================================
# (d) cancellation: a streaming client that goes away stops its generation
# ======================================================================================
# inferd_batch_size_sum grows by one per sequence per step, so it shows the
# generation running; inferd_tokens_generated_total is only added to when a
# request completes, so alone it cannot tell a stopped generation from a running one.
steps0=$(metric inferd_batch_size_sum "$LL")
toks0=$(metric inferd_tokens_generated_total "$LL")
curl -s -N --max-time 60 "${J[@]}" -o "$OUT/cancel.sse" \
  --data-binary "{\"model\":\"$LL\",\"prompt\":\"Once upon a time\",\"max_tokens\":2000,\"temperature\":1,\"seed\":5,\"stream\":true}" "$CMPL" &
cpid=$!
deadline=$((SECONDS + 20))
while [ "$(chunks "$OUT/cancel.sse")" -lt 5 ] && [ "$SECONDS" -lt "$deadline" ] && kill -0 "$cpid" 2>/dev/null; do
  sleep 0.02
done
got=$(chunks "$OUT/cancel.sse")
kill "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null
check "cancel: the stream had started (>= 5 chunks before the kill: $got)" test "$got" -ge 5
check "cancel: the stream had not finished when killed" not_done "$OUT/cancel.sse"
sleep 0.5
steps1=$(metric inferd_batch_size_sum "$LL")
sleep 1
steps2=$(metric inferd_batch_size_sum "$LL")
toks2=$(metric inferd_tokens_generated_total "$LL")
check "cancel: generation stopped (sequence-steps of $LL unchanged 0.5 s and 1.5 s after the kill: $steps1, $steps2)" num_eq "$steps1" "$steps2"
dsteps=$(python3 -c "print(int($steps2 - $steps0))")
check "cancel: it stopped well before 2000 tokens ($dsteps steps)" num_lt "$dsteps" 1000
check "cancel: inferd_tokens_generated_total grew by < 2000 ($toks0 -> $toks2)" num_lt "$(python3 -c "print($toks2 - $toks0)")" 2000
expect_status "cancel: the daemon still answers (healthz)" 200 "$BASE/healthz"
post "cancel: the model still generates" 200 "$OUT/after.json" "{\"model\":\"$LL\",\"prompt\":\"Once upon a time\",\"max_tokens\":4,\"temperature\":0}" &&
  check "cancel: ... a well-formed answer" py shape "$OUT/after.json" "$LL" 1

# ======================================================================================
# (e) continuous batching: 8 concurrent streams
# ======================================================================================
curl -s --max-time 10 "$BASE/metrics" >"$TEST_TMP/m0"
b0=$(py batches_over1 "$TEST_TMP/m0" "$G")
pids=()
for i in 1 2 3 4 5 6 7 8; do
  r="{\"model\":\"$G\",\"prompt\":\"stream number $i\",\"max_tokens\":$((60 + i * 10)),\"temperature\":0"
  curl -s -N --max-time 60 "${J[@]}" -o "$OUT/cb$i.sse" -w '%{http_code}' --data-binary "$r,\"stream\":true}" "$CMPL" >"$OUT/cb$i.code" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
ok=0
for i in 1 2 3 4 5 6 7 8; do
  r="{\"model\":\"$G\",\"prompt\":\"stream number $i\",\"max_tokens\":$((60 + i * 10)),\"temperature\":0"
  curl -s --max-time 60 "${J[@]}" -o "$OUT/cb$i.json" --data-binary "$r}" "$CMPL"
  if [ "$(cat "$OUT/cb$i.code")" = 200 ] &&
     py stream_matches "$OUT/cb$i.sse" "$OUT/cb$i.json" "$G" $((60 + i * 10)) >"$OUT/cb$i.why" 2>&1; then
    ok=$((ok + 1))
  else
    echo "       | stream $i: HTTP $(cat "$OUT/cb$i.code"): $(head -c 300 "$OUT/cb$i.why")"
  fi
done
check "8 concurrent streams: all complete, each == its greedy text alone ($ok/8)" test "$ok" -eq 8
curl -s --max-time 10 "$BASE/metrics" >"$TEST_TMP/m1"
b1=$(py batches_over1 "$TEST_TMP/m1" "$G")
check "8 concurrent streams: inferd_batch_size shows batches > 1 ($((b1 - b0)) such steps)" test "$((b1 - b0))" -gt 0

expect_status "healthz at the end" 200 "$BASE/healthz"
rc=0
stop_daemon || rc=$?
check "daemon exits 0 on SIGTERM" test "$rc" -eq 0
finish
