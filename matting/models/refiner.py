"""The sparse patch refiner of seed 002, with the spatial sparsity of seed 000.

For each selected 4x4 full-resolution patch:
1. read an 8x8 window at half resolution (the patch's 2x2 cells plus 3 pixels of
   context) of the coarse outputs [hidden, alpha, foreground residual], bilinearly
   resized, and of the image (and background), halved by 2x2 means (the same
   numbers as a bilinear resize at exactly 1/2);
2. C*BR24 - C*BR16 (3x3 convs without padding) shrink it to 4x4;
3. nearest upsampling to 8x8, concatenated with the 8x8 full-resolution window
   (the patch plus 2 pixels of context) of the image;
4. C*BR12 - C*4 shrink it to the 4x4 refined alpha and foreground residual.

`dense` runs the same layers over the whole image with zero padding: refining
every patch sparsely gives the same numbers, which is the test of the gathers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matting.config import ModelConfig
from matting.models.layers import conv_bn_act, init_weights
from matting.ops.patches import (
    PatchIndex,
    gather_patches,
    gather_windows,
    half_resolution,
    sample_windows,
    window_coords,
)

PATCH = 4  # full-resolution side of one refined patch
HALF_CONTEXT = 3  # context pixels of the half-resolution window (8 = 2 + 2*3)
FULL_CONTEXT = 2  # context pixels of the full-resolution window (8 = 4 + 2*2)
OUT_CHANNELS = 4  # alpha + foreground residual


def exporting() -> bool:
    """True while tracing or exporting: no branches on data-dependent sizes then."""
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


class PatchRefiner(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c1, c2, c3 = config.refiner_channels
        img = config.image_channels
        self.image_channels = img
        coarse = config.hidden_channels + OUT_CHANNELS
        self.stage1 = nn.Sequential(
            conv_bn_act(coarse + img, c1, 3, padding=0),
            conv_bn_act(c1, c2, 3, padding=0),
        )
        self.stage2 = nn.Sequential(
            conv_bn_act(c2 + img, c3, 3, padding=0),
            nn.Conv2d(c3, OUT_CHANNELS, 3),
        )
        init_weights(self)

    def refine_windows(self, half: Tensor, full: Tensor) -> Tensor:
        """half: (N, coarse+img, 8, 8); full: (N, img, 8, 8) -> (N, 4, 4, 4)."""
        x = self.stage1(half)
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.stage2(torch.cat([x, full], dim=1))

    def sparse(
        self, image: Tensor, coarse: Tensor, index: PatchIndex, chunk: int = 16384
    ) -> Tensor:
        """Refine the selected patches only.

        image: (B, img, H, W) full resolution, H and W multiples of 4;
        coarse: (B, hidden+4, h, w) coarse outputs. Returns (N, 4, 4, 4).
        In eager mode patches go through in chunks to bound memory at 4K-8K.
        """
        if exporting():  # one graph for any N, zero included
            return self._sparse(image, coarse, index)
        n = index.num_patches
        if n <= chunk:
            return self._sparse(image, coarse, index)
        parts = [self._sparse(image, coarse, index.slice(s, s + chunk)) for s in range(0, n, chunk)]
        return torch.cat(parts, dim=0)

    def _sparse(self, image: Tensor, coarse: Tensor, index: PatchIndex) -> Tensor:
        h, w = image.shape[-2:]
        half = (h // 2, w // 2)
        rows = window_coords(index.row, PATCH // 2, HALF_CONTEXT)
        cols = window_coords(index.col, PATCH // 2, HALF_CONTEXT)
        x = sample_windows(coarse, half, index.batch, rows, cols)
        # The image halves exactly (a 2x2 mean), once for all patches: cheaper at
        # 4K than resampling 17x17 full-resolution pixels per window.
        y = gather_windows(half_resolution(image, self.image_channels), index.batch, rows, cols)
        full = gather_patches(image, index, PATCH, FULL_CONTEXT)
        return self.refine_windows(torch.cat([x, y], dim=1), full)

    def dense(self, image: Tensor, coarse: Tensor) -> Tensor:
        """Refine every pixel with whole-image convolutions: (B, 4, H, W)."""
        h, w = image.shape[-2:]
        half = (h // 2, w // 2)
        x = F.interpolate(coarse, size=half, mode="bilinear", align_corners=False)
        y = half_resolution(image, self.image_channels)
        x = self.stage1(F.pad(torch.cat([x, y], dim=1), [HALF_CONTEXT] * 4))
        x = F.interpolate(x, size=(h + 2 * FULL_CONTEXT, w + 2 * FULL_CONTEXT), mode="nearest")
        return self.stage2(torch.cat([x, F.pad(image, [FULL_CONTEXT] * 4)], dim=1))
