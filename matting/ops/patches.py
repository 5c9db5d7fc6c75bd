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
import torch.nn.functional as F
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


def _flat_index(batch: Tensor, pixels: Tensor, shape: torch.Size) -> Tensor:
    """Indices into x.reshape(-1) for x of `shape` (B, C, H, W).

    batch: (N,); pixels: (N, P, Q) offsets y*W + x inside one channel plane.
    Returns (N, C, P, Q). Indexing the flat tensor directly, rather than a
    channels-first transpose of it, costs no full-resolution copy, which in an
    exported graph would be a Transpose of the whole image on every call.
    """
    _, c, h, w = shape
    planes = torch.arange(c, device=pixels.device, dtype=pixels.dtype).view(1, c, 1, 1) * (h * w)
    return batch.view(-1, 1, 1, 1) * (c * h * w) + planes + pixels.unsqueeze(1)


def gather_windows(
    x: Tensor, batch: Tensor, rows: Tensor, cols: Tensor, zero_outside: bool = True
) -> Tensor:
    """Read pixel windows from x.

    x: (B, C, H, W); batch: (N,); rows: (N, P) and cols: (N, Q) pixel coordinates,
    which may fall outside the image: those read as 0, or, with zero_outside False,
    as the nearest edge pixel (for callers that give such reads zero weight).
    Returns (N, C, P, Q).
    """
    _, c, h, w = x.shape
    n, p, q = batch.shape[0], rows.shape[1], cols.shape[1]
    rows_in = torch.minimum(rows.clamp(min=0), torch.as_tensor(h - 1))
    cols_in = torch.minimum(cols.clamp(min=0), torch.as_tensor(w - 1))
    idx = _flat_index(batch, rows_in.unsqueeze(2) * w + cols_in.unsqueeze(1), x.shape)
    vals = x.reshape(-1).index_select(0, idx.reshape(-1)).reshape(n, c, p, q)
    if not zero_outside:
        return vals
    inside = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
    # where, not a multiply: an inf read outside the image must not become NaN.
    return torch.where(inside.unsqueeze(1), vals, vals.new_zeros(()))


def gather_patches(x: Tensor, index: PatchIndex, size: int, context: int = 0) -> Tensor:
    """Patches of `size` plus `context` pixels on each side: (N, C, size+2c, size+2c)."""
    rows = window_coords(index.row, size, context)
    cols = window_coords(index.col, size, context)
    return gather_windows(x, index.batch, rows, cols)


def _axis_weights(target: Tensor, src_size: int, dst_size: int) -> tuple[Tensor, Tensor]:
    """Bilinear weights along one axis, as F.interpolate(align_corners=False).

    target: (N, P) coordinates on a grid of dst_size resized from src_size.
    Returns the first source coordinate of each window, (N,), and the weights,
    (N, S, P), of the S consecutive source pixels from there (source-major, the
    order the window matmul consumes). Targets outside
    [0, dst_size) get zero weights: the resized image reads as zero-padded.
    """
    scale = src_size / dst_size
    s = ((target.to(torch.float32) + 0.5) * scale - 0.5).clamp(min=0.0)
    lo = torch.minimum(s.floor().to(torch.int64), torch.as_tensor(src_size - 1))
    hi = torch.minimum(lo + 1, torch.as_tensor(src_size - 1))
    frac = s - lo.to(torch.float32)
    inside = ((target >= 0) & (target < dst_size)).to(torch.float32)
    # lo is non-decreasing along a window, so its first entry starts the span,
    # and hi - lo[0] <= (P - 1) * scale + 2 bounds its length. Integer arithmetic
    # keeps the span a graph value when the sizes are traced.
    start = lo[:, :1]
    span = (target.shape[1] - 1) * src_size // dst_size + 3
    taps = torch.arange(span, device=target.device).view(1, span, 1)
    w_lo = (taps == (lo - start).unsqueeze(1)).to(torch.float32) * (1.0 - frac).unsqueeze(1)
    w_hi = (taps == (hi - start).unsqueeze(1)).to(torch.float32) * frac.unsqueeze(1)
    return start.squeeze(1), (w_lo + w_hi) * inside.unsqueeze(1)


def sample_windows(
    x: Tensor, out_size: tuple[int, int], batch: Tensor, rows: Tensor, cols: Tensor
) -> Tensor:
    """Windows of F.interpolate(x, out_size, mode="bilinear"), computed only where read.

    x: (B, C, h, w); rows (N, P) and cols (N, Q) are coordinates on the resized
    (out_size) grid; outside it values are 0, as if the resized image were
    zero-padded. Returns (N, C, P, Q) and never builds the resized image: each
    window reads only the few source pixels under it and applies its bilinear
    weights in one batched matmul.
    """
    n, c = batch.shape[0], x.shape[1]
    p, q = rows.shape[1], cols.shape[1]
    y0, wy = _axis_weights(rows, x.shape[-2], out_size[0])  # (N,), (N, sy, P)
    x0, wx = _axis_weights(cols, x.shape[-1], out_size[1])  # (N,), (N, sx, Q)
    sy, sx = wy.shape[1], wx.shape[1]
    # Taps past the source edge carry zero weight, so they may read the clamped
    # edge pixel: no mask over the window.
    src = gather_windows(
        x,
        batch,
        y0.unsqueeze(1) + torch.arange(sy, device=x.device),
        x0.unsqueeze(1) + torch.arange(sx, device=x.device),
        zero_outside=False,
    )  # (N, C, sy, sx)
    # The separable weights as one (sy*sx, P*Q) matrix per window (their outer
    # product): a single matmul then yields channels-first windows, with no
    # transpose of the result, which at 4K costs more than the matmul itself.
    k = wy.reshape(n, sy, 1, p, 1) * wx.reshape(n, 1, sx, 1, q)
    out = torch.bmm(src.reshape(n, c, sy * sx), k.reshape(n, sy * sx, p * q).to(x.dtype))
    return out.reshape(n, c, p, q)


def half_resolution(x: Tensor, channels: int) -> Tensor:
    """(B, C, H, W) with H and W even -> (B, C, H/2, W/2); channels is C as a
    Python int, so that an exported graph gets a kernel of known shape.

    Equal to bilinear resizing by 1/2 with align_corners=False: every output
    pixel sits at the centre of a 2x2 block and weighs it 1/4 each. Written as a
    depthwise strided convolution, which ONNX Runtime runs 2-3x faster at 4K than
    AveragePool or a reshape-mean.
    """
    weight = torch.full((channels, 1, 2, 2), 0.25, dtype=x.dtype, device=x.device)
    return F.conv2d(x, weight, stride=2, groups=channels)


def scatter_patches(x: Tensor, patches: Tensor, index: PatchIndex) -> Tensor:
    """Write square patches back into x and return the result (x is not modified).

    x: (B, C, H, W); patches: (N, C, s, s) placed at pixel (row*s, col*s) of
    image `batch`. Patches must not overlap and must lie inside x.
    """
    s = patches.shape[-1]
    rows = window_coords(index.row, s, 0)
    cols = window_coords(index.col, s, 0)
    idx = _flat_index(index.batch, rows.unsqueeze(2) * x.shape[-1] + cols.unsqueeze(1), x.shape)
    out = x.reshape(-1).scatter(0, idx.reshape(-1), patches.reshape(-1).to(x.dtype))
    return out.reshape(x.shape)
