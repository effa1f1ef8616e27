#!/usr/bin/env bash
# install-deps.sh — install the Debian 12 (bookworm) packages inferd needs to
# build, test and run, and only those that are missing.
#
#   scripts/install-deps.sh               build + test + run packages
#   scripts/install-deps.sh --bench       ... plus what `make bench` compares against
#   scripts/install-deps.sh --fuzz        ... plus clang and libFuzzer for `make fuzz`
#   scripts/install-deps.sh --models      ... plus the artwork and photos `make models` trains styles on
#   scripts/install-deps.sh --build-only  only what `make` needs (the Docker build stage)
#   scripts/install-deps.sh --check       install nothing; list what is missing, exit 1 if any
#   scripts/install-deps.sh --list        print the selected package names, one a line
#
# Idempotent and silent when everything is already installed. Runs apt-get
# update only when something has to be installed. Uses sudo when not root.
set -euo pipefail

# ---- the package list (the one place it lives) ------------------------------

# Build: compiler toolchain and the -dev packages the Makefile links against
# (libmicrohttpd jansson libuv libpng zlib via pkg-config, plus openblas, jpeg).
# libsentencepiece-dev: the SentencePiece tokenizer of Marian (opus-mt)
# translation models is Debian's libsentencepiece, the reference
# implementation, behind a small C++ shim (engine/text/sentencepiece_shim.cc;
# g++ comes with build-essential). Its tests use committed fixtures; the
# `sentencepiece` CLI (spm_train/spm_encode) is needed only to regenerate
# them (tests/ref/make_spm_ref.py), so it is not listed.
# libarchive-dev: image-classification datasets uploaded as a tar (gzip or
# not) of label folders are read member by member in memory with Debian's
# libarchive (engine/io/dataset_tar.c), not a hand-written tar parser.
# nettle-dev: sha256 of uploaded files (server/files.c); libnettle8 is
# already a dependency of libarchive13, so it adds no runtime library.
BUILD_PKGS=(
  build-essential pkg-config
  libmicrohttpd-dev libjansson-dev libuv1-dev libopenblas-dev
  libpng-dev libjpeg62-turbo-dev zlib1g-dev
  libsentencepiece-dev
  libarchive-dev nettle-dev
)
# Unit tests: the Check framework (pkg-config check).
UNIT_TEST_PKGS=(check)
# Integration tests: curl talks to the live daemon, ca-certificates for curl,
# procps (ps/pkill/pgrep) to watch processes, python3 (stdlib only, no pip)
# for small JSON helpers, systemd for `systemd-analyze verify` on the unit file.
INTEGRATION_TEST_PKGS=(curl ca-certificates procps python3 systemd)
# Data: Fashion-MNIST (IDX files under /usr/share) for the image models'
# training and evaluation tests; the FreeDict English-German dictionary, the
# pairs models/en-de is trained on (scripts/data/freedict-en-de.py); the
# fortunes in 13 languages (English, German, Spanish, Italian, Russian,
# Polish, Czech + Slovak, Brazilian Portuguese, Irish, Esperanto, Bulgarian,
# Chinese) that scripts/data/langid-fortunes.py turns into models/langid's
# training data and held-out set (the text-classification tests assert its accuracy).
DATA_PKGS=(dataset-fashion-mnist dict-freedict-eng-deu
  fortunes fortunes-min fortunes-de fortunes-es fortunes-it fortunes-ru fortunes-pl
  fortunes-cs fortunes-br fortunes-ga fortunes-eo fortunes-bg fortunes-zh)
# Benchmarks only (--bench): PyTorch, the reference `make bench` compares with
# (also what the tests/ref/make_*_ref.py fixture scripts and
# scripts/convert_fast_neural_style.py run on); python3-pil writes and decodes
# the stylization fixture's PNG/JPEG (tests/ref/make_transformer_net_ref.py).
BENCH_PKGS=(python3-torch python3-pil wrk)
# Retraining the default models only (--models, `make models`): the default
# styles models/elephants and models/rhythm are trained from artwork in
# Debian's desktop-background packages (mate-backgrounds' Elephants.jpg,
# ukui-wallpapers' rhythm.jpg) on the photographs of mate-backgrounds
# (/usr/share/backgrounds/mate/nature). Not needed by `make test`: the tests
# use the trained models and the small pictures committed beside them.
MODELS_PKGS=(mate-backgrounds ukui-wallpapers)
# Fuzzing only (--fuzz): Debian's clang with libFuzzer and the sanitizer runtimes.
FUZZ_PKGS=(clang libfuzzer-14-dev)
# Node.js tooling for tests (npm fetches the GPT-2 vocabulary the tokenizer
# tests compare against, and the OpenAI SDK client test): Debian's npm, unless
# an npm is already on PATH (e.g. a Node.js installed from elsewhere, whose
# nodejs package would conflict with Debian's npm).
NODE_PKGS=(npm)

# ---- arguments ---------------------------------------------------------------

usage() { sed -n '2,14s/^# \{0,1\}//p' "$0"; }

mode=install
bench=0
fuzz=0
models=0
build_only=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --fuzz) fuzz=1 ;;
    --models) models=1 ;;
    --build-only) build_only=1 ;;
    --check) mode=check ;;
    --list) mode=list ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

pkgs=("${BUILD_PKGS[@]}")
if [ "$build_only" = 0 ]; then
  pkgs+=("${UNIT_TEST_PKGS[@]}" "${INTEGRATION_TEST_PKGS[@]}" "${DATA_PKGS[@]}")
  command -v npm >/dev/null 2>&1 || pkgs+=("${NODE_PKGS[@]}")
fi
if [ "$bench" = 1 ]; then
  pkgs+=("${BENCH_PKGS[@]}")
fi
if [ "$fuzz" = 1 ]; then
  pkgs+=("${FUZZ_PKGS[@]}")
fi
if [ "$models" = 1 ]; then
  pkgs+=("${MODELS_PKGS[@]}")
fi

if [ "$mode" = list ]; then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi

# ---- what is missing ---------------------------------------------------------

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps.sh: this script needs a Debian system (dpkg-query and apt-get not found)." >&2
  echo "  Install the equivalents of: ${pkgs[*]}" >&2
  exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [ "$status" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0 # everything present: say nothing
fi

if [ "$mode" = check ]; then
  echo "install-deps.sh: missing packages: ${missing[*]}" >&2
  exit 1
fi

# ---- install -----------------------------------------------------------------

if [ "$(id -u)" = 0 ]; then
  as_root=(env)
elif command -v sudo >/dev/null 2>&1; then
  if [ ! -t 0 ] && ! sudo -n true 2>/dev/null; then
    echo "install-deps.sh: need to install: ${missing[*]}" >&2
    echo "  but sudo wants a password and there is no terminal to type it in." >&2
    echo "  Run this script as root, or from a terminal." >&2
    exit 1
  fi
  as_root=(sudo env)
else
  echo "install-deps.sh: need to install: ${missing[*]}" >&2
  echo "  but this is not root and sudo is not available." >&2
  echo "  Run as root:  apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "install-deps.sh: installing ${missing[*]}"
apt_env=(DEBIAN_FRONTEND=noninteractive)
"${as_root[@]}" "${apt_env[@]}" apt-get update -q
"${as_root[@]}" "${apt_env[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

# apt-get can exit 0 after skipping something; make sure every package is there.
still=()
for p in "${missing[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || still+=("$p")
done
if [ "${#still[@]}" -ne 0 ]; then
  echo "install-deps.sh: still not installed after apt-get: ${still[*]}" >&2
  exit 1
fi
echo "install-deps.sh: done"
