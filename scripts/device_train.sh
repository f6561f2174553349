#!/usr/bin/env bash
# Runs on the leased GPU (device tool): one training call of at most MINUTES, resumable.
# Usage: scripts/device_train.sh NAME STEPS MINUTES [more `python -m nlc.train` options]
#   NAME    codec whose architecture to train (its TOML gives the hyper-parameters)
#   STEPS   length of the cosine schedule; chained calls pass the same STEPS
#   MINUTES wall-clock budget of this call (8.5 keeps a call inside the 10-minute limit)
# It resumes runs/NAME.ckpt when the machine still holds it or the call carried it, trains on
# .devkit/ (scripts/device_kit.sh), and copies the checkpoint, weights and metadata to $OUT in
# 15 MiB parts (the tool returns files up to 16 MiB); rebuild them here with
# `cat FILE.part-* > FILE`.
set -euo pipefail
name=$1 steps=$2 minutes=$3
shift 3
py=${PYTHON:-python3}  # PYTHON=.venv/bin/python NLC_DEVICE=cpu tries the script here
"$py" -c "import constriction" 2>/dev/null || "$py" -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --upgrade --target /tmp/site .devkit/wheels/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p runs
resume=()
[[ -f runs/$name.ckpt ]] && resume=(--resume "runs/$name.ckpt")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$py" -m nlc.train --codec "$name" --data .devkit/train --val .devkit/val --steps "$steps" \
  --minutes "$minutes" --device "${NLC_DEVICE:-cuda}" --out "runs/$name" "${resume[@]}" "$@"
out=${OUT:-/tmp/out}
mkdir -p "$out"
for f in "runs/$name.ckpt" "runs/$name.safetensors" "runs/$name.json"; do
  split -b 15M -d "$f" "$out/$(basename "$f").part-"
done
ls -la "$out"
