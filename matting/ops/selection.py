"""Which patches the refiner works on.

All selections work on the patch grid, one cell per refined patch (4x4 full
resolution pixels), and return a PatchIndex.
- top-k of the error map (seed 002): a fixed budget per image;
- the transition band (seed 000): every cell where lo < alpha < hi, dilated,
  so the cost follows the amount of edge rather than the image area;
- every cell, for checks against dense refinement.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from matting.ops.patches import PatchIndex

THRESHOLD_STEPS = 24


def _from_flat(flat: Tensor, batch: Tensor, grid_width: int) -> PatchIndex:
    return PatchIndex(batch, flat // grid_width, flat % grid_width)


def select_topk(score: Tensor, k: int | Tensor) -> PatchIndex:
    """The k highest cells of each image. score: (B, 1, Hq, Wq); returns B*k patches.

    k is clamped to [0, Hq*Wq]. A 0-dim tensor k (export) stays a graph value and
    selects by threshold (select_by_threshold) rather than with TopK.
    """
    b, _, hq, wq = score.shape
    if isinstance(k, Tensor):
        return select_by_threshold(score, torch.clamp(k.reshape(()), min=0, max=hq * wq))
    kk = max(0, min(int(k), hq * wq))
    flat = score.reshape(b, hq * wq).topk(kk, dim=1, sorted=False).indices
    batch = torch.arange(b, device=score.device).view(b, 1).expand(b, kk)
    return _from_flat(flat.reshape(-1), batch.reshape(-1), wq)


def select_by_threshold(score: Tensor, k: Tensor, iterations: int = THRESHOLD_STEPS) -> PatchIndex:
    """The k highest cells of each image, found by bisecting a score threshold.

    score: (B, 1, Hq, Wq) with values in [-1, 1] (error in [0, 1], -1 on padding);
    k: 0-dim int64 in [0, Hq*Wq]. Returns exactly B*k patches, image by image in
    cell order.

    Exported graphs select this way because TensorRT's TopK takes k <= 3840, far
    below a 4K budget (20736 at 4%). Each bisection step counts the cells above
    the midpoint per image: `hi` keeps at most k cells above it, `lo` at least k.
    After `iterations` halvings of the [min - 1, max] interval (24: about 2e-7,
    the float32 spacing at 1.0) every cell above `hi` is taken and the rest of
    the budget comes from the cells between `lo` and `hi` in cell order, so only
    scores closer than that spacing can be ranked differently from a sort.
    Counts are float32 (exact to 2^24 cells; 8K has 2.1M), the types every
    runtime takes for ReduceSum and CumSum.
    """
    b, _, hq, wq = score.shape
    n = hq * wq
    s = score.reshape(b, n).float()
    kf = k.to(torch.float32)
    lo = s.min(dim=1, keepdim=True).values - 1.0
    hi = s.max(dim=1, keepdim=True).values
    for _ in range(iterations):
        mid = (lo + hi) * 0.5
        at_most_k = (s > mid).float().sum(dim=1, keepdim=True) <= kf
        hi = torch.where(at_most_k, mid, hi)
        lo = torch.where(at_most_k, lo, mid)
    above = s > hi
    missing = kf - above.float().sum(dim=1, keepdim=True)
    band = (s > lo) & ~above
    chosen = above | (band & (band.float().cumsum(dim=1) <= missing))
    flat = chosen.reshape(-1).nonzero().reshape(-1)
    return _from_flat(flat % n, flat // n, wq)


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
