#!/usr/bin/env bash
# run_all.sh — run every tests/integration/test_*.sh in order and add up their
# "N passed, N failed" lines. `make integration` calls it with INFERD (the binary
# under test) and TOOLS (directory of the test tools) in the environment.
#
# A script that exits non-zero, or ends without its count line, counts as failed
# even if its own count says otherwise. Each script gets TEST_TIMEOUT seconds
# (default 1200). Exits non-zero if any script failed. Runs only the scripts
# named on the command line when some are given.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export INFERD=${INFERD:-./inferd} TOOLS=${TOOLS:-build/tools}

if [ "$#" -gt 0 ]; then
  scripts=("$@")
else
  scripts=()
  for t in "$here"/test_*.sh; do [ -e "$t" ] && scripts+=("$t"); done
fi
if [ "${#scripts[@]}" -eq 0 ]; then
  echo "run_all.sh: no tests/integration/test_*.sh found" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

total_pass=0
total_fail=0
broken=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for t in "${scripts[@]}"; do
  name=$(basename "$t")
  echo
  echo "=== $name"
  start=$SECONDS
  timeout --kill-after=10 "${TEST_TIMEOUT:-1200}" bash "$t" 2>&1 </dev/null | tee "$out"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 124 ] && echo "run_all.sh: $name timed out after ${TEST_TIMEOUT:-1200} s"
  counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
  p=0 f=0
  if [ -n "$counts" ]; then
    p=${counts%% passed*}
    f=${counts#*passed, }
    f=${f%% failed*}
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1 # died, or exited non-zero without counting a failure
  fi
  if [ -z "$counts" ] && [ "$rc" -eq 0 ]; then
    echo "run_all.sh: $name printed no 'N passed, N failed' line"
    f=1
  fi
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
  [ "$f" -eq 0 ] || broken+=("$name")
  echo "=== $name: $p passed, $f failed, exit $rc, $((SECONDS - start)) s"
done

echo
if [ "${#broken[@]}" -gt 0 ]; then
  echo "integration: failing scripts: ${broken[*]}"
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
