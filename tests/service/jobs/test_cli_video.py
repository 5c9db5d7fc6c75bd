"""`matting video` as a user runs it: a subprocess, a progress bar, a file out, one clear line
on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from matting.checkpoint import save_checkpoint
from matting.models.network import build_model
from matting.videoio import probe, read_back
from tests.export.conftest import TINY
from tests.service.jobs import test_worker as clips


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli-video")
    torch.manual_seed(0)  # the same random model whichever tests ran before
    save_checkpoint(tmp / "tiny.safetensors", build_model(TINY).eval())
    clips.make_clip(tmp / "clip.mp4")
    Image.new("RGB", (50, 40), (250, 10, 10)).save(tmp / "red.png")
    return {"model": tmp / "tiny.safetensors", "clip": tmp / "clip.mp4", "red": tmp / "red.png"}


def video(*args: object) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "matting.cli", "video", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_prores_with_a_progress_bar(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cut.mov"
    r = video(files["clip"], "-o", out, "--model", files["model"], "--chunk-frames", 4)
    assert r.returncode == 0, r.stderr
    assert "clip.mp4: 100%" in r.stderr and "frame/s" in r.stderr  # tqdm's bar
    assert probe(out).frame_count == clips.FRAMES and probe(out).has_audio
    alphas = [a for _, a in read_back(out, "prores")]
    assert len(alphas) == clips.FRAMES and 0 < np.mean(alphas) < 255


def test_composite_over_an_image(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "over.mp4"
    r = video(files["clip"], "-o", out, "--model", files["model"], "--background", files["red"])
    assert r.returncode == 0, r.stderr
    rgb = np.stack([f for f, _ in read_back(out, "composite")]).astype(np.float64)
    assert rgb.shape[0] == clips.FRAMES and rgb[..., 0].mean() > rgb[..., 1].mean() + 40


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["-o", "x.webm", "--background", "RED"], "--background applies only to a composite"),
        (["-o", "x.gif"], "the extension must be one of"),
        (["-o", "x.mp4", "--background-color", "blue-ish"], "is not #RRGGBB"),
    ],
)
def test_bad_requests_fail_with_one_line(
    files: dict[str, Path], tmp_path: Path, extra: list[str], words: str
) -> None:
    args = [str(files["red"]) if a == "RED" else a for a in extra]
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    r = video(files["clip"], *args, "--model", files["model"])
    assert r.returncode == 1, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr


def test_a_file_that_is_no_video(files: dict[str, Path], tmp_path: Path) -> None:
    r = video(files["red"], "-o", tmp_path / "x.webm", "--model", files["model"])
    assert r.returncode == 1 and "error:" in r.stderr and "Traceback" not in r.stderr
