"""The shipped default model: present, small enough, and used when no checkpoint is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from matting.checkpoint import read_checkpoint_info
from matting.inference import DEFAULT_CHECKPOINT, default_checkpoint

REPO = Path(__file__).resolve().parents[2]
MAX_BYTES = 25 * 1024 * 1024


def test_default_model_is_shipped_and_small() -> None:
    assert DEFAULT_CHECKPOINT.is_file()
    assert DEFAULT_CHECKPOINT.stat().st_size <= MAX_BYTES
    info = read_checkpoint_info(DEFAULT_CHECKPOINT)
    assert info.config.semantic_head
    assert info.metadata["training"]["trainer"] == "mlb"


def test_default_checkpoint_honours_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MATTING_CHECKPOINT", raising=False)
    assert default_checkpoint() == DEFAULT_CHECKPOINT
    monkeypatch.setenv("MATTING_CHECKPOINT", str(tmp_path / "other.safetensors"))
    try:
        default_checkpoint()
    except Exception as e:  # a named but missing file is an error, not a silent fallback
        assert "other.safetensors" in str(e)
    else:
        raise AssertionError("a missing MATTING_CHECKPOINT was accepted")


def test_matting_image_uses_the_shipped_model_with_no_flags(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MATTING_CHECKPOINT"}
    out = tmp_path / "portrait.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "matting.cli",
            "image",
            str(REPO / "examples" / "portrait.jpg"),
            "-o",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        alpha = np.asarray(im)[..., 3].astype(np.float32) / 255
    with Image.open(REPO / "examples" / "portrait.jpg") as src:
        assert alpha.shape == (src.height, src.width)
    # A trained model separates the drawn figure from its backdrop: both clear
    # foreground and clear background exist (an untrained net gives a grey mush).
    assert (alpha > 0.9).mean() > 0.05 and (alpha < 0.1).mean() > 0.05
