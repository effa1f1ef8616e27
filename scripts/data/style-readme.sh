#!/usr/bin/env bash
# style-readme.sh MODEL STYLE_IMAGE — the pictures of a trained style's
# README: MODEL/style.png (the style image at 256 pixels on its longer side,
# the size its Gram targets were computed at by default --size 128) and
# MODEL/before-after.png (tests/ref/style_photo.jpg, a photo the style never
# saw in training, and what the model makes of it), and how much it changes
# the photo (build/tools/mkimg change: mean |change| of the RGB values, then
# the same once each channel's mean shift — a tint — is taken out). Appends
# them to MODEL/README.md. Needs build/tools/stylepair and build/tools/mkimg.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1 style=$2
photo=tests/ref/style_photo.jpg
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build/tools/stylepair "$model" "$style" "$model/style.png" 256 --before-only
build/tools/stylepair "$model" "$photo" "$model/before-after.png" 256
build/tools/stylepair "$model" "$photo" "$tmp/before.png" 256 --before-only
build/tools/stylepair "$model" "$photo" "$tmp/after.png" 256 --after-only
read -r change centred < <(build/tools/mkimg change "$tmp/before.png" "$tmp/after.png")
{
  printf '\n## Before and after\n\n'
  printf 'The style (`%s`, as trained on):\n\n![style](style.png)\n\n' "$style"
  printf 'A photo it never saw in training (`%s`) and what the model makes of it:\n\n' "$photo"
  printf '![before and after](before-after.png)\n\n'
  printf 'Mean absolute change of the RGB values: %s of 255; %s once each channel'"'"'s mean shift is\n' "$change" "$centred"
  printf 'taken out (a tint alone would leave about 0). `tests/unit/test_default_styles.c` asserts these\n'
  printf 'and that the output'"'"'s Gram statistics are much closer to the style'"'"'s than the photo'"'"'s are.\n'
} >>"$model/README.md"
echo "$model: mean change $change, without the tint $centred"
