#!/usr/bin/env bash
# test_deploy.sh — the deployment artefacts agree with the binary we build.
#
#  (a) Dockerfile: every shared library `ldd $INFERD` lists comes from a Debian
#      package the runtime stage installs (named on its apt-get line, pulled in
#      by one of those packages' Depends, or in the base image); each library
#      the binary links directly (NEEDED) is named explicitly.
#  (b) systemd/inferd.service: `systemd-analyze verify` is clean (on a temp copy
#      whose ExecStart points at $INFERD) and the hardening scores "OK".
#  (c) `make install DESTDIR=... PREFIX=/usr` installs bin/inferd, the conf and
#      the models where they belong, and the installed binary runs --version;
#      with PREFIX=/usr/local the unit's ExecStart and --models paths exist.
#  (d) the daemon honours what the container and the unit expect of it: the
#      Dockerfile's CMD flags start it, its HEALTHCHECK passes, SIGTERM exits 0;
#      the unit's ExecStart flags start it, READY=1 arrives on $NOTIFY_SOCKET,
#      SIGHUP (ExecReload) leaves it serving.
set -u
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

DOCKERFILE=$REPO_ROOT/Dockerfile
UNIT=$REPO_ROOT/systemd/inferd.service
# in debian:bookworm-slim already (libc6 also brings libm and the dynamic loader)
BASE_IMAGE_PKGS="libc6 libgcc-s1 libstdc++6"

if [ ! -x "$INFERD" ]; then
  fail "binary under test" "$INFERD is not an executable file"
  finish
  exit
fi

# ---- helpers -------------------------------------------------------------------

