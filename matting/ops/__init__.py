"""Sparse patch operations: padding, selection, gather and scatter."""

from matting.ops.padding import box_downsample, coarse_scale, pad_to_multiple, padded_size
from matting.ops.patches import (
    PatchIndex,
    gather_patches,
    gather_windows,
    half_resolution,
    sample_windows,
    scatter_patches,
    window_coords,
)
from matting.ops.selection import (
    select_all,
    select_band,
    select_mask,
    select_topk,
    transition_band,
)

__all__ = [
    "PatchIndex",
    "box_downsample",
    "coarse_scale",
    "gather_patches",
    "gather_windows",
    "half_resolution",
    "pad_to_multiple",
    "padded_size",
    "sample_windows",
    "scatter_patches",
    "select_all",
    "select_band",
    "select_mask",
    "select_topk",
    "transition_band",
    "window_coords",
]
