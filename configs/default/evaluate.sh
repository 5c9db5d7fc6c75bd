#!/usr/bin/env bash
# Scores every stage of the default model on the held-out human-seg split and on
# comp1k-crops (never trained on); JSON reports land in runs/eval/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="${DATA:-$root/../shared/data}"
py="${PYTHON:-python}"
mkdir -p "$root/runs/eval"
for stage in ${STAGES:-pretrain teacher finetune student}; do
  ckpt="$root/runs/$stage/model.safetensors"
  [ -f "$ckpt" ] || { echo "skip $stage: no $ckpt"; continue; }
  "$py" -m matting.cli eval --checkpoint "$ckpt" --data "$data/human-seg" \
    --split-file "$here/../splits/human-seg-heldout.txt" -q \
    --json "$root/runs/eval/$stage-human.json" > "$root/runs/eval/$stage-human.txt"
  "$py" -m matting.cli eval --checkpoint "$ckpt" --data "$data/comp1k-crops" -q \
    --json "$root/runs/eval/$stage-comp1k.json" > "$root/runs/eval/$stage-comp1k.txt"
done
