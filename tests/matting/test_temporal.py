"""Temporal sparsity: which cells change, what is carried over, and what the refiner skips."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from matting.checkpoint import save_checkpoint
from matting.models.network import build_model
from matting.runtime.base import patch_grid
from matting.runtime.torch_backend import TorchBackend
from matting.temporal import (
    TemporalMatter,
    cells_to_pixels,
    changed_cells,
    copy_cells,
    dilate_cells,
    influence_radius,
)
from tests.export.conftest import TINY


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("temporal") / "tiny.safetensors"
    save_checkpoint(path, build_model(TINY).eval())
    return path


def clip(frames: int = 4, h: int = 70, w: int = 90) -> list[np.ndarray]:
    """A static textured background with a bright square moving right by 6 px a frame."""
    rng = np.random.default_rng(1)
    bg = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = []
    for t in range(frames):
        f = bg.copy()
        f[20:40, 10 + 6 * t : 30 + 6 * t] = 250
        out.append(f)
    return out


def reach(cells: np.ndarray) -> np.ndarray:
    """Pixels recomputed for these changed cells: dilated by the coarse alpha's reach."""
    grown = dilate_cells(cells, influence_radius(70, 90, TINY.coarse_long_side))
    return cells_to_pixels(grown, 70, 90)


def test_changed_cells_marks_exactly_the_cells_over_the_threshold() -> None:
    ref = np.zeros((9, 10, 3), np.uint8)  # a 3x3 grid, the last row and column partial
    frame = ref.copy()
    frame[0, 0, 1] = 8  # 8 levels > 0.03 * 255 = 7.65
    frame[8, 9, 2] = 7  # in the partial corner cell, under the threshold
    frame[5, 5, 0] = 200
    got = changed_cells(frame, ref, 0.03)
    want = np.zeros((3, 3), bool)
    want[0, 0] = want[1, 1] = True
    np.testing.assert_array_equal(got, want)
    frame[8, 9, 2] = 8
    assert changed_cells(frame, ref, 0.03)[2, 2]
    assert cells_to_pixels(want, 9, 10).shape == (9, 10)
    assert cells_to_pixels(want, 9, 10)[4:8, 4:8].all()
    grown = dilate_cells(want, 1)
    assert grown.sum() == 9 and grown[2, 2] and grown[0, 2]


@pytest.mark.parametrize(("h", "w"), [(8, 12), (9, 14), (70, 90)])
@pytest.mark.parametrize("channels", [(), (3,)])
def test_copy_cells_copies_exactly_the_cells(h: int, w: int, channels: tuple[int, ...]) -> None:
    rng = np.random.default_rng(h * w)
    dst = rng.random((h, w, *channels)).astype(np.float32)
    src = rng.random((h, w, *channels)).astype(np.float32)
    cells = rng.random((-(-h // 4), -(-w // 4))) < 0.4
    cells[-1, -1] = True  # a partial corner cell
    mask = cells_to_pixels(cells, h, w)
    want = np.where(mask[..., None] if channels else mask, src, dst)
    copy_cells(dst, src, cells)
    np.testing.assert_array_equal(dst, want)


def test_threshold_zero_is_plain_per_frame_inference(checkpoint: Path) -> None:
    backend = TorchBackend(checkpoint, device="cpu", precision="fp32")
    matter = TemporalMatter(backend, 0.0)
    for frame in clip(3):
        alpha, fg, stats = matter(frame)
        plain = backend.infer(frame[None])
        np.testing.assert_array_equal(alpha, plain.alpha[0])
        np.testing.assert_array_equal(fg, plain.foreground[0])
        assert stats.changed == stats.cells


def test_unchanged_cells_keep_their_alpha_and_are_not_refined(checkpoint: Path) -> None:
    backend = TorchBackend(checkpoint, device="cpu", precision="fp32")
    matter = TemporalMatter(backend, 0.03)
    frames = clip(4)
    prev_alpha, _, first = matter(frames[0])
    assert first.changed == first.cells
    for prev, frame in itertools.pairwise(frames):
        alpha, _, stats = matter(frame)
        assert 0 < stats.changed < stats.cells
        assert stats.refined <= stats.changed
        keep = ~reach(changed_cells(frame, prev, 0.03))
        np.testing.assert_array_equal(alpha[keep], prev_alpha[keep])
        # What is recomputed is what plain per-frame inference gives there.
        plain = backend.infer(frame[None]).alpha[0]
        np.testing.assert_array_equal(alpha[~keep], plain[~keep])
        prev_alpha = alpha
    # A still frame runs nothing and returns the previous answer.
    alpha2, _, still = matter(frames[-1].copy())
    assert still.changed == still.refined == 0
    np.testing.assert_array_equal(alpha2, prev_alpha)


def test_slow_drift_is_caught_against_the_last_computed_pixels(checkpoint: Path) -> None:
    backend = TorchBackend(checkpoint, device="cpu", precision="fp32")
    matter = TemporalMatter(backend, 3 / 255)
    base = clip(1)[0]
    changed = []
    for step in range(6):  # one level a frame: never over 3 between frames, 4 after 4 frames
        f = base.copy()
        f[0:4, 0:4] = np.clip(base[0:4, 0:4].astype(int) + step, 0, 255).astype(np.uint8)
        changed.append(matter(f)[2].changed)
    radius = influence_radius(70, 90, TINY.coarse_long_side)
    assert changed[1:] == [0, 0, 0, (radius + 1) ** 2, 0]  # the corner cell and its reach


def test_active_limits_refinement_in_the_network(checkpoint: Path) -> None:
    backend = TorchBackend(checkpoint, device="cpu", precision="fp32")
    frame = clip(1)[0]
    gh, gw = patch_grid(70, 90, TINY)
    every = backend.infer(frame[None], active=np.ones((1, gh, gw), bool))
    plain = backend.infer(frame[None])
    np.testing.assert_array_equal(every.alpha, plain.alpha)
    some = np.zeros((1, gh, gw), bool)
    some[0, :5, :5] = True
    part = backend.infer(frame[None], active=some)
    # The same selection, less its inactive cells: active cells come out as without it.
    picked = {tuple(p) for p in plain.patches.tolist()}
    assert {tuple(p) for p in part.patches.tolist()} == {p for p in picked if p[1] < 5 and p[2] < 5}
    np.testing.assert_array_equal(part.alpha[0, :20, :20], plain.alpha[0, :20, :20])
    with pytest.raises(Exception, match="active must be"):
        backend.infer(frame[None], active=np.ones((1, gh + 1, gw), bool))


def test_a_backend_without_cell_limits_still_carries_over(checkpoint: Path) -> None:
    backend = TorchBackend(checkpoint, device="cpu", precision="fp32", variant="dense")
    assert not backend.supports_active
    matter = TemporalMatter(backend, 0.03)
    frames = clip(2)
    a0, _, _ = matter(frames[0])
    a1, _, stats = matter(frames[1])
    keep = ~reach(changed_cells(frames[1], frames[0], 0.03))
    np.testing.assert_array_equal(a1[keep], a0[keep])
    assert 0 < stats.changed < stats.cells
