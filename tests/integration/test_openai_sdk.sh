#!/usr/bin/env bash
# test_openai_sdk.sh — the official OpenAI Node SDK (tests/sdk, openai pinned in
# its package.json/package-lock.json) against a daemon serving a tiny random
# GPT-2 written by $TOOLS/mkmodel: tests/sdk/completions.mjs lists the models,
# runs a greedy completion, the same request streamed, and two bad requests.
#
# Needs: $INFERD, $TOOLS/mkmodel, node >= 18 and npm (`npm ci` runs when
# tests/sdk/node_modules is missing; that needs the npm registry), and the GPT-2
# vocabulary in $GPT2_VOCAB (default tests/ref/gpt2-vocab; scripts/fetch-test-vocab.sh
# is run when it is missing).
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

SDK=$REPO_ROOT/tests/sdk
MKMODEL=$TOOLS/mkmodel
GPT2_VOCAB=${GPT2_VOCAB:-$REPO_ROOT/tests/ref/gpt2-vocab}
REPO=$TEST_TMP/repo
MODEL=tiny-gpt2

# ---- prerequisites -------------------------------------------------------------

if [ ! -f "$GPT2_VOCAB/vocab.json" ] && [ "$GPT2_VOCAB" = "$REPO_ROOT/tests/ref/gpt2-vocab" ]; then
  "$REPO_ROOT/scripts/fetch-test-vocab.sh" >/dev/null 2>&1 || true
fi
missing=""
[ -x "$INFERD" ] || missing="$missing binary $INFERD;"
[ -x "$MKMODEL" ] || missing="$missing test tool $MKMODEL (make build/tools/mkmodel);"
[ -f "$GPT2_VOCAB/vocab.json" ] && [ -f "$GPT2_VOCAB/merges.txt" ] ||
  missing="$missing GPT-2 vocab in $GPT2_VOCAB (scripts/fetch-test-vocab.sh);"
command -v node >/dev/null 2>&1 || missing="$missing node;"
command -v npm >/dev/null 2>&1 || [ -d "$SDK/node_modules/openai" ] || missing="$missing npm;"
if [ -n "$missing" ]; then
  fail "prerequisites" "missing:$missing"
  finish
  exit
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
check "node >= 18 ($(node --version))" test "$node_major" -ge 18

if [ ! -d "$SDK/node_modules" ]; then
  check "npm ci --prefix tests/sdk" npm ci --prefix "$SDK" --no-audit --no-fund --loglevel=error
fi
check "the openai package is installed" test -f "$SDK/node_modules/openai/package.json"
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["openai"])' "$SDK/package.json")
have=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$SDK/node_modules/openai/package.json" 2>/dev/null)
check "installed openai $have is the pinned $want (else: rm -rf tests/sdk/node_modules)" test "$have" = "$want"

mkdir -p "$REPO"
check "mkmodel gpt2 $MODEL" "$MKMODEL" gpt2 "$REPO/$MODEL" "$GPT2_VOCAB"

# ---- the SDK against the daemon ------------------------------------------------

MODELS_DIR=$REPO start_daemon --load "$MODEL" || { finish; exit; }

out=$TEST_TMP/sdk.out
rc=0
timeout 90 node "$SDK/completions.mjs" "$BASE/v1" "$MODEL" >"$out" 2>&1 || rc=$?
sed 's/^/       | /' "$out"
check "completions.mjs exits 0 (exit $rc)" test "$rc" -eq 0
check "completions.mjs printed PASS" grep -q '^PASS' "$out"
for step in 'models.list()' 'completions.create(' 'the same greedy request again' 'stream:' 'max_tokens 0 -> BadRequestError' 'unknown model -> NotFoundError'; do
  check "SDK step: $step" grep -qF "ok   $step" "$out"
done
# the same script with the base URL and model from the environment, without /v1
rc=0
INFERD_BASE_URL=$BASE INFERD_MODEL=$MODEL timeout 90 node "$SDK/completions.mjs" >"$out" 2>&1 || rc=$?
check "completions.mjs with INFERD_BASE_URL/INFERD_MODEL (exit $rc)" grep -q '^PASS' "$out"

expect_status "healthz after the SDK" 200 "$BASE/healthz"
rc=0
stop_daemon || rc=$?
check "daemon exits 0 on SIGTERM" test "$rc" -eq 0
finish
