#!/usr/bin/env bash
# Trains the default model: pre-train -> teacher -> MLB student, then the
# plain fine-tuning baseline of the same budget. Each stage resumes if stopped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python}"
for stage in pretrain teacher student finetune; do
  "$py" -m matting.cli train --config "$here/$stage.toml" --no-progress
done
# The shipped file: the student with its coarse alpha softened (MODEL_CARD.md,
# "Calibration"), so exported graphs agree with PyTorch at edge pixels.
"$py" -m training.calibrate "$here/../../runs/student/model.safetensors" \
  "$here/../../runs/student/model.calibrated.safetensors" --factor 1e-4
