"""The unified semantic head of seed 004 and its fusion with the matting alpha.

The head classifies every coarse pixel as background, transition or foreground
(the trimap / duomap / unimap of seed 004). Its expected value U in [0, 1] then
gates the alpha: where U is confidently 0 or 1 the semantic answer wins, where
it says "transition" (0.5) the matting decoder's alpha M is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matting.models.layers import conv_bn_act, init_weights

NUM_CLASSES = 3  # background, transition, foreground
_CLASS_VALUES = (0.0, 0.5, 1.0)


class SqueezeExcite(nn.Module):
    """Channel attention (seed 004 puts it after each semantic decoder block)."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        w = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(w))))


class SemanticHead(nn.Module):
    """Decoder features (B, C, h', w') -> class logits (B, 3, h, w) at the coarse size."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        self.se = SqueezeExcite(in_channels)
        self.conv = conv_bn_act(in_channels, width, 3)
        self.out = nn.Conv2d(width, NUM_CLASSES, 1)
        init_weights(self)

    def forward(self, features: Tensor, size: tuple[int, int]) -> Tensor:
        y = self.out(self.conv(self.se(features)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def semantic_map(logits: Tensor) -> Tensor:
    """(B, 3, h, w) logits -> U (B, 1, h, w), the expected class value in [0, 1]."""
    values = logits.new_tensor(_CLASS_VALUES).view(1, NUM_CLASSES, 1, 1)
    return (logits.softmax(dim=1) * values).sum(dim=1, keepdim=True)


def fuse_alpha(unified: Tensor, matte: Tensor) -> Tensor:
    """alpha = (1 - 2|U - 0.5|) M + 2|U - 0.5| U  (U, M: (B, 1, h, w) in [0, 1])."""
    certainty = 2.0 * (unified - 0.5).abs()
    return (1.0 - certainty) * matte + certainty * unified
