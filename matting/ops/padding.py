"""Padding to a multiple and the power-of-two scale of the coarse stage."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def padded_size(size: int, multiple: int) -> int:
    """Smallest multiple of `multiple` that is >= size."""
    return -(-size // multiple) * multiple


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Replicate-pad the bottom and right of (B, C, H, W) to multiples of `multiple`.

    Edge replication, unlike zeros, adds no artificial edge for the network to
    react to; the caller crops the padding off the outputs.
    """
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def coarse_scale(height: int, width: int, long_side: int) -> int:
    """Power-of-two factor f so that max(height, width) / f <= long_side.

    HD (1920) -> 4 and 4K (3840) -> 8 for long_side 512; small images -> 1.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    f = 1
    while max(height, width) > long_side * f:
        f *= 2
    return f
