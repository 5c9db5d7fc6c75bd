"""Temporal sparsity for video (seed 000): refine only the patches whose pixels changed.

A 4x4 patch whose input pixels moved by no more than a threshold since the patch was last
computed, and that is not within reach of one that did (through the upsampled coarse alpha),
keeps the alpha and foreground it had then, and the refiner skips it. Each patch is
compared with the pixels it was last computed from, not with the previous frame, so a slow
drift below the threshold per frame still triggers a recompute once it adds up.

The model holds no state: a video job owns a TemporalMatter per chunk and starts a fresh one
at every chunk boundary, so a chunk's output depends only on its own frames and a job resumed
at chunk c gives the same result as an uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from matting.ops.padding import coarse_scale
from matting.runtime.base import Backend, patch_grid

PATCH = 4


def changed_cells(frame: np.ndarray, reference: np.ndarray, threshold: float) -> np.ndarray:
    """(ceil(H/4), ceil(W/4)) bool: cells where some channel of some pixel differs from the
    reference by more than threshold (0-1). frame, reference: (H, W, 3) uint8."""
    if frame.shape != reference.shape:
        raise ValueError(f"frame {frame.shape} and reference {reference.shape} differ")
    h, w = frame.shape[:2]
    # torch runs the full-resolution difference on all cores; numpy would use one
    a = torch.from_numpy(frame).to(torch.int16)
    b = torch.from_numpy(reference).to(torch.int16)
    diff = (a - b).abs_().amax(dim=2)
    gh, gw = -(-h // PATCH), -(-w // PATCH)
    diff = torch.nn.functional.pad(diff, (0, gw * PATCH - w, 0, gh * PATCH - h))
    cells = diff.view(gh, PATCH, gw, PATCH).amax(dim=(1, 3))
    return (cells.float() > threshold * 255.0).numpy()


def dilate_cells(cells: np.ndarray, radius: int) -> np.ndarray:
    """cells (Hq, Wq) bool grown by `radius` cells in every direction (a square window)."""
    if radius <= 0:
        return cells
    t = torch.from_numpy(cells).to(torch.float32)[None, None]
    grown = torch.nn.functional.max_pool2d(t, 2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0].numpy() > 0


def influence_radius(height: int, width: int, coarse_long_side: int) -> int:
    """Cells around a changed cell whose output can change with it: the coarse alpha is
    upsampled bilinearly from pixels f apart, so a change reaches about f pixels (f/4 cells)
    away; the refiner's windows read 4 pixels of context, within one cell. With several
    coarse scales, pass the smallest side: its factor reaches furthest."""
    f = int(coarse_scale(height, width, coarse_long_side))
    return max(1, -(-f // PATCH))


def _cells(x: np.ndarray) -> np.ndarray:
    """A writeable view (H//4, W//4, 4, 4, ...) of the whole 4x4 cells of x (H, W, ...)."""
    h, w = x.shape[:2]
    s0, s1 = x.strides[:2]
    shape = (h // PATCH, w // PATCH, PATCH, PATCH, *x.shape[2:])
    strides = (PATCH * s0, PATCH * s1, s0, s1, *x.strides[2:])
    return np.lib.stride_tricks.as_strided(x, shape, strides)


def copy_cells(dst: np.ndarray, src: np.ndarray, cells: np.ndarray) -> None:
    """dst[p] = src[p] for the pixels p of the True cells. dst, src: (H, W, ...) alike;
    cells: (ceil(H/4), ceil(W/4)) bool. Touches only those cells, not the whole frame."""
    h, w = dst.shape[:2]
    hq, wq = h // PATCH, w // PATCH
    rows, cols = np.nonzero(cells[:hq, :wq])
    _cells(dst)[rows, cols] = _cells(src)[rows, cols]
    if hq * PATCH == h and wq * PATCH == w:
        return
    mask = cells_to_pixels(cells, h, w)  # the partial cells on the bottom and right edges
    if dst.ndim == 3:
        mask = mask[..., None]
    if hq * PATCH < h:
        np.copyto(dst[hq * PATCH :], src[hq * PATCH :], where=mask[hq * PATCH :])
    if wq * PATCH < w:
        np.copyto(dst[:, wq * PATCH :], src[:, wq * PATCH :], where=mask[:, wq * PATCH :])


def cells_to_pixels(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) bool from a cell mask on the 4x4 grid (cropped to the image)."""
    return np.repeat(np.repeat(cells, PATCH, axis=0), PATCH, axis=1)[:height, :width]


@dataclass(frozen=True)
class FrameStats:
    cells: int  # patch cells of the image
    changed: int  # cells recomputed this frame (all of them on the first frame)
    refined: int  # cells the refiner ran on


class TemporalMatter:
    """Mattes consecutive frames of one chunk, carrying unchanged patches over.

    threshold 0 turns temporal sparsity off: every frame is matted in full, as an image.
    Backends that cannot limit refinement to cells (exported graphs) still carry unchanged
    patches over, which keeps them stable, but save no refiner work.
    """

    def __init__(self, backend: Backend, threshold: float) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.backend, self.threshold = backend, threshold
        self._reference: np.ndarray | None = None
        self._alpha: np.ndarray | None = None
        self._foreground: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, FrameStats]:
        """frame (H, W, 3) uint8 -> alpha (H, W), foreground (H, W, 3) float32, stats."""
        h, w = frame.shape[:2]
        cells = -(-h // PATCH) * -(-w // PATCH)
        if self.threshold == 0.0 or self._reference is None or self._reference.shape != frame.shape:
            out = self.backend.infer(frame[None])
            alpha, fg = out.alpha[0], out.foreground[0]
            if self.threshold:  # the state is updated in place; the caller keeps its arrays
                self._reference = frame.copy()
                self._alpha, self._foreground = alpha.copy(), fg.copy()
            return alpha, fg, FrameStats(cells, cells, out.patches.shape[0])
        assert self._alpha is not None and self._foreground is not None
        assert self._reference is not None
        changed = changed_cells(frame, self._reference, self.threshold)
        if not changed.any():  # a still frame: nothing to run
            return self._alpha.copy(), self._foreground.copy(), FrameStats(cells, 0, 0)
        # Recompute the neighbours a change reaches through the upsampled coarse alpha too,
        # or a stale halo would trail a moving edge.
        model = self.backend.info.model
        changed = dilate_cells(changed, influence_radius(h, w, model.coarse_sides()[0]))
        n_changed = int(changed.sum())
        active = None
        if self.backend.supports_active:
            gh, gw = patch_grid(h, w, model)
            active = np.zeros((1, gh, gw), np.bool_)
            active[0, : changed.shape[0], : changed.shape[1]] = changed
        out = self.backend.infer(frame[None], active=active)
        # Only the recomputed cells are copied into the carried-over state.
        copy_cells(self._alpha, out.alpha[0], changed)
        copy_cells(self._foreground, out.foreground[0], changed)
        copy_cells(self._reference, frame, changed)
        alpha, fg = self._alpha.copy(), self._foreground.copy()
        return alpha, fg, FrameStats(cells, n_changed, out.patches.shape[0])
