"""Atrous Spatial Pyramid Pooling (DeepLabV3) with the rates of seed 002, (3, 6, 9)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matting.models.layers import conv_bn_act


class ASPP(nn.Module):
    """A 1x1 branch, one dilated 3x3 branch per rate and an image-pooling branch,
    concatenated and projected back to `out_channels`. Shape-preserving."""

    def __init__(self, in_channels: int, out_channels: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_act(in_channels, out_channels, 1)]
            + [conv_bn_act(in_channels, out_channels, 3, dilation=r) for r in rates]
        )
        # No BatchNorm after global pooling: it would see one value per channel and
        # image, which breaks training at batch size 1.
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1),
            nn.ReLU(inplace=True),
        )
        self.project = conv_bn_act(out_channels * (len(rates) + 2), out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(F.interpolate(self.pool(x), size=x.shape[-2:], mode="nearest"))
        return self.project(torch.cat(outs, dim=1))
