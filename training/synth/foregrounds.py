"""Procedural foregrounds with exact alpha for the three AIM image types (seed 004).

"opaque" (SO): portraits, animals and blobs with an opaque interior and hair or fur edges.
"transparent" (STM): glass, lace and nets, plastic bags; no opaque interior.
"nonsalient" (NS): smoke, fog, rain and snow spread over the whole frame.

Every generator builds its colour and coverage layer by layer and flattens them with `over`, so
A * F + (1 - A) * B is exactly the rendered image over any background B, and F is a sensible
colour everywhere, also where A is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from training.synth.draw import check_size
from training.synth.nonsalient import nonsalient
from training.synth.opaque import opaque
from training.synth.transparent import transparent

Kind = Literal["opaque", "transparent", "nonsalient"]
KINDS: tuple[Kind, ...] = ("opaque", "transparent", "nonsalient")
# SO dominates real matting data; STM and NS are rarer but need to be seen.
KIND_WEIGHTS: tuple[float, ...] = (0.6, 0.25, 0.15)

_BUILDERS = {"opaque": opaque, "transparent": transparent, "nonsalient": nonsalient}


@dataclass(frozen=True)
class Foreground:
    """Straight (not premultiplied) colour and alpha of one generated foreground."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray  # (H, W) float32 in [0, 1]
    kind: Kind


def generate_foreground(
    rng: np.random.Generator, size: tuple[int, int], kind: Kind | None = None
) -> Foreground:
    """One random foreground of `size` (height, width); `kind` None draws one by KIND_WEIGHTS.

    Deterministic for a given generator state.
    """
    h, w = check_size(size)
    if kind is None:
        kind = KINDS[rng.choice(len(KINDS), p=KIND_WEIGHTS)]
    elif kind not in _BUILDERS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    rgb, alpha = _BUILDERS[kind](rng, (h, w))
    # Builders work channel-first: per-pixel maps broadcast over (3, H, W) without the slow
    # length-3 inner loops that (H, W, 3) arrays would need.
    return Foreground(
        rgb=np.ascontiguousarray(np.clip(rgb, 0.0, 1.0).transpose(1, 2, 0), dtype=np.float32),
        alpha=np.clip(alpha, 0.0, 1.0).astype(np.float32, copy=False),
        kind=kind,
    )
