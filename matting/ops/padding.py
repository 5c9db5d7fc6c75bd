"""Padding to a multiple, the power-of-two scale of the coarse stage, and the
box downsampling by that scale.

Each function takes Python ints in eager mode and 0-dim tensors while tracing
for ONNX export, where image sizes are symbolic: the arithmetic sticks to
non-negative integer ops, which export to the same numbers for any size.
"""

from __future__ import annotations

from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor

Size = TypeVar("Size", int, Tensor)

# Traced graphs handle scales up to 2**MAX_SCALE_LOG2 (long side 256 * 256 = 65536
# pixels at the smallest coarse_long_side), far beyond any accepted image.
MAX_SCALE_LOG2 = 8


def padded_size(size: Size, multiple: Size) -> Size:
    """Smallest multiple of `multiple` that is >= size."""
    return (size + multiple - 1) // multiple * multiple


def pad_to_multiple(x: Tensor, multiple: int | Tensor) -> Tensor:
    """Replicate-pad the bottom and right of (B, C, H, W) to multiples of `multiple`.

    Edge replication, unlike zeros, adds no artificial edge for the network to
    react to; the caller crops the padding off the outputs.
    """
    h, w = x.shape[-2:]
    # While tracing, sizes and `multiple` are tensors; the stubs only know ints.
    m = cast(int, multiple)
    ph, pw = padded_size(h, m) - h, padded_size(w, m) - w
    if isinstance(ph, int) and isinstance(pw, int) and ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def coarse_scale(height: Size, width: Size, long_side: int) -> Size:
    """Power-of-two factor f so that max(height, width) / f <= long_side.

    HD (1920) -> 4 and 4K (3840) -> 8 for long_side 512; small images -> 1.
    Traced sizes give f = 1 + sum_i 2^i [side > long_side * 2^i], the same
    number from integer comparisons only.
    """
    if isinstance(height, Tensor) or isinstance(width, Tensor):
        side = torch.maximum(torch.as_tensor(height), torch.as_tensor(width))
        f = torch.ones_like(side)
        for i in range(MAX_SCALE_LOG2):
            f = f + (side > long_side * 2**i).to(side.dtype) * 2**i
        return f
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    f = 1
    while max(height, width) > long_side * f:
        f *= 2
    return f


def box_downsample(x: Tensor, factor: int | Tensor) -> Tensor:
    """Mean over factor x factor blocks: (B, C, H, W) -> (B, C, H/f, W/f).

    H and W must be multiples of the factor. Eager mode uses avg_pool2d; a
    traced factor becomes a reshape and a mean, which ONNX takes with the
    factor as a graph value rather than a fixed kernel size.
    """
    if isinstance(factor, int):
        return F.avg_pool2d(x, factor) if factor > 1 else x
    b, c, h, w = x.shape
    f = cast(int, factor)  # a traced size: the stubs only know ints
    return x.reshape(b, c, h // f, f, w // f, f).mean(dim=(3, 5))
