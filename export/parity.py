"""The parity gate: an exported graph against the PyTorch model it came from.

Each case feeds the graph uint8 pixels and a top-k budget, then runs PyTorch
in float32 on the same pixels twice:
- with the graph's own patch selection forced (`patches=`), which compares the
  arithmetic of the coarse network, the gathers, the refiner and the scatter
  exactly, and gives the gated alpha and foreground errors;
- with PyTorch choosing its own patches, which checks the selection: every
  patch the graph picked must score within `score_tolerance` of PyTorch's k-th
  best. Top-k between two nearly equal scores may go either way in two
  runtimes, and that is not an error; picking a low-scoring patch is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from matting.config import ModelConfig
from matting.models.network import MattingNet
from matting.runtime.base import default_num_patches
from matting.runtime.manifest import (
    INPUT_BACKGROUND,
    INPUT_IMAGE,
    INPUT_NUM_PATCHES,
    ParityRecord,
)

Runner = Callable[[dict[str, np.ndarray]], list[np.ndarray]]
Kind = Literal["random", "scene"]


@dataclass(frozen=True)
class ParityCase:
    name: str
    batch: int
    height: int
    width: int
    num_patches: int | None = None  # None: the model's default budget for the size
    kind: Kind = "scene"
    seed: int = 0


def default_cases(config: ModelConfig) -> list[ParityCase]:
    """512x512, HD and an odd size, random and real-looking, with k varied."""
    del config  # every model takes the same cases; kept for model-specific cases later
    return [
        ParityCase("512-scene", 1, 512, 512, None, "scene", 1),
        ParityCase("512-random-k37", 1, 512, 512, 37, "random", 2),
        ParityCase("hd-scene", 1, 1080, 1920, None, "scene", 3),
        ParityCase("hd-random-k5000", 1, 1080, 1920, 5000, "random", 4),
        ParityCase("odd-scene-b2-k777", 2, 750, 1000, 777, "scene", 5),
        ParityCase("odd-random-k0", 1, 750, 1000, 0, "random", 6),
        ParityCase("odd-portrait-all", 1, 1000, 750, 10**9, "scene", 7),
    ]


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: random colours on a coarse grid, resized bicubically."""
    grid = (rng.random((cells, cells, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def scene_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A real-looking (H, W, 3) uint8 picture: a smooth, textured backdrop and a
    subject (an ellipse with a ragged, stranded edge) in other colours and
    grain, so that the model sees edges, flat areas and fine structure."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * rng.uniform(0.4, 0.6), width * rng.uniform(0.4, 0.6)
    ry, rx = height * rng.uniform(0.25, 0.4), width * rng.uniform(0.15, 0.3)
    angle = np.arctan2(yy - cy, xx - cx)
    ragged = 1.0 + 0.08 * np.sin(angle * rng.integers(20, 60)) + 0.04 * np.sin(angle * 7)
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) / ragged
    alpha = np.clip((1.05 - r) / 0.1, 0.0, 1.0)[..., None]
    back = _smooth_field(rng, height, width, 6) * 0.8 + _smooth_field(rng, height, width, 40) * 0.2
    subject = _smooth_field(rng, height, width, 10) * 0.7 + 0.15
    grain = rng.normal(0.0, 0.02, (height, width, 1)).astype(np.float32)
    img = alpha * subject + (1.0 - alpha) * back + grain
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def case_images(case: ParityCase) -> np.ndarray:
    """(B, H, W, 3) uint8 for a case, the same on every call."""
    rng = np.random.default_rng(case.seed)
    shape = (case.batch, case.height, case.width, 3)
    if case.kind == "random":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return np.stack([scene_image(rng, case.height, case.width) for _ in range(case.batch)])


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0


def case_feed(case: ParityCase, config: ModelConfig, sparse: bool) -> dict[str, np.ndarray]:
    """The graph inputs for a case, by the names of export.graph."""
    images = case_images(case)
    feed = {INPUT_IMAGE: images}
    if config.background_input:
        # A plate that matches the image except over the subject is what the
        # background-guided mode is for; the far half of a mirror image will do.
        feed[INPUT_BACKGROUND] = np.ascontiguousarray(images[:, :, ::-1])
    if sparse:
        k = case.num_patches
        if k is None:
            k = default_num_patches(case.height, case.width, config)
        feed[INPUT_NUM_PATCHES] = np.array(k, dtype=np.int64)
    return feed


OUTLIER = 0.05


def _alpha_stats(ours: np.ndarray, ref: torch.Tensor) -> dict[str, float]:
    err = np.abs(ours - ref.numpy())
    return {
        "max_alpha_error": float(err.max()),
        "mean_alpha_error": float(err.mean()),
        "outlier_fraction": float((err > OUTLIER).mean()),
    }


def _kth_scores(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(B, 1, Hq, Wq) -> (B,) the k-th highest score of each image."""
    flat = scores.flatten(1)
    k = max(1, min(k, flat.shape[1]))
    return flat.topk(k, dim=1).values[:, -1]


@torch.inference_mode()
def check_case(run: Runner, model: MattingNet, case: ParityCase, sparse: bool) -> ParityRecord:
    """Run one case through the graph and through PyTorch float32.

    `run` maps the graph's input names to its outputs: [alpha, foreground] and,
    for the sparse graph, patches. `model` must be the float32 source model.
    """
    ref = model.eval()
    feed = case_feed(case, model.config, sparse)
    outs = run(feed)
    alpha_g = outs[0].astype(np.float32)
    fg_g = outs[1].astype(np.float32)
    x = _tensor(feed[INPUT_IMAGE])
    bg = _tensor(feed[INPUT_BACKGROUND]) if INPUT_BACKGROUND in feed else None
    if not sparse:
        dense = ref(x, bg, refine_mode="full")
        return ParityRecord(
            case=case.name,
            batch=case.batch,
            height=case.height,
            width=case.width,
            num_patches=None,
            **_alpha_stats(alpha_g, dense.alpha),
            max_foreground_error=float(np.abs(fg_g - dense.foreground.numpy()).max()),
        )
    k = int(feed[INPUT_NUM_PATCHES])
    picked = torch.from_numpy(outs[2].astype(np.int64))
    free = ref(x, bg, refine_mode="topk", num_patches=k)
    forced = ref(x, bg, refine_mode="topk", patches=picked)
    assert free.patch_scores is not None  # top-k mode always scores
    scores = free.patch_scores
    cells = scores.shape[-2] * scores.shape[-1]
    expected = case.batch * max(0, min(k, cells))
    if picked.shape[0] != expected or torch.unique(picked, dim=0).shape[0] != expected:
        gap = float("inf")  # wrong number of patches, or repeats: never a valid top-k
    elif expected == 0:
        gap = 0.0
    else:
        kth = _kth_scores(scores, k)
        own = scores[picked[:, 0], 0, picked[:, 1], picked[:, 2]]
        gap = float((kth[picked[:, 0]] - own).clamp(min=0.0).max())
    ours = {tuple(p) for p in picked.tolist()}
    theirs = {tuple(p) for p in free.patches.tolist()}
    agreement = len(ours & theirs) / len(theirs) if theirs else float(not ours)
    return ParityRecord(
        case=case.name,
        batch=case.batch,
        height=case.height,
        width=case.width,
        num_patches=k,
        **_alpha_stats(alpha_g, forced.alpha),
        max_foreground_error=float(np.abs(fg_g - forced.foreground.numpy()).max()),
        score_gap=gap,
        selection_agreement=agreement,
        free_alpha_error=float(np.abs(alpha_g - free.alpha.numpy()).max()),
    )


def run_parity(
    run: Runner,
    model: MattingNet,
    cases: Sequence[ParityCase],
    *,
    sparse: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[ParityRecord]:
    records = []
    for case in cases:
        if progress is not None:
            progress(case.name)
        records.append(check_case(run, model, case, sparse))
    return records


@dataclass(frozen=True)
class Gate:
    """Parity bounds. float32 is held to its max error; float16 to its mean and
    outlier share, because a steep edge may flip single pixels under its rounding."""

    max_alpha: float
    mean_alpha: float
    outliers: float
    max_foreground: float
    score: float


def parity_failures(records: Sequence[ParityRecord], gate: Gate) -> list[str]:
    """One line per bound a case breaks; empty when all pass. `not <=` catches NaN."""
    bad = []
    for r in records:
        checks = [
            ("max alpha error", r.max_alpha_error, gate.max_alpha),
            ("mean alpha error", r.mean_alpha_error, gate.mean_alpha),
            ("share of pixels off by > 0.05", r.outlier_fraction, gate.outliers),
            ("max foreground error", r.max_foreground_error, gate.max_foreground),
        ]
        bad += [
            f"{r.case}: {what} {v:.3g} > {bound:g}" for what, v, bound in checks if not v <= bound
        ]
        if r.score_gap is not None and not r.score_gap <= gate.score:
            bad.append(
                f"{r.case}: picked a patch {r.score_gap:.3g} below the k-th best score "
                f"(tolerance {gate.score:g})"
            )
    return bad
