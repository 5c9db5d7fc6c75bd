"""The module that is traced into ONNX: uint8 pixels in, alpha and foreground out.

The whole model runs inside one graph, the sparse refiner included:
- the coarse scale f is computed from the input size with integer ops, the
  image is edge-padded and box-downsampled by f (a reshape and a mean);
- the coarse network runs; its error map is upsampled to the patch grid;
- TopK picks `num_patches` cells per image (a graph input, so k changes per
  call without a new engine); Gather reads their windows, the refiner convolves
  only those, and ScatterElements writes the 4x4 results over the bilinearly
  upsampled coarse alpha;
- the padding is cropped off.

Pixels enter as uint8 NHWC, the layout decoders produce, so a 4K frame costs
25 MB instead of 100 MB to copy to a GPU; the cast and transpose are in the
graph. The dense variant refines every pixel with whole-image convolutions and
exists only to measure what sparsity saves.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from matting.models.network import MattingNet
from matting.runtime.manifest import (
    INPUT_BACKGROUND,
    INPUT_IMAGE,
    INPUT_NUM_PATCHES,
    OUTPUT_ALPHA,
    OUTPUT_FOREGROUND,
    OUTPUT_PATCHES,
)

Variant = Literal["sparse", "dense"]


def input_names(model: MattingNet, variant: Variant) -> list[str]:
    names = [INPUT_IMAGE]
    if model.config.background_input:
        names.append(INPUT_BACKGROUND)
    if variant == "sparse":
        names.append(INPUT_NUM_PATCHES)
    return names


def output_names(variant: Variant) -> list[str]:
    names = [OUTPUT_ALPHA, OUTPUT_FOREGROUND]
    if variant == "sparse":
        names.append(OUTPUT_PATCHES)
    return names


def dynamic_axes(model: MattingNet, variant: Variant) -> dict[str, dict[int, str]]:
    """Batch, height and width are free for every pixel tensor; k is free for patches."""
    nhwc = {0: "batch", 1: "height", 2: "width"}
    nchw = {0: "batch", 2: "height", 3: "width"}
    axes = {INPUT_IMAGE: nhwc, OUTPUT_ALPHA: nchw, OUTPUT_FOREGROUND: nchw}
    if model.config.background_input:
        axes[INPUT_BACKGROUND] = nhwc
    if variant == "sparse":
        axes[OUTPUT_PATCHES] = {0: "refined_patches"}
    return axes


def to_model_input(pixels: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) in [0, 1] at the compute precision."""
    return pixels.permute(0, 3, 1, 2).to(dtype) / 255.0


class ExportGraph(nn.Module):
    """image (B, H, W, 3) uint8 [, background (B, H, W, 3) uint8] [, num_patches ()
    int64] -> alpha (B, 1, H, W), foreground (B, 3, H, W) [, patches (B*k, 3) int64].

    Alpha and foreground come out at the compute precision (float32 or float16).
    """

    def __init__(self, model: MattingNet, variant: Variant = "sparse") -> None:
        super().__init__()
        if variant not in ("sparse", "dense"):
            raise ValueError(f"unknown graph variant {variant!r}; use sparse or dense")
        self.model = model
        self.variant = variant

    def forward(self, image: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        dtype = next(self.model.parameters()).dtype
        x = to_model_input(image, dtype)
        bg = None
        if self.model.config.background_input:
            bg, rest = to_model_input(rest[0], dtype), rest[1:]
        if self.variant == "dense":
            out = self.model(x, bg, refine_mode="full")
            return out.alpha, out.foreground
        out = self.model(x, bg, refine_mode="topk", num_patches=rest[0])
        return out.alpha, out.foreground, out.patches
