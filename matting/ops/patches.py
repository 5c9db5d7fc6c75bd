"""Patch gather and scatter by index arithmetic.

A patch is named by (batch, row, col) on a grid of `size` x `size` cells, so
patch (b, r, c) covers pixels [r*size, (r+1)*size) x [c*size, (c+1)*size) of
image b. Gathers may add `context` pixels on every side; pixels outside the
image read as zero, which is what zero padding gives a dense convolution.

Every function works on whole index tensors: one Gather (index_select) or one
ScatterElements per call, no Python loop over patches and no padded copy of the
full-resolution image, so the cost follows the number of patches and the graph
exports to standard ONNX ops.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class PatchIndex(NamedTuple):
    """Selected patches as three 1-D int64 tensors of equal length N."""

    batch: Tensor
    row: Tensor
    col: Tensor

    @property
    def num_patches(self) -> int:
        return int(self.batch.shape[0])

    def stack(self) -> Tensor:
        """(N, 3) int64 [batch, row, col]."""
        return torch.stack([self.batch, self.row, self.col], dim=1)

    def slice(self, start: int, stop: int) -> PatchIndex:
        return PatchIndex(self.batch[start:stop], self.row[start:stop], self.col[start:stop])


def window_coords(index: Tensor, size: int, context: int, window: int | None = None) -> Tensor:
    """Pixel coordinates of each patch's window along one axis.

    index: (N,) patch row or column; returns (N, window) int64, starting at
    index*size - context. The window defaults to size + 2*context.
    """
    if window is None:
        window = size + 2 * context
    offsets = torch.arange(window, device=index.device, dtype=index.dtype) - context
    return index.unsqueeze(1) * size + offsets


def _flat_channels(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (C, B*H*W); a view when B == 1."""
    b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(c, b * h * w)


def _linear_index(batch: Tensor, rows: Tensor, cols: Tensor, height: int, width: int) -> Tensor:
    """(N,), (N, P), (N, Q) -> (N, P, Q) indices into a flattened (B*H*W) axis."""
    base = batch.view(-1, 1, 1) * (height * width)
    return base + rows.unsqueeze(2) * width + cols.unsqueeze(1)


def gather_windows(x: Tensor, batch: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Read pixel windows from x.

    x: (B, C, H, W); batch: (N,); rows: (N, P) and cols: (N, Q) pixel coordinates,
    which may fall outside the image (those read as 0). Returns (N, C, P, Q).
    """
    _, c, h, w = x.shape
    n, p, q = batch.shape[0], rows.shape[1], cols.shape[1]
    inside = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
    idx = _linear_index(batch, rows.clamp(0, h - 1), cols.clamp(0, w - 1), h, w)
    vals = _flat_channels(x).index_select(1, idx.reshape(-1)).reshape(c, n, p, q)
    # where, not a multiply: an inf read outside the image must not become NaN.
    return torch.where(inside.unsqueeze(1), vals.transpose(0, 1), vals.new_zeros(()))


def gather_patches(x: Tensor, index: PatchIndex, size: int, context: int = 0) -> Tensor:
    """Patches of `size` plus `context` pixels on each side: (N, C, size+2c, size+2c)."""
    rows = window_coords(index.row, size, context)
    cols = window_coords(index.col, size, context)
    return gather_windows(x, index.batch, rows, cols)


def _axis_weights(target: Tensor, src_size: int, dst_size: int) -> tuple[Tensor, Tensor]:
    """Bilinear weights along one axis, as F.interpolate(align_corners=False).

    target: (N, P) coordinates on a grid of dst_size resized from src_size.
    Returns the first source coordinate of each window, (N,), and the weights,
    (N, P, S), of the S consecutive source pixels from there. Targets outside
    [0, dst_size) get zero weights: the resized image reads as zero-padded.
    """
    scale = src_size / dst_size
    s = ((target.to(torch.float32) + 0.5) * scale - 0.5).clamp(min=0.0)
    lo = s.floor().to(torch.int64).clamp(max=src_size - 1)
    hi = (lo + 1).clamp(max=src_size - 1)
    frac = s - lo.to(torch.float32)
    inside = ((target >= 0) & (target < dst_size)).to(torch.float32)
    # lo is non-decreasing along a window, so its first entry starts the span,
    # and hi - lo[0] <= (P - 1) * scale + 2 bounds its length.
    start = lo[:, :1]
    span = int((target.shape[1] - 1) * scale) + 3
    taps = torch.arange(span, device=target.device).view(1, 1, span)
    w_lo = (taps == (lo - start).unsqueeze(2)).to(torch.float32) * (1.0 - frac).unsqueeze(2)
    w_hi = (taps == (hi - start).unsqueeze(2)).to(torch.float32) * frac.unsqueeze(2)
    return start.squeeze(1), (w_lo + w_hi) * inside.unsqueeze(2)


def sample_windows(
    x: Tensor, out_size: tuple[int, int], batch: Tensor, rows: Tensor, cols: Tensor
) -> Tensor:
    """Windows of F.interpolate(x, out_size, mode="bilinear"), computed only where read.

    x: (B, C, h, w); rows (N, P) and cols (N, Q) are coordinates on the resized
    (out_size) grid; outside it values are 0, as if the resized image were
    zero-padded. Returns (N, C, P, Q) and never builds the resized image: each
    window reads only the few source pixels under it, then two batched matmuls
    apply the separable row and column weights.
    """
    n, c = batch.shape[0], x.shape[1]
    p, q = rows.shape[1], cols.shape[1]
    y0, wy = _axis_weights(rows, x.shape[-2], out_size[0])
    x0, wx = _axis_weights(cols, x.shape[-1], out_size[1])
    sy, sx = wy.shape[2], wx.shape[2]
    src = gather_windows(
        x,
        batch,
        y0.unsqueeze(1) + torch.arange(sy, device=x.device),
        x0.unsqueeze(1) + torch.arange(sx, device=x.device),
    )  # (N, C, sy, sx)
    # Rows: (N, P, sy) @ (N, sy, C*sx) -> (N, P, C*sx).
    t = torch.bmm(wy.to(x.dtype), src.transpose(1, 2).reshape(n, sy, c * sx))
    # Columns: (N, P*C, sx) @ (N, sx, Q) -> (N, P*C, Q).
    out = torch.bmm(t.reshape(n, p * c, sx), wx.to(x.dtype).transpose(1, 2))
    return out.reshape(n, p, c, q).transpose(1, 2)


def scatter_patches(x: Tensor, patches: Tensor, index: PatchIndex) -> Tensor:
    """Write square patches back into x and return the result (x is not modified).

    x: (B, C, H, W); patches: (N, C, s, s) placed at pixel (row*s, col*s) of
    image `batch`. Patches must not overlap and must lie inside x.
    """
    b, c, h, w = x.shape
    s = patches.shape[-1]
    rows = window_coords(index.row, s, 0)
    cols = window_coords(index.col, s, 0)
    idx = _linear_index(index.batch, rows, cols, h, w).reshape(1, -1).expand(c, -1)
    src = patches.transpose(0, 1).reshape(c, -1).to(x.dtype)
    out = _flat_channels(x).scatter(1, idx, src)
    return out.reshape(c, b, h, w).transpose(0, 1)
