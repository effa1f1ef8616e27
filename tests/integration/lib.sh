# tests/integration/lib.sh — shared helpers for the integration test scripts.
# Start a test script like this, do checks, and end it with `finish`:
#
#   #!/usr/bin/env bash
#   set -u                      # not -e: a failed check must not end the script
#   # shellcheck source=lib.sh source-path=SCRIPTDIR
#   . "$(dirname "$0")/lib.sh"
#   start_daemon || { finish; exit; }
#   expect_status "healthz" 200 "$BASE/healthz"
#   check "status ok" test "$(json_get "$BODY" .status)" = ok
#   finish
#
# Environment (the Makefile passes INFERD and TOOLS; the rest have defaults):
#   INFERD      the binary under test             (default ./inferd)
#   TOOLS       directory of the test tools       (default build/tools)
#   MODELS_DIR  model repository for start_daemon (default <repo>/models)
#   DATA_DIR    --data-dir for start_daemon       (default $TEST_TMP/data, kept
#               across restarts within one script so jobs/files survive)
#   START_TIMEOUT  seconds to wait for "listening on"  (default 30)
#   STOP_TIMEOUT   seconds to wait after SIGTERM       (default 30)
#
# Helpers:
#   start_daemon [flags...]   start `$INFERD serve --port 0 ...`; exports PORT PID BASE DAEMON_LOG
#   stop_daemon               SIGTERM, wait; returns the daemon's exit code
#   check NAME CMD...         pass if CMD exits 0 (its output is shown on failure)
#   expect_status NAME CODE curl-args...
#                             pass if curl's HTTP status is CODE; the body is left in $BODY
#   json_get FILE EXPR        print a field: EXPR like .data[0].labels[0].label or .data|length
#   pass NAME / fail NAME [why]   record a result by hand
#   need / need_models / need_done   prerequisites: missing ones fail the script
#   finish                    print "N passed, N failed"; non-zero when anything failed
#
# Each script gets its own temp dir ($TEST_TMP), removed on exit; a daemon
# still running on exit is killed.

