#!/usr/bin/env bash
# test_quantize.sh — `inferd quantize` (README "int8 weights") end to end:
#  (a) the CLI on a Hugging Face GPT-2 directory (models/fortune-gpt, trained
#      by inferd), a Hugging Face Llama directory and a llama2.c checkpoint
#      (random weights from $TOOLS/mkmodel, exported by scripts/export-llama2c.py):
#      I8 + scale tensors, config "quantization", tokenizer files copied;
#  (b) its errors: missing directory, unsupported model, already quantized,
#      a bad group size, --out == --model;
#  (c) a daemon serving the quantized directories: POST /v1/completions
#      answers for each, greedy text is the same alone and with other
#      requests running (batch invariance through the int8 kernels).
#
# Needs: $INFERD, $TOOLS/mkmodel, models/fortune-gpt, a llama2.c
# tokenizer.bin in $LLAMA_TOKENIZER (default ../shared/data/).
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

LLAMA_TOKENIZER=${LLAMA_TOKENIZER:-$REPO_ROOT/../shared/data/tokenizer.bin}
REPO=$TEST_TMP/repo
need "binary $INFERD" test -x "$INFERD"
need "test tool $TOOLS/mkmodel (make build/tools/mkmodel)" test -x "$TOOLS/mkmodel"
need "llama2.c tokenizer $LLAMA_TOKENIZER" test -f "$LLAMA_TOKENIZER"
need_models fortune-gpt fashion-cnn
need_done

mkdir -p "$REPO" "$TEST_TMP/src"
cp -r "$MODELS_DIR/fortune-gpt" "$TEST_TMP/src/fortune-gpt"
check "mkmodel llama (dim 64, hidden 160, 2 layers)" \
  "$TOOLS/mkmodel" llama "$TEST_TMP/src/llama" "$LLAMA_TOKENIZER" 64 2 4 2 160 256 7
check "export the llama as a llama2.c checkpoint" \
  python3 "$REPO_ROOT/scripts/export-llama2c.py" "$TEST_TMP/src/llama" "$TEST_TMP/src/llama2c"

# ---- (a) the CLI -----------------------------------------------------------------
quantize() { "$INFERD" quantize "$@" >"$TEST_TMP/q.log" 2>&1 || { cat "$TEST_TMP/q.log"; return 1; }; }
check "quantize fortune-gpt (HF GPT-2)" quantize --model "$TEST_TMP/src/fortune-gpt" --out "$REPO/gpt-q8"
check "quantize a HF Llama dir, groups of 64" quantize --model "$TEST_TMP/src/llama" --out "$REPO/llama-q8" --group-size 64
check "quantize a llama2.c checkpoint" quantize --model "$TEST_TMP/src/llama2c" --out "$REPO/l2c-q8"
cp -r "$TEST_TMP/src/fortune-gpt" "$REPO/gpt-fp32"

# the files: I8 matrices with F32 scales, fp32 norms/biases/positions, tokenizers copied
check_dir() {
  python3 - "$@" <<'PY'
import json, struct, sys
d, group, want_i8, tok = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cfg = json.load(open(f"{d}/config.json"))
q = cfg["quantization"]
assert q["group_size"] == group and q["bits"] == 8, q
f = open(f"{d}/model.safetensors", "rb")
h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
t = h[want_i8]
assert t["dtype"] == "I8", t
s = h[want_i8 + "_scale"]
assert s["dtype"] == "F32" and s["shape"] == [t["shape"][0], t["shape"][1] // group], (t, s)
for name, e in h.items():
    if name != "__metadata__" and e["dtype"] == "F32" and not name.endswith("_scale"):
        assert name in q["fp32"], name
        assert len(e["shape"]) == 1 or "wpe" in name or e["shape"][1] % group, name   # only vectors, positions, odd widths
open(f"{d}/{tok}").close()
PY
}
check "gpt-q8: c_attn I8 with scales, vocab.json copied" check_dir "$REPO/gpt-q8" 32 h.0.attn.c_attn.weight vocab.json
check "llama-q8: q_proj I8, groups of 64, down_proj (160 wide) left fp32" \
  check_dir "$REPO/llama-q8" 64 model.layers.0.self_attn.q_proj.weight tokenizer.bin
check "l2c-q8: a HF-style dir, down_proj I8" check_dir "$REPO/l2c-q8" 32 model.layers.1.mlp.down_proj.weight tokenizer.bin

# ---- (b) errors ------------------------------------------------------------------
expect_fail() {   # expect_fail NAME PATTERN ARGS... : exit 1 and PATTERN in the message
  local name=$1 pat=$2 out rc
  shift 2
  out=$("$INFERD" quantize "$@" 2>&1) && rc=0 || rc=$?
  if [ "$rc" -ne 0 ] && printf '%s' "$out" | grep -q -- "$pat"; then pass "$name"; else fail "$name" "exit $rc: $out"; fi
}
expect_fail "missing directory" "No such file" --model "$TEST_TMP/nope" --out "$TEST_TMP/x1"
expect_fail "an image model" "not a model .inferd quantize. handles" --model "$MODELS_DIR/fashion-cnn" --out "$TEST_TMP/x2"
expect_fail "already quantized" "already quantized" --model "$REPO/gpt-q8" --out "$TEST_TMP/x3"
expect_fail "group size 48" "32 or 64" --model "$TEST_TMP/src/llama" --out "$TEST_TMP/x4" --group-size 48
expect_fail "--out == --model" "must differ" --model "$TEST_TMP/src/llama" --out "$TEST_TMP/src/llama"
[ ! -e "$TEST_TMP/x2" ] && pass "a refused model leaves no --out directory" || fail "a refused model leaves no --out directory"

# ---- (c) served ------------------------------------------------------------------
MODELS_DIR=$REPO
if start_daemon --workers 2; then
  complete() {   # complete MODEL OUTFILE [max_tokens]
    curl -s --max-time 60 -o "$2" -w '%{http_code}' "$BASE/v1/completions" -H 'Content-Type: application/json' \
      -d "{\"model\":\"$1\",\"prompt\":\"The \",\"max_tokens\":${3:-24},\"temperature\":0}"
  }
  for m in gpt-q8 llama-q8 l2c-q8 gpt-fp32; do
    code=$(complete "$m" "$TEST_TMP/$m.json")
    n=$(json_get "$TEST_TMP/$m.json" .usage.completion_tokens 2>/dev/null || echo "?")
    if [ "$code" = 200 ] && [ "$n" = 24 ]; then pass "/v1/completions serves $m (24 tokens)"
    else fail "/v1/completions serves $m" "HTTP $code, completion_tokens $n: $(head -c 300 "$TEST_TMP/$m.json")"; fi
  done
  # the int8 model's greedy text alone == while 5 other requests share its steps
  bg=()
  for i in 1 2 3 4 5; do complete gpt-q8 "$TEST_TMP/bg$i.json" 60 >/dev/null & bg+=($!); done
  complete gpt-q8 "$TEST_TMP/gpt-q8.b.json" >/dev/null
  wait "${bg[@]}"   # not a bare wait: the daemon is a child too
  a=$(json_get "$TEST_TMP/gpt-q8.json" '.choices[0].text')
  b=$(json_get "$TEST_TMP/gpt-q8.b.json" '.choices[0].text')
  [ -n "$a" ] && [ "$a" = "$b" ] && pass "int8 greedy text is the same alone and batched" ||
    fail "int8 greedy text is the same alone and batched" "'$a' vs '$b'"
  stop_daemon
fi
finish
