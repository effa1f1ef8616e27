#!/usr/bin/env bash
# tests/soak/run.sh — `make soak` (not in CI): SOAK_SECONDS (default 600) of
# mixed load at concurrency SOAK_CLIENTS (default 256) against a live daemon
# serving copies of fashion-cnn and fortune-gpt: classifications (raw and
# JSON), completions streamed and not, clients that vanish, and model
# load/unload/reload (plus SIGHUP every minute) in between (soak_client.py).
#
# Prints requests/s by kind, 5xx counts and the RSS after the warm-up
# (SOAK_WARMUP s, default 60, or a fifth of a shorter run) and at the end.
# Exits non-zero on a crash, an unexpected 5xx (503/504 are load answers), a
# malformed answer, RSS drift of 5% or more, or a non-zero exit on SIGTERM.
#
# Environment: INFERD, TOOLS (as for the integration tests), SOAK_SECONDS,
# SOAK_CLIENTS, SOAK_WARMUP, SOAK_WINDOW (RSS median window, default 30 s).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/lib.sh
. "$here/../integration/lib.sh"

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_CLIENTS=${SOAK_CLIENTS:-256}
SOAK_WARMUP=${SOAK_WARMUP:-$(( SOAK_SECONDS / 5 < 60 ? SOAK_SECONDS / 5 : 60 ))}
SOAK_WINDOW=${SOAK_WINDOW:-$(( SOAK_SECONDS / 10 < 30 ? SOAK_SECONDS / 10 : 30 ))}
FASHION_MNIST=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
REPO=$TEST_TMP/repo
JPG=$TEST_TMP/jpg

need "binary $INFERD" test -x "$INFERD"
need python3 command -v python3
need_models fashion-cnn fortune-gpt
need_done
mkdir -p "$REPO" "$JPG" "$TEST_TMP/variants"
cp -r "$MODELS_DIR/fashion-cnn" "$MODELS_DIR/fortune-gpt" "$REPO"/
if [ -x "$TOOLS/mkimg" ] && [ -f "$FASHION_MNIST/t10k-images-idx3-ubyte.gz" ]; then
  "$TOOLS/mkimg" variants "$FASHION_MNIST/t10k-images-idx3-ubyte.gz" 3 "$TEST_TMP/variants" >/dev/null &&
    cp "$TEST_TMP/variants"/*.jpg "$JPG"/
fi

ulimit -n 4096 2>/dev/null || true
# no access log: a line per request for 10 minutes is gigabytes
MODELS_DIR=$REPO start_daemon --access-log false || { finish; exit; }
echo "soak: daemon pid $PID on $BASE, $SOAK_SECONDS s, $SOAK_CLIENTS clients"
out=$TEST_TMP/soak.out
python3 "$here/soak_client.py" --base "$BASE" --pid "$PID" --seconds "$SOAK_SECONDS" --clients "$SOAK_CLIENTS" \
  --warmup "$SOAK_WARMUP" --window "$SOAK_WINDOW" --jpeg-dir "$JPG" 2>&1 | tee "$out" | grep --line-buffered -v '^SUMMARY '
rc=${PIPESTATUS[0]}
summary=$(grep '^SUMMARY ' "$out" | tail -n 1 | cut -c9-)
field() { python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(v[sys.argv[2]])' "$summary" "$1"; }
if [ -z "$summary" ]; then
  fail "soak client finished" "no SUMMARY line (exit $rc)"
else
  check "no crash" test "$(field crashes)" = 0
  check "no unexpected 5xx ($(field unexpected_5xx); 503/504 under load: $(field load_503_504))" test "$(field unexpected_5xx)" = 0
  check "no malformed answers or transport errors" test "$(field malformed)" = 0 -a "$(field transport_errors)" = 0
  check "RSS drift after warm-up under 5% ($(field drift))" \
    python3 -c 'import sys; d=sys.argv[1]; sys.exit(0 if d != "None" and float(d) < 0.05 else 1)' "$(field drift)"
  check "soak client verdict" test "$rc" -eq 0
fi
if kill -0 "$PID" 2>/dev/null; then
  stop_daemon
  rc=$?
  check "SIGTERM after the soak: exit 0" test "$rc" -eq 0
else
  fail "daemon alive at the end"
  tail -n 30 "$DAEMON_LOG" | sed 's/^/       | /'
fi
finish
