#!/usr/bin/env bash
# Learning curve of the pre-training: trains on 50, 101 and 203 of the human-seg
# training photos (same recipe and steps), then scores each on the held-out split
# and on its own training photos. Reports land in runs/learning_curve/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="${DATA:-$root/../shared/data}"
py="${PYTHON:-python}"
out="$root/runs/learning_curve"
mkdir -p "$out"
for n in ${SIZES:-050 101 203}; do
  "$py" -m matting.cli train --config "$here/n$n.toml" --no-progress
  ckpt="$out/n$n/model.safetensors"
  "$py" -m matting.cli eval --checkpoint "$ckpt" --data "$data/human-seg" -q \
    --split-file "$here/../splits/human-seg-heldout.txt" --json "$out/n$n-heldout.json"
done