# The package names on the apt-get install line(s) after the last FROM.
dockerfile_runtime_pkgs() {
  awk '
    /^[[:space:]]*#/ { next }                       # comments, also inside continuations
    {
      buf = cont ? buf " " $0 : $0
      if ($0 ~ /\\[[:space:]]*$/) { sub(/\\[[:space:]]*$/, "", buf); cont = 1; next }
      cont = 0; logical[n++] = buf
    }
    END {
      last = -1
      for (i = 0; i < n; i++) if (toupper(logical[i]) ~ /^[[:space:]]*FROM[[:space:]]/) last = i
      for (i = last + 1; i < n; i++) {
        if (toupper(logical[i]) !~ /^[[:space:]]*RUN[[:space:]]/) continue
        s = logical[i]; gsub(/&&|\|\||;|\|/, "\n", s)
        m = split(s, seg, "\n")
        for (j = 1; j <= m; j++) {
          w = split(seg[j], word, /[[:space:]]+/); inst = 0; apt = 0
          for (k = 1; k <= w; k++) {
            if (word[k] ~ /(^|\/)apt(-get)?$/) { apt = 1; continue }
            if (apt && word[k] == "install") { inst = 1; continue }
            if (inst && word[k] != "" && word[k] !~ /^-/) {
              p = word[k]; gsub(/["\047]/, "", p); sub(/=.*/, "", p); print p
            }
          }
        }
      }
    }' "$DOCKERFILE" | sort -u
}

# Everything the given packages pull in through Depends/Pre-Depends (all
# alternatives), using the package database of this machine.
dep_closure() {
  dpkg-query -W -f='${Package}\t${Pre-Depends}, ${Depends}\n' 2>/dev/null |
    awk -F'\t' -v roots="$*" '
      { gsub(/\([^)]*\)/, "", $2); gsub(/:any/, "", $2); gsub(/[[:space:]]/, "", $2)
        deps[$1] = $2 }
      END {
        n = split(roots, q, " "); for (i = 1; i <= n; i++) seen[q[i]] = 1
        for (i = 1; i <= n; i++) {
          m = split(deps[q[i]], d, /[,|]/)
          for (j = 1; j <= m; j++) if (d[j] != "" && !(d[j] in seen)) { seen[d[j]] = 1; q[++n] = d[j] }
        }
        for (p in seen) print p
      }' | sort -u
}

# The Debian package owning a library path; copes with usrmerge (/lib vs
# /usr/lib) and with symlinks such as the alternatives behind libopenblas.so.0.
owner_of() {
  local path=$1 real c out
  real=$(readlink -f "$path")
  for c in "$path" "$real" "/usr$path" "${path#/usr}" "/usr$real" "${real#/usr}"; do
    [ -n "$c" ] || continue
    out=$(dpkg-query -S -- "$c" 2>/dev/null | grep -v '^diversion' | head -n1) || true
    if [ -n "$out" ]; then
      out=${out%%: *}     # "pkg:arch: /path" -> "pkg:arch" (or "a, b")
      out=${out%%,*}
      echo "${out%%:*}"
      return 0
    fi
  done
  return 1
}

in_list() { # WORD LIST...
  local w=$1 x
  shift
  for x in "$@"; do [ "$x" = "$w" ] && return 0; done
  return 1
}

# ---- (a) Dockerfile runtime packages vs ldd --------------------------------------------

echo "# (a) Dockerfile runtime stage vs ldd $INFERD"
mapfile -t runtime < <(dockerfile_runtime_pkgs)
if [ "${#runtime[@]}" -eq 0 ]; then
  fail "Dockerfile: runtime apt-get install line found"
else
  pass "Dockerfile: runtime apt-get install line found (${runtime[*]})"
fi

# Each named package must exist in Debian 12 (installed here, or known to apt).
for p in "${runtime[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ] &&
     ! apt-cache show "$p" >/dev/null 2>&1; then
    fail "Dockerfile: runtime package '$p' exists in Debian"
  fi
done

mapfile -t closure < <(dep_closure "${runtime[@]}")
# shellcheck disable=SC2206 # word-split on purpose
base=($BASE_IMAGE_PKGS)
mapfile -t needed < <(readelf -d "$INFERD" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

ldd_out=$(ldd "$INFERD" 2>&1) || { fail "ldd $INFERD" "$ldd_out"; }
nlibs=0
while read -r soname arrow path _; do
  # lines: "libx.so.1 => /path (0x..)", "/lib64/ld-linux-x86-64.so.2 (0x..)", "linux-vdso.so.1 (0x..)"
  if [ "$arrow" != "=>" ]; then
    case "$soname" in /*) path=$soname ;; *) continue ;; esac
  fi
  if [ "$path" = "not" ]; then
    fail "ldd: $soname is found" "ldd says 'not found'"
    continue
  fi
  nlibs=$((nlibs + 1))
  case "$soname" in
    libasan.so*|libubsan.so*|libtsan.so*|liblsan.so*) # make asan: not in a release image
      echo "skip - $soname (sanitizer runtime)"; continue ;;
  esac
  pkg=$(owner_of "$path") || { fail "$soname: owning Debian package" "dpkg -S knows no package for $path"; continue; }
  # the libopenblas0-{pthread,openmp,serial} flavours all provide libopenblas.so.0
  alts=("$pkg")
  case "$pkg" in libopenblas0-*) alts+=(libopenblas0 libopenblas0-pthread libopenblas0-openmp libopenblas0-serial) ;; esac
  ok=""
  for a in "${alts[@]}"; do
    if in_list "$a" "${base[@]}"; then ok="base image"; break; fi
    if in_list "$a" "${runtime[@]}"; then ok="named"; break; fi
  done
  if [ -z "$ok" ] && in_list "$(basename "$soname")" "${needed[@]}"; then
    fail "$soname ($pkg): linked directly, so named on the runtime apt-get line"
    continue
  fi
  if [ -z "$ok" ]; then
    for a in "${alts[@]}"; do
      if in_list "$a" "${closure[@]}"; then ok="dependency"; break; fi
    done
  fi
  if [ -n "$ok" ]; then
    pass "$soname -> $pkg ($ok)"
  else
    fail "$soname -> $pkg: in the Dockerfile runtime stage" "add $pkg to the apt-get line after the last FROM"
  fi
done <<<"$ldd_out"
[ "$nlibs" -gt 0 ] || fail "ldd lists shared libraries" "$ldd_out"

check "Dockerfile: build inputs conf/inferd.conf and models/ exist" \
  test -f "$REPO_ROOT/conf/inferd.conf" -a -d "$REPO_ROOT/models"

# ---- (b) systemd unit ----------------------------------------------------------------

echo "# (b) systemd-analyze verify $UNIT"
check "unit: ExecStart runs /usr/local/bin/inferd serve" grep -q '^ExecStart=/usr/local/bin/inferd serve ' "$UNIT"
check "unit: Type=notify" grep -qx 'Type=notify' "$UNIT"
# shellcheck disable=SC2016 # a literal $MAINPID
check "unit: ExecReload sends SIGHUP" grep -qxF 'ExecReload=/bin/kill -HUP $MAINPID' "$UNIT"
check "unit: WantedBy=multi-user.target" grep -qx 'WantedBy=multi-user.target' "$UNIT"

# verify wants ExecStart's binary to exist: a temp copy pointing at $INFERD
mkdir -p "$TEST_TMP/unit"
sed -E "s#^(ExecStart=[-@:+!]*)[^[:space:]]+#\\1$INFERD#" "$UNIT" >"$TEST_TMP/unit/inferd.service"
if out=$(cd "$TEST_TMP/unit" && systemd-analyze verify ./inferd.service 2>&1) && [ -z "$out" ]; then
  pass "systemd-analyze verify: clean"
else
  fail "systemd-analyze verify: clean" "it printed:"
  printf '%s\n' "$out" | sed 's/^/       | /'
fi
# exposure 0..10 ("OK" is <= 2.x): fail if the hardening regresses past 2.0
if out=$(cd "$TEST_TMP/unit" && systemd-analyze security --offline=yes --threshold=20 ./inferd.service 2>&1); then
  pass "systemd-analyze security: $(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: //p')"
else
  fail "systemd-analyze security: exposure <= 2.0" "$(printf '%s\n' "$out" | tail -n 1)"
fi

# ---- (c) make install ----------------------------------------------------------------

echo "# (c) make install"
# Install the binary under test with the real Makefile's install recipe from a
# scratch directory: the work tree is not touched and nothing is rebuilt
# (-o inferd), and a parent make's variables (BUILD, SANITIZER) do not leak in.
stage=$TEST_TMP/stage
mkdir -p "$stage"
cp "$INFERD" "$stage/inferd"
ln -s "$REPO_ROOT/conf" "$stage/conf"
ln -s "$MODELS_DIR" "$stage/models"
ln -s "$REPO_ROOT/systemd" "$stage/systemd"
version=$(sed -n 's/^VERSION[[:space:]]*:*=[[:space:]]*//p' "$REPO_ROOT/Makefile")

install_into() { # DESTDIR PREFIX
  (cd "$stage" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    make -s -f "$REPO_ROOT/Makefile" -o inferd install DESTDIR="$1" PREFIX="$2") >"$TEST_TMP/install.log" 2>&1
}

dest=$TEST_TMP/dest-usr
if install_into "$dest" /usr; then
  pass "make install DESTDIR=... PREFIX=/usr"
  check "installed: /usr/bin/inferd is executable" test -x "$dest/usr/bin/inferd"
  check "installed: /usr/bin/inferd is the binary under test" cmp "$INFERD" "$dest/usr/bin/inferd"
  check "installed: /usr/share/inferd/conf/inferd.conf" cmp "$REPO_ROOT/conf/inferd.conf" "$dest/usr/share/inferd/conf/inferd.conf"
  check "installed: /usr/share/inferd/models matches models/" diff -r "$MODELS_DIR/" "$dest/usr/share/inferd/models/"
  check "installed: /etc/inferd/inferd.conf" cmp "$REPO_ROOT/conf/inferd.conf" "$dest/etc/inferd/inferd.conf"
  check "installed: the systemd unit, ExecStart under PREFIX" grep -q '^ExecStart=/usr/bin/inferd ' "$dest/usr/lib/systemd/system/inferd.service"
  if out=$("$dest/usr/bin/inferd" --version 2>&1); then
    pass "installed binary runs --version ($out)"
    check "--version mentions $version" grep -qF -- "$version" <<<"$out"
  else
    fail "installed binary runs --version" "$out"
  fi
else
  fail "make install DESTDIR=... PREFIX=/usr"
  sed 's/^/       | /' "$TEST_TMP/install.log"
fi

dest=$TEST_TMP/dest-local
if install_into "$dest" /usr/local; then
  exec_bin=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT")
  models=$(sed -n 's/^ExecStart=.* --models \([^ ]*\).*/\1/p' "$UNIT")
  check "unit's ExecStart binary $exec_bin is what make install PREFIX=/usr/local installs" test -x "$dest$exec_bin"
  check "unit's --models ${models:-?} is what make install PREFIX=/usr/local installs" test -n "$models" -a -d "$dest$models"
else
  fail "make install DESTDIR=... PREFIX=/usr/local"
  sed 's/^/       | /' "$TEST_TMP/install.log"
fi

# ---- (d) what the container and the unit expect of the daemon -----------------------

echo "# (d) the Dockerfile's CMD and HEALTHCHECK, the unit's ExecStart, notify and reload"

# Dockerfile CMD / HEALTHCHECK (JSON exec form), container paths mapped to the repo's.
docker_json=$(python3 - "$DOCKERFILE" <<'PY'
import json, re, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
last = list(re.finditer(r"(?im)^FROM\s", text))[-1].start()
stage = text[last:]
cmd = re.findall(r"(?m)^CMD\s+(\[.*\])\s*$", stage)
hc = re.findall(r"(?m)^HEALTHCHECK\s.*?CMD\s+(\[.*\])\s*$", stage)
print(json.dumps({"cmd": json.loads(cmd[-1]) if cmd else [], "hc": json.loads(hc[-1]) if hc else []}))
PY
) || docker_json='{"cmd":[],"hc":[]}'
mapfile -t cmd < <(python3 -c 'import json,sys; [print(a) for a in json.loads(sys.argv[1])["cmd"]]' "$docker_json")
mapfile -t hc < <(python3 -c 'import json,sys; [print(a) for a in json.loads(sys.argv[1])["hc"]]' "$docker_json")

# map_args CONF_PATH MODELS_PATH DATA_PATH ARGS... -> the flags after "serve",
# with the deployment paths replaced by test paths and --models/--data-dir left
# to start_daemon (which sets them from MODELS_DIR / DATA_DIR).
map_args() {
  local conf=$1 models=$2 data=$3 a skip=""
  shift 3
  mapped=()
  for a in "$@"; do
    if [ -n "$skip" ]; then skip=""; continue; fi
    case "$a" in
      serve|inferd|*/inferd) continue ;;
      --models|--data-dir) skip=1; continue ;;
      "$conf") mapped+=("$REPO_ROOT/conf/inferd.conf") ;;
      "$models"|"$data") ;;
      *) mapped+=("$a") ;;
    esac
  done
}

