"""The U-Net decoder of seed 002: CBR128 - CBR64 - CBR48 - C37.

Before each conv the running tensor is upsampled bilinearly to the next skip's
size and concatenated with it; the last skip is the network input itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matting.models.layers import conv_bn_act


class Decoder(nn.Module):
    def __init__(
        self,
        in_channels: int,
        skip_channels: tuple[int, int, int, int],
        widths: tuple[int, int, int],
        out_channels: int,
    ) -> None:
        """skip_channels: channels at strides 8, 4, 2 and of the input (stride 1)."""
        super().__init__()
        convs: list[nn.Module] = []
        cin = in_channels
        for skip, width in zip(skip_channels[:3], widths, strict=True):
            convs.append(conv_bn_act(cin + skip, width, 3))
            cin = width
        convs.append(nn.Conv2d(cin + skip_channels[3], out_channels, 3, padding=1))
        self.convs = nn.ModuleList(convs)

    def forward(self, x: Tensor, skips: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """x: deepest features; skips: tensors at strides 8, 4, 2 and 1, in that order.

        Returns the output and the features after each hidden block (strides 8, 4, 2),
        which the optional semantic head reads.
        """
        hidden: list[Tensor] = []
        for conv, skip in zip(self.convs, skips, strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = conv(torch.cat([x, skip], dim=1))
            hidden.append(x)
        return x, hidden[:-1]
