#!/usr/bin/env bash
# dcgan-readme.sh GENERATOR CLASSIFIER — measures an image generator with a
# classifier (`inferd eval --classifier`: 1,000 images, seed 1), writes
# GENERATOR/samples.png (the first 100 images, one column per label of a
# conditional model) and appends the figures and the grid to GENERATOR/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
gen=$1 cls=$2
out=$(OPENBLAS_NUM_THREADS=1 ./inferd eval --model "$gen" --classifier "$cls" --n 1000 --seed 1 --grid "$gen/samples.png")
printf '%s\n' "$out"
{
  printf '\n## Quality (measured, not eyeballed)\n\n'
  printf '1,000 images (seed 1; a conditional model'"'"'s image i asks for label i %% 10) classified by `%s`:\n' "$(basename "$cls")"
  printf 'its mean top-1 confidence (an Inception-Score-like figure with our own classifier), how many\n'
  printf 'classes it sees, how often it agrees with the requested label, and the spread of its labels.\n\n'
  printf '```\n./inferd eval --model %s --classifier %s --n 1000 --seed 1 --grid %s/samples.png\n%s\n```\n\n' \
    "$gen" "$cls" "$gen" "$out"
  printf 'The first 100 of those images (column j: label j):\n\n![samples](samples.png)\n'
} >>"$gen/README.md"