if [ "${#cmd[@]}" -ge 2 ] && [ "${cmd[0]}" = inferd ] && [ "${cmd[1]}" = serve ]; then
  pass "Dockerfile: CMD is [inferd, serve, ...]"
  map_args /etc/inferd/inferd.conf /var/lib/inferd/models /var/lib/inferd/data "${cmd[@]}"
  if DATA_DIR=$TEST_TMP/docker-data start_daemon "${mapped[@]}"; then
    pass "daemon starts with the Dockerfile's CMD flags (${mapped[*]})"
    if [ "${#hc[@]}" -eq 3 ] && [ "${hc[0]}" = bash ]; then
      check "Dockerfile: HEALTHCHECK passes against the daemon" bash -c "${hc[2]//8080/$PORT}"
    else
      fail "Dockerfile: HEALTHCHECK is [bash, -c, SCRIPT]" "${hc[*]}"
    fi
    expect_status "GET /healthz (container probe)" 200 "$BASE/healthz"
    rc=0; stop_daemon || rc=$?
    check "docker stop: SIGTERM exits 0 (got $rc)" test "$rc" -eq 0
  fi
else
  fail "Dockerfile: CMD is [inferd, serve, ...]" "${cmd[*]}"
fi

# systemd: ExecStart's flags, READY=1 on $NOTIFY_SOCKET, SIGHUP keeps serving.
read -r -a exec_args <<<"$(sed -n 's/^ExecStart=//p' "$UNIT")"
map_args /etc/inferd/inferd.conf /usr/local/share/inferd/models /var/lib/inferd "${exec_args[@]}"
sock=$TEST_TMP/notify.sock
python3 - "$sock" "$TEST_TMP/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        try:
            msg = s.recv(4096)
        except socket.timeout:
            break
        f.write(msg + b"\n")
