"""The resumable state of a run: weights, optimiser, schedule, teacher, step.

Kept in OUTPUT/state.pt and replaced atomically, so a run killed at any moment
resumes from its last save and repeats exactly the steps after it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from matting.errors import CheckpointError
from matting.fileio import atomic_path

STATE_FILE = "state.pt"
STATE_VERSION = 1


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `total` (seed 003 uses cosine)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def save_state(folder: Path, payload: dict[str, Any]) -> Path:
    path = folder / STATE_FILE
    with atomic_path(path) as tmp:
        torch.save({"version": STATE_VERSION, **payload}, tmp)
    return path


def load_state(folder: Path) -> dict[str, Any] | None:
    path = folder / STATE_FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a damaged file
        raise CheckpointError(f"{path}: cannot read the training state: {e}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: not a training state this version can resume")
    return state
