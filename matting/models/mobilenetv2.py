"""MobileNetV2 (Sandler et al. 2018) written for the feature contract.

Width multiplier 1.0 without the final 1x1 conv to 1280 channels, which only
serves classification. With output stride 16 the last strided stage runs at
stride 1 with dilation 2, as DeepLabV3 and seed 002 do.
"""

from __future__ import annotations

from torch import Tensor, nn

from matting.models.backbone import Backbone, FeatureInfo
from matting.models.layers import conv_bn_act, init_weights

# (expansion t, channels c, repeats n, first stride s) from the paper's Table 2.
_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# Stages after which a feature is taken (indices into _STAGES).
_TAPS = (0, 1, 2, 4, 6)


class InvertedResidual(nn.Module):
    def __init__(
        self, cin: int, cout: int, stride: int, expand: int, dilation: int, kernel: int = 3
    ) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_act(cin, hidden, 1, act=nn.ReLU6))
        layers.append(
            conv_bn_act(hidden, hidden, kernel, stride, dilation, groups=hidden, act=nn.ReLU6)
        )
        layers.append(conv_bn_act(hidden, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


class MobileNetV2(Backbone):
    def __init__(self, in_channels: int = 3, output_stride: int = 16) -> None:
        super().__init__()
        self.stem = conv_bn_act(in_channels, 32, 3, stride=2, act=nn.ReLU6)
        stride, dilation, cin = 2, 1, 32
        stages: list[nn.Module] = []
        info: list[FeatureInfo] = []
        for i, (t, c, n, s) in enumerate(_STAGES):
            if s == 2 and stride >= output_stride:
                # Past the target stride: keep resolution, widen the receptive field.
                s, dilation = 1, dilation * 2
            stride *= s
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(cin, c, s if j == 0 else 1, t, dilation))
                cin = c
            stages.append(nn.Sequential(*blocks))
            if i in _TAPS:
                info.append(FeatureInfo(c, stride))
        self.stages = nn.ModuleList(stages)
        self.feature_info = tuple(info)
        init_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in _TAPS:
                features.append(x)
        return features
