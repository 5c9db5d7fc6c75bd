"""Tiny models and generated folders so trainer tests run in seconds on 2 cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TINY_MODEL = (
    "model_preset = 'realtime'\n"
    "model = { semantic_head = true, aspp_channels = 16, decoder_channels = [16, 16, 8], "
    "hidden_channels = 8, refiner_channels = [8, 8, 8] }\n"
)


def write_pairs(
    root: Path, first: str, second: str, n: int, size: tuple[int, int], seed: int
) -> Path:
    """n random photos in root/first and binary masks (an ellipse) in root/second."""
    rng = np.random.default_rng(seed)
    (root / first).mkdir(parents=True)
    (root / second).mkdir(parents=True)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        rgb = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        mask = (((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.25 * w)) ** 2 <= 1) * 255
        Image.fromarray(rgb).save(root / first / f"{i:03d}.jpg")
        Image.fromarray(mask.astype(np.uint8)).save(root / second / f"{i:03d}.png")
    return root


@pytest.fixture
def seg_folder(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "seg", "images", "masks", 5, (48, 64), 1)


def write_config(path: Path, body: str) -> Path:
    path.write_text(TINY_MODEL + body, encoding="utf-8")
    return path