# shellcheck shell=bash

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The tests cd around: make paths absolute (relative to the current directory
# when they exist there, else to the repository root).
_lib_abspath() {
  case "$1" in
    /*) echo "$1" ;;
    *) if [ -e "$1" ]; then echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
       else echo "$REPO_ROOT/${1#./}"; fi ;;
  esac
}
INFERD=$(_lib_abspath "${INFERD:-$REPO_ROOT/inferd}")
TOOLS=$(_lib_abspath "${TOOLS:-$REPO_ROOT/build/tools}")
MODELS_DIR=${MODELS_DIR:-$REPO_ROOT/models}
export INFERD TOOLS MODELS_DIR REPO_ROOT

# The tests' Python is the standard library only, so Debian's python3 serves:
# a python3 earlier on PATH may be a version manager's shim (pyenv: ~1.5 s a
# call, against 0.15 s), which the hundreds of checks here would pay each time.
if [ -x /usr/bin/python3 ]; then
  python3() { /usr/bin/python3 "$@"; }
  export -f python3
fi

TEST_NAME=$(basename "${0%.sh}")
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/inferd-$TEST_NAME.XXXXXX")
DATA_DIR=${DATA_DIR:-$TEST_TMP/data}
BODY=$TEST_TMP/body
export TEST_TMP DATA_DIR BODY

_passed=0
_failed=0
_daemon_starts=0
PID=""

_lib_cleanup() {
  if [ -n "${PID:-}" ] && kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  # anything else the script left running in the background
  local j
  for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
  rm -rf "$TEST_TMP"
}
trap _lib_cleanup EXIT
trap 'exit 130' INT TERM

# ---- results -------------------------------------------------------------------

pass() {
  _passed=$((_passed + 1))
  echo "ok   - $1"
}

fail() {
  _failed=$((_failed + 1))
  echo "FAIL - $1${2:+: $2}"
}

# check NAME CMD... — run CMD; pass when it exits 0, else show its output.
check() {
  local name=$1 out rc
  shift
  out=$("$@" 2>&1) && rc=0 || rc=$?
  if [ "$rc" -eq 0 ]; then
    pass "$name"
  else
    fail "$name" "exit $rc from: $*"
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/       | /' | head -n 40
  fi
  return 0
}

# expect_status NAME EXPECTED curl-args... — one request; compare the HTTP status.
# The response body stays in $BODY for json_get and friends.
expect_status() {
  local name=$1 want=$2 got
  shift 2
  : >"$BODY"
  got=$(curl -s -S --max-time "${CURL_TIMEOUT:-60}" -o "$BODY" -w '%{http_code}' "$@" 2>"$TEST_TMP/curl.err") || true
  if [ "$got" = "$want" ]; then
    pass "$name"
    return 0
  fi
  fail "$name" "HTTP $got, expected $want (curl $*)"
  sed 's/^/       | curl: /' "$TEST_TMP/curl.err" | head -n 5
  head -c 2000 "$BODY" | sed 's/^/       | /'
  echo
  return 1
}

# json_get FILE EXPR — print the value at EXPR (.a.b[0].c, optionally "|length").
# Strings print raw, everything else as JSON. Exit 1 when the path is absent
# or the file is not JSON.
json_get() {
  python3 - "$1" "$2" <<'PY'
import json, re, sys
path, expr = sys.argv[1], sys.argv[2].strip()
length = False
if expr.endswith("|length"):
    length, expr = True, expr[: -len("|length")].strip()
try:
    with open(path, encoding="utf-8") as f:
        v = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"json_get: {path}: {e}")
pos = 0
tok = re.compile(r'\.([A-Za-z_][\w-]*)|\[(-?\d+)\]|\["([^"]*)"\]|\.$')
while pos < len(expr):
    m = tok.match(expr, pos)
    if not m:
        sys.exit(f"json_get: bad expression at {expr[pos:]!r}")
    pos = m.end()
    key = m.group(1) if m.group(1) is not None else m.group(3)
    try:
        if key is not None:
            v = v[key]
        elif m.group(2) is not None:
            v = v[int(m.group(2))]
    except (KeyError, IndexError, TypeError):
        sys.exit(f"json_get: {expr} not found in {path}")
if length:
    v = len(v)
print(v if isinstance(v, str) else json.dumps(v))
PY
}

# ---- the daemon ----------------------------------------------------------------

# start_daemon [extra flags] — start the daemon on a free port and wait until it
# logs "listening on http://HOST:PORT". Exports PORT, PID, BASE, DAEMON_LOG.
# Returns non-zero (and records a failure) when it does not come up.
start_daemon() {
  _daemon_starts=$((_daemon_starts + 1))
  DAEMON_LOG=$TEST_TMP/daemon.$_daemon_starts.log
  mkdir -p "$DATA_DIR"
  : >"$DAEMON_LOG"
  "$INFERD" serve --port 0 --models "$MODELS_DIR" --data-dir "$DATA_DIR" \
    --log-level info "$@" >"$DAEMON_LOG" 2>&1 &
  PID=$!
  export PID DAEMON_LOG
  local deadline=$((SECONDS + ${START_TIMEOUT:-30})) line=""
  while [ "$SECONDS" -lt "$deadline" ]; do
    line=$(grep -m1 -oE 'listening on http://[^ ]+:[0-9]+' "$DAEMON_LOG" || true)
    [ -n "$line" ] && break
    if ! kill -0 "$PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  if [ -z "$line" ]; then
    local rc=""
    if ! kill -0 "$PID" 2>/dev/null; then
      wait "$PID" 2>/dev/null && rc=0 || rc=$?
    fi
    if [ -n "$rc" ]; then
      fail "start daemon" "it exited with $rc before logging 'listening on'"
    else
      fail "start daemon" "no 'listening on http://HOST:PORT' line within ${START_TIMEOUT:-30} s"
    fi
    sed 's/^/       | /' "$DAEMON_LOG" | tail -n 40
    if [ -z "$rc" ]; then kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    PID=""
    return 1
  fi
  PORT=${line##*:}
  BASE=http://127.0.0.1:$PORT
  export PORT BASE
  return 0
}

# stop_daemon — SIGTERM, wait up to STOP_TIMEOUT s (then SIGKILL);
# returns the daemon's exit code (137 when it had to be killed).
stop_daemon() {
  [ -n "${PID:-}" ] || return 0
  local rc=0 deadline=$((SECONDS + ${STOP_TIMEOUT:-30}))
  kill -TERM "$PID" 2>/dev/null || true
  # bash reaps its children as they exit, so kill -0 fails once it is gone
  while kill -0 "$PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.1
  done
  if kill -0 "$PID" 2>/dev/null; then
    echo "       | daemon still running ${STOP_TIMEOUT:-30} s after SIGTERM: SIGKILL"
    kill -KILL "$PID" 2>/dev/null || true
  fi
  wait "$PID" 2>/dev/null || rc=$?
  PID=""
  return "$rc"
}

# need WHAT CMD... — records WHAT as a missing prerequisite unless CMD succeeds;
# need_models ID... — the same for model directories under $MODELS_DIR;
# need_done — fails "prerequisites" naming everything missing and ends the
# script (a missing prerequisite is a failure, never a silent pass).
_missing=""
need() { local what=$1; shift; "$@" >/dev/null 2>&1 || _missing="$_missing $what;"; }
need_models() { local m; for m in "$@"; do need "model $MODELS_DIR/$m" test -f "$MODELS_DIR/$m/config.json"; done; }
need_done() {
  [ -z "$_missing" ] && return 0
  fail "prerequisites" "missing:$_missing"
  finish
  exit 1
}

# finish — the closing line run_all.sh and CI read; non-zero when anything failed.
finish() {
  echo "$_passed passed, $_failed failed"
  [ "$_failed" -eq 0 ]
}
