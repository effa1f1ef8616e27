#!/usr/bin/env bash
# int8-quality.sh — the README's int8 perplexity table, reproduced: held-out
# perplexity of fp32 vs `inferd quantize` (groups of 32 and 64) for
#   fortune-gpt  models/fortune-gpt (GPT-2 architecture, trained by inferd), and
#   fortune-llama a Llama trained here by `inferd train --arch llama` on the same
#                 text, exported to a llama2.c checkpoint (scripts/export-llama2c.py)
#                 and quantized from that checkpoint.
# Held-out text: the last 5% of the English fortunes (the files of the Debian
# packages fortunes and fortunes-min, in name order, as the trainer reads the
# directory): exactly the split both trainings held out. Training the llama
# takes ~20 minutes on 2 shared vCPUs; WORK keeps it between runs.
#
#   scripts/int8-quality.sh [WORK=/tmp/inferd-int8-quality]
set -euo pipefail
cd "$(dirname "$0")/.."
INFERD=${INFERD:-./inferd}
WORK=${1:-/tmp/inferd-int8-quality}
mkdir -p "$WORK/fortunes-en"
# the English fortune files (the packages' own lists), copied: the trainer reads regular files only
for f in $(dpkg -L fortunes fortunes-min | grep -E '^/usr/share/games/fortunes/[^./]+$'); do
  cp "$f" "$WORK/fortunes-en/"
done
python3 - "$WORK" <<'PY'
import os, sys
d = os.path.join(sys.argv[1], "fortunes-en")
parts = []
for n in sorted(x for x in os.listdir(d) if not x.startswith(".") and "." not in x):
    b = open(os.path.join(d, n), "rb").read()
    parts.append(b + (b"\n" if b and not b.endswith(b"\n") else b""))
t = b"".join(parts).decode("utf-8", errors="replace")   # the trainer's characters
open(os.path.join(sys.argv[1], "heldout.txt"), "w").write(t[len(t) - len(t) // 20:])
print(f"corpus {len(t)} characters, held out {len(t) // 20}")
PY
if [ ! -f "$WORK/fortune-llama/model.safetensors" ]; then
  OPENBLAS_NUM_THREADS=1 nice -n 10 "$INFERD" train --task text-generation --arch llama --data "$WORK/fortunes-en" \
    --out "$WORK/fortune-llama" --dim 128 --layers 4 --heads 4 --context 128 --batch-size 16 --steps 1500 --lr 3e-3 \
    --log-every 100 --sample-prompt 'The '
fi
python3 scripts/export-llama2c.py "$WORK/fortune-llama" "$WORK/fortune-llama-l2c"
for g in 32 64; do
  rm -rf "$WORK/fortune-gpt-q$g" "$WORK/fortune-llama-q$g"
  "$INFERD" quantize --model models/fortune-gpt --out "$WORK/fortune-gpt-q$g" --group-size $g
  "$INFERD" quantize --model "$WORK/fortune-llama-l2c" --out "$WORK/fortune-llama-q$g" --group-size $g
done
for m in models/fortune-gpt "$WORK/fortune-gpt-q32" "$WORK/fortune-gpt-q64" \
         "$WORK/fortune-llama-l2c" "$WORK/fortune-llama-q32" "$WORK/fortune-llama-q64"; do
  printf '%-40s %s\n' "$(basename "$m")" "$(OPENBLAS_NUM_THREADS=1 nice -n 10 "$INFERD" eval --model "$m" --data "$WORK/heldout.txt")"
done
