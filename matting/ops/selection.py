"""Which patches the refiner works on.

All selections work on the patch grid, one cell per refined patch (4x4 full
resolution pixels), and return a PatchIndex.
- top-k of the error map (seed 002): a fixed budget per image;
- the transition band (seed 000): every cell where lo < alpha < hi, dilated,
  so the cost follows the amount of edge rather than the image area;
- every cell, for checks against dense refinement.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from matting.ops.patches import PatchIndex


def _from_flat(flat: Tensor, batch: Tensor, grid_width: int) -> PatchIndex:
    return PatchIndex(batch, flat // grid_width, flat % grid_width)


def select_topk(score: Tensor, k: int | Tensor) -> PatchIndex:
    """The k highest cells of each image. score: (B, 1, Hq, Wq); returns B*k patches.

    k is clamped to [0, Hq*Wq]; a 0-dim tensor k (export) stays a graph value.
    """
    b, _, hq, wq = score.shape
    if isinstance(k, Tensor):
        k = torch.clamp(k.reshape(()), min=0, max=hq * wq)
    else:
        k = max(0, min(int(k), hq * wq))
    kk = cast(int, k)  # a 0-dim tensor while exporting; the stubs only know ints
    flat = score.reshape(b, hq * wq).topk(kk, dim=1, sorted=False).indices
    batch = torch.arange(b, device=score.device).view(b, 1).expand(b, kk)
    return _from_flat(flat.reshape(-1), batch.reshape(-1), wq)


def select_mask(mask: Tensor) -> PatchIndex:
    """Every True cell. mask: (B, Hq, Wq) bool."""
    nz = mask.nonzero()
    return PatchIndex(nz[:, 0], nz[:, 1], nz[:, 2])


def transition_band(alpha: Tensor, low: float, high: float, dilation: int) -> Tensor:
    """Cells where low < alpha < high, grown by `dilation` cells (square structuring
    element). alpha: (B, 1, Hq, Wq); returns (B, Hq, Wq) bool."""
    band = ((alpha > low) & (alpha < high)).to(alpha.dtype)
    if dilation > 0:
        band = F.max_pool2d(band, 2 * dilation + 1, stride=1, padding=dilation)
    return band[:, 0] > 0


def select_band(alpha: Tensor, low: float, high: float, dilation: int) -> PatchIndex:
    """Cells of the dilated transition band of alpha: (B, 1, Hq, Wq)."""
    return select_mask(transition_band(alpha, low, high, dilation))


def select_all(batch: int, grid_height: int, grid_width: int, device: torch.device) -> PatchIndex:
    """Every cell of every image, in row-major order."""
    mask = torch.ones(batch, grid_height, grid_width, dtype=torch.bool, device=device)
    return select_mask(mask)
