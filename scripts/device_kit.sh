#!/usr/bin/env bash
# Builds .devkit/ (git-ignored): what a leased GPU call carries besides the repository.
#   .devkit/wheels/  constriction for the device's Python 3.12 (its image has torch, numpy,
#                    safetensors, click, tqdm and Pillow already)
#   .devkit/train/   as many photos-train images as fit the 64 MiB a call may carry
#   .devkit/val/     photos-val, all 9 (the validation crops are defined on the whole folder)
# Usage (here, once per session): scripts/device_kit.sh [DATA_DIR]   (default ../shared/data)
# Then pass carry=[".devkit", "runs/NAME.ckpt"] to the device tool's run; see scripts/device_train.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
limit=$((60 * 1024 * 1024))  # leave ~4 MiB of the 64 MiB for checkpoints and slack
rm -rf .devkit && mkdir -p .devkit/wheels .devkit/train .devkit/val
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .devkit/wheels constriction==0.5.0
cp "$data"/photos-val/*.webp .devkit/val/
used=$(( $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb .devkit | cut -f1) ))
n=0
for f in "$data"/photos-train/*.webp; do  # in name order, so every kit holds the same first photos
  size=$(stat -c %s "$f")
  (( used + size > limit )) && break
  cp "$f" .devkit/train/ && used=$((used + size)) && n=$((n + 1))
done
echo ".devkit: $n training photos, $(ls .devkit/val | wc -l) validation photos, $((used / 1048576)) MiB with the repository"
