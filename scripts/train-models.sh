#!/usr/bin/env bash
# Retrains the default models into models/ (long: ~10 minutes on 2 cores).
# Each model's README.md records the exact command and the score reached.
set -euo pipefail
cd "$(dirname "$0")/.."
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "train-models: $data missing (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
# one OpenBLAS thread: measured faster than two for these small per-image GEMMs
OPENBLAS_NUM_THREADS=1 ./inferd train --task image-classification --data "$data" \
  --out models/fashion-cnn --epochs 10 --log-every 500
./inferd eval --model models/fashion-cnn --data "$data"
