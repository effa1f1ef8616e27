#!/usr/bin/env bash
# fuzz.sh — runs each libFuzzer harness for a bounded time, one at a time,
# and prints a table of execs/s and coverage. Called by `make fuzz`.
#
#   scripts/fuzz.sh BUILD_DIR NAME...      (FUZZ_SECONDS each, default 60)
#
# Each harness BUILD_DIR/fuzz_NAME starts from the committed seeds in
# fuzz/corpus/NAME (read-only: new inputs go to BUILD_DIR/corpus/NAME) with
# fuzz/dict/json.dict for the JSON-shaped inputs. A crash, leak, sanitizer
# report or timeout leaves its input under BUILD_DIR/crashes/NAME/ and makes
# the script exit 1 after the table; copy it to fuzz/regressions/NAME/ once
# fixed, and `make test` replays it from then on.
set -uo pipefail
build=$1; shift
secs=${FUZZ_SECONDS:-60}
json_inputs=" completions classify models config tok_hf tok_chars jobs "
export OPENBLAS_NUM_THREADS=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=()
rows=()
for name in "$@"; do
  bin=$build/fuzz_$name
  corpus=$build/corpus/$name crashes=$build/crashes/$name log=$build/logs/$name.log
  mkdir -p "$corpus" "$crashes" "$(dirname "$log")"
  args=(-max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2560
        -artifact_prefix="$crashes/")
  case "$json_inputs" in *" $name "*) args+=(-dict=fuzz/dict/json.dict) ;; esac
  echo "== fuzz_$name (${secs}s)"
  nice -n 10 "$bin" "${args[@]}" "$corpus" "fuzz/corpus/$name" >"$log" 2>&1
  rc=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  field() { sed -n "s/.*$1: *\([^ ]*\).*/\1/p" <<<"$last"; }
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  result=ok
  if [ $rc -ne 0 ]; then
    result="FAILED (rc $rc): $(tail -n 1 "$log") (log $log)"
    art=$(ls -t "$crashes" 2>/dev/null | head -n 1)
    [ -n "$art" ] && result="FAILED: $crashes/$art (log $log)"
    failed+=("$name")
  fi
  rows+=("$(printf '| %-12s | %10s | %8s | %6s | %7s | %-9s | %s |' "$name" "${execs:-?}" "${eps:-?}" \
            "$(field cov)" "$(field ft)" "$(field corp)" "$result")")
done

echo
printf '| %-12s | %10s | %8s | %6s | %7s | %-9s | %s |\n' harness execs "execs/s" cov ft corpus result
echo "|--------------|------------|----------|--------|---------|-----------|--------|"
printf '%s\n' "${rows[@]}"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: ${#failed[@]} harness(es) failed: ${failed[*]} (inputs under $build/crashes/)"
  exit 1
fi
