"""The coarse stage: backbone + ASPP + decoder, run on the downsampled image.

Output (B, 37, h, w) for the default widths: alpha (1), foreground residual (3),
error map (1) and hidden features (32). Alpha and error are clamped to [0, 1] and
the hidden features pass through ReLU, as seed 002 prescribes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from matting.config import ModelConfig
from matting.models.aspp import ASPP
from matting.models.backbone import build_backbone
from matting.models.decoder import Decoder
from matting.models.layers import clamp01, init_weights
from matting.models.semantic import SemanticHead, fuse_alpha, semantic_map
from matting.ops.padding import pad_to_multiple

# The decoder's skips all divide the input exactly once it is a multiple of this.
COARSE_ALIGN = 32


class CoarseOutput(NamedTuple):
    alpha: Tensor  # (B, 1, h, w) in [0, 1]
    foreground_residual: Tensor  # (B, 3, h, w), foreground = clamp(residual + image)
    error: Tensor  # (B, 1, h, w) in [0, 1], predicted |alpha - alpha_true|
    hidden: Tensor  # (B, hidden_channels, h, w) >= 0
    # (B, 3, h, w) background / transition / foreground logits, when the model has
    # a semantic head; alpha is then already fused with them.
    semantic: Tensor | None = None


class CoarseNet(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cin = config.image_channels
        self.backbone = build_backbone(config.backbone, cin, config.output_stride)
        self.skip_index = self.backbone.stride_indices((8, 4, 2))
        deepest = self.backbone.feature_info[-1].channels
        skip_ch = [self.backbone.feature_info[i].channels for i in self.skip_index]
        self.aspp = ASPP(deepest, config.aspp_channels, config.aspp_rates)
        self.decoder = Decoder(
            config.aspp_channels,
            (skip_ch[0], skip_ch[1], skip_ch[2], cin),
            config.decoder_channels,
            config.coarse_channels,
        )
        init_weights(self.aspp)
        init_weights(self.decoder)
        # Reads the stride-4 decoder block: fine enough for a transition band,
        # coarse enough to see the whole subject.
        self.semantic = SemanticHead(config.decoder_channels[1]) if config.semantic_head else None

    def forward(self, x: Tensor) -> CoarseOutput:
        """x: (B, 3 or 6, h, w) image (and background) in [0, 1], any h and w."""
        h, w = x.shape[-2:]
        xp = pad_to_multiple(x, COARSE_ALIGN)
        feats = self.backbone(xp)
        skips = [feats[i] for i in self.skip_index] + [xp]
        y, blocks = self.decoder(self.aspp(feats[-1]), skips)
        y = y[:, :, :h, :w]
        hid = self.config.hidden_channels
        alpha = clamp01(y[:, 0:1], self.training)
        logits = None
        if self.semantic is not None:
            hp, wp = xp.shape[-2:]
            logits = self.semantic(blocks[1], (hp, wp))[:, :, :h, :w]
            alpha = fuse_alpha(semantic_map(logits), alpha)
        return CoarseOutput(
            alpha=alpha,
            foreground_residual=y[:, 1:4],
            error=clamp01(y[:, 4:5], self.training),
            hidden=F.relu(y[:, 5 : 5 + hid]),
            semantic=logits,
        )
