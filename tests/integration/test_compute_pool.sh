#!/usr/bin/env bash
# test_compute_pool.sh — the compute pool (compute_threads, engine/core/pool.h)
# changes no output: two random-weight llama models big enough that their
# steps are split (stories15M shape, and a smaller one with grouped kv heads;
# written by $TOOLS/mkmodel), 8 completion requests (seeded sampling and
# greedy, 4 per model). Their texts with --compute-threads 1 --workers 1, one
# request at a time, are the reference; then the same requests
#   (a) one at a time with --compute-threads 2 --workers 1, and
#   (b) all 8 at once with --compute-threads 2 --workers 2 (both models
#       stepping together: one holds the pool, the other runs inline;
#       sequences of a model batched together)
# must give the same texts, byte for byte.
#
# Needs: $INFERD, $TOOLS/mkmodel, a llama2.c tokenizer.bin in $LLAMA_TOKENIZER
# (default ../shared/data/tokenizer.bin).
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

MKMODEL=$TOOLS/mkmodel
LLAMA_TOKENIZER=${LLAMA_TOKENIZER:-$REPO_ROOT/../shared/data/tokenizer.bin}
REPO=$TEST_TMP/repo
OUT=$TEST_TMP/out
need "binary $INFERD" test -x "$INFERD"
need "test tool $MKMODEL (make build/tools/mkmodel)" test -x "$MKMODEL"
need "llama2.c tokenizer $LLAMA_TOKENIZER" test -f "$LLAMA_TOKENIZER"
need_done
mkdir -p "$REPO" "$OUT"
mk() { "$MKMODEL" "$@" >"$TEST_TMP/mkmodel.log" 2>&1 || { cat "$TEST_TMP/mkmodel.log"; return 1; }; }
check "mkmodel llama s15 (dim 288, 6 layers, 6 heads, hidden 768)" mk llama "$REPO/s15" "$LLAMA_TOKENIZER" 288 6 6 6 768 256 5
check "mkmodel llama gqa (dim 256, 4 layers, 4 heads / 2 kv, hidden 688)" mk llama "$REPO/gqa" "$LLAMA_TOKENIZER" 256 4 4 2 688 256 9

PROMPTS=("Once upon a time" "The little dog ran to the" "She opened the door and saw" "In the morning the sun")
# body I — request I (0..7): model s15 for I < 4, gqa after; even I sampled (seed), odd I greedy
body() {
  local i=$1 model=s15 temp=0.9
  [ "$i" -ge 4 ] && model=gqa
  [ $((i % 2)) -eq 1 ] && temp=0
  printf '{"model":"%s","prompt":"%s","max_tokens":%d,"temperature":%s,"seed":%d}' \
    "$model" "${PROMPTS[$((i % 4))]}" $((48 + i * 8)) "$temp" $((100 + i))
}
# one I TAG — request I; the first choice's text into $OUT/TAG.I (and the HTTP code into .code)
one() {
  curl -s --max-time 120 -H 'Content-Type: application/json' --data-binary "$(body "$1")" \
    -o "$OUT/$2.$1.json" -w '%{http_code}' "$BASE/v1/completions" >"$OUT/$2.$1.code"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"], end="")' \
    "$OUT/$2.$1.json" >"$OUT/$2.$1" 2>/dev/null
}
# same TAG — every request of TAG answered 200 with the reference's text
same() {
  local bad=""
  for i in 0 1 2 3 4 5 6 7; do
    [ "$(cat "$OUT/$1.$i.code")" = 200 ] && cmp -s "$OUT/ref.$i" "$OUT/$1.$i" || bad="$bad $i"
  done
  [ -z "$bad" ] && return 0
  for i in $bad; do echo "request $i: HTTP $(cat "$OUT/$1.$i.code"): $(head -c 200 "$OUT/$1.$i")"
                    echo "   reference: $(head -c 200 "$OUT/ref.$i")"; done
  return 1
}

MODELS_DIR=$REPO start_daemon --compute-threads 1 --workers 1 || { finish; exit; }
check "compute_threads 1: the log says 1 compute thread" grep -q "1 compute thread(s)" "$DAEMON_LOG"
for i in 0 1 2 3 4 5 6 7; do one "$i" ref; done
ok=1; for i in 0 1 2 3 4 5 6 7; do [ "$(cat "$OUT/ref.$i.code")" = 200 ] && [ -s "$OUT/ref.$i" ] || ok=0; done
check "reference: 8 requests answered 200 with text" test "$ok" = 1
stop_daemon

MODELS_DIR=$REPO start_daemon --compute-threads 2 --workers 1 || { finish; exit; }
check "compute_threads 2: the log says 2 compute threads" grep -q "2 compute thread(s)" "$DAEMON_LOG"
for i in 0 1 2 3 4 5 6 7; do one "$i" alone; done
check "(a) 2 compute threads, one request at a time: the same texts" same alone
stop_daemon

MODELS_DIR=$REPO start_daemon --compute-threads 2 --workers 2 || { finish; exit; }
pids=()
for i in 0 1 2 3 4 5 6 7; do one "$i" conc & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
check "(b) 2 compute threads, 2 workers, all 8 at once on 2 models: the same texts" same conc
rc=0
stop_daemon || rc=$?
check "daemon exits 0 on SIGTERM (the pool stops cleanly)" test "$rc" = 0
finish