PY
listener=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
if NOTIFY_SOCKET=$sock DATA_DIR=$TEST_TMP/unit-data start_daemon "${mapped[@]}"; then
  pass "daemon starts with the unit's ExecStart flags (${mapped[*]})"
  for _ in $(seq 100); do grep -q '^READY=1' "$TEST_TMP/notify.out" 2>/dev/null && break; sleep 0.1; done
  check "Type=notify: READY=1 arrives on \$NOTIFY_SOCKET" grep -q '^READY=1' "$TEST_TMP/notify.out"
  kill -HUP "$PID" 2>/dev/null
  # a daemon that says RELOADING=1 must say READY=1 again, or `systemctl reload` hangs
  reload_done() { awk '/^RELOADING=1/{r=1} r && /^READY=1/{ok=1} END{exit !(ok || !r)}' "$TEST_TMP/notify.out"; }
  for _ in $(seq 100); do reload_done && grep -q '^RELOADING=1' "$TEST_TMP/notify.out" && break; sleep 0.1; done
  check "ExecReload (SIGHUP): READY=1 follows any RELOADING=1" reload_done
  check "ExecReload (SIGHUP): daemon still running" kill -0 "$PID"
  expect_status "GET /healthz after SIGHUP" 200 "$BASE/healthz"
  rc=0; stop_daemon || rc=$?
  check "systemctl stop: SIGTERM exits 0 (got $rc)" test "$rc" -eq 0
fi
kill "$listener" 2>/dev/null
wait "$listener" 2>/dev/null

finish
