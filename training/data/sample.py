"""One training sample before batch augmentation, and the crop that makes it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

KIND_CODES = {"opaque": 0, "transparent": 1, "nonsalient": 2}


@dataclass
class Sample:
    """Tensors at the crop size, channels first, floats in [0, 1].

    For composited data fg and bg are the layers and the image is made from
    them after augmentation. For photographs with a label (segmentation, or
    image + alpha) fg and bg are both the photograph, so the same compositing
    gives it back unchanged.
    """

    fg: Tensor  # (3, S, S)
    bg: Tensor  # (3, S, S)
    alpha: Tensor  # (1, S, S)
    semantic: Tensor  # (S, S) int64: 0 background, 1 transition, 2 foreground
    exact: bool  # alpha is a true matte (not a binary segmentation mask)
    layers: bool  # fg and bg are separate layers (composition losses apply)
    kind: int  # KIND_CODES of the foreground type


def to_tensor(x: np.ndarray) -> Tensor:
    """(H, W) or (H, W, C) array -> (C, H, W) float32 tensor (uint8 scaled to [0, 1])."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)


def scale_and_crop(
    layers: list[Tensor], crop: int, long_side: float, rng: np.random.Generator
) -> list[Tensor]:
    """Resize (C, H, W) tensors of one size so the long side is `long_side`, then
    take the same random crop x crop window of all of them, padding by edge
    replication where the image is smaller (a replicated edge adds no new shape)."""
    h, w = layers[0].shape[-2:]
    s = long_side / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    out = []
    for t in layers:
        x = F.interpolate(
            t.unsqueeze(0), size=(nh, nw), mode="bilinear", align_corners=False, antialias=s < 1
        )
        ph, pw = max(0, crop - nh), max(0, crop - nw)
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        out.append(x[0])
    hh, ww = out[0].shape[-2:]
    top = int(rng.integers(0, hh - crop + 1))
    left = int(rng.integers(0, ww - crop + 1))
    return [x[:, top : top + crop, left : left + crop].clamp(0.0, 1.0) for x in out]
