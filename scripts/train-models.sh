#!/usr/bin/env bash
# Retrains the default models into models/ (long: ~10 minutes on 2 cores, plus ~75 for en-de,
# ~30 for fashion-dcgan and ~40 for the two styles).
# Each model's README.md records the exact command and the score reached.
set -euo pipefail
cd "$(dirname "$0")/.."
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "train-models: $data missing (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
# one OpenBLAS thread: measured faster than two for these small per-image GEMMs
OPENBLAS_NUM_THREADS=1 ./inferd train --task image-classification --data "$data" \
  --out models/fashion-cnn --epochs 10 --log-every 500
./inferd eval --model models/fashion-cnn --data "$data"
# fortune-gpt: a character-level GPT on Debian's fortunes (~20 minutes on 2 cores)
OPENBLAS_NUM_THREADS=1 ./inferd train --task text-generation --data /usr/share/games/fortunes \
  --out models/fortune-gpt --dim 128 --layers 4 --heads 4 --context 256 --batch-size 16 \
  --steps 1200 --lr 3e-3 --log-every 100 --sample-prompt "The "
# en-de: the LSTM encoder-decoder translator on pairs from Debian's FreeDict
# English-German dictionary, in four stages (~75 minutes on one core; see
# models/en-de/README.md, which this does not rewrite)
[ -f /usr/share/dictd/freedict-eng-deu.index ] || { echo "train-models: apt-get install dict-freedict-eng-deu" >&2; exit 1; }
mkdir -p build/data
python3 scripts/data/freedict-en-de.py build/data/freedict-en-de.tsv
python3 scripts/data/freedict-en-de.py build/data/freedict-en-de-common.tsv --min-freq 20 --max-len 24
python3 scripts/data/freedict-en-de.py build/data/freedict-en-de-phrases.tsv --min-freq 20 --max-len 24 --phrase-repeat 8
P='house|water|dog|to sleep|good morning|cat|bread|to eat|thank you|the dog sleeps in the house'
rm -rf build/en-de-1 build/en-de-2 build/en-de-3 build/en-de-4
OPENBLAS_NUM_THREADS=1 ./inferd train --task translation --arch lstm-attention --data build/data/freedict-en-de.tsv \
  --out build/en-de-1 --dim 256 --layers 1 --steps 4500 --batch-size 64 --lr 0.002 --log-every 250 --sample-prompt "$P"
OPENBLAS_NUM_THREADS=1 ./inferd train --task translation --arch lstm-attention --data build/data/freedict-en-de-common.tsv \
  --base-model build/en-de-1 --out build/en-de-2 --steps 1500 --batch-size 64 --lr 0.001 --log-every 100 --sample-prompt "$P"
OPENBLAS_NUM_THREADS=1 ./inferd train --task translation --arch lstm-attention --data build/data/freedict-en-de-common.tsv \
  --base-model build/en-de-2 --out build/en-de-3 --steps 1500 --batch-size 64 --lr 0.0005 --seed 2 --log-every 100 --sample-prompt "$P"
OPENBLAS_NUM_THREADS=1 ./inferd train --task translation --arch lstm-attention --data build/data/freedict-en-de-phrases.tsv \
  --base-model build/en-de-3 --out build/en-de-4 --steps 1000 --batch-size 64 --lr 0.0003 --seed 3 --log-every 100 --sample-prompt "$P"
mkdir -p models/en-de
cp build/en-de-4/model.safetensors build/en-de-4/config.json build/en-de-4/source_vocab.json build/en-de-4/target_vocab.json \
  build/en-de-1/heldout.tsv models/en-de/
./inferd eval --model models/en-de --data models/en-de/heldout.tsv
# langid: a fastText-style language identifier on the fortunes of Debian's
# language packages (13 languages; ~1 minute on one core)
python3 scripts/data/langid-fortunes.py build/data/langid
./inferd train --task text-classification --data build/data/langid --out models/langid \
  --epochs 10 --lr 0.5 --dim 16 --buckets 131072 --minn 1 --maxn 4 --log-every 200000
./inferd eval --model models/langid --data build/data/langid
./scripts/data/langid-readme.sh models/langid build/data/langid   # non-fortune text, in its README
# fashion-dcgan: a class-conditional DCGAN on Fashion-MNIST (~30 minutes on a
# loaded 2-core machine), judged by fashion-cnn in its README
OPENBLAS_NUM_THREADS=1 ./inferd train --task image-generation --data "$data" \
  --out models/fashion-dcgan --steps 7000 --batch-size 64 --log-every 250
./scripts/data/dcgan-readme.sh models/fashion-dcgan models/fashion-cnn
# elephants, rhythm: fast style networks (TransformerNet width 0.25) trained
# from artwork in Debian's background packages on mate-backgrounds' photos
# (scripts/install-deps.sh --models; ~20 CPU-minutes each at 128-pixel crops),
# with a before/after picture and the measured change in their READMEs
for pkg in mate-backgrounds ukui-wallpapers; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    { echo "train-models: scripts/install-deps.sh --models (missing $pkg)" >&2; exit 1; }
done
make -s build/tools/stylepair build/tools/mkimg
photos=/usr/share/backgrounds/mate/nature
for spec in elephants:/usr/share/backgrounds/mate/abstract/Elephants.jpg rhythm:/usr/share/backgrounds/rhythm.jpg; do
  name=${spec%%:*} style=${spec#*:}
  OPENBLAS_NUM_THREADS=1 ./inferd train --task image-stylization --style "$style" --content "$photos" \
    --out "models/$name" --width 0.25 --size 128 --lr 0.002 --structure-weight 3 --steps 900 --log-every 50 --threads 1
  ./scripts/data/style-readme.sh "models/$name" "$style"
done
