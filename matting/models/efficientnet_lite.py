"""EfficientNet-Lite0 and -Lite1 (Tan and Le 2019, the Lite variants) written for
the feature contract.

Lite0 is EfficientNet-B0 made for mobile runtimes: no squeeze-and-excitation,
ReLU6 instead of swish, and a fixed 32-channel stem. Its inverted residual
blocks are MobileNetV2's with 3x3 or 5x5 depthwise kernels. Lite1 has the same
widths and 1.1x the depth (stages 2-6 get ceil(1.1 n) blocks; the Lite variants
keep the first and last stages at one block). The final 1x1 conv
to 1280 channels only serves classification and is left out. With output
stride 16 the last strided stage runs at stride 1 with dilation 2.

ImageNet weights for it can be loaded by `training.pretrained`; they expect
the image scaled as (255 x - 127) / 128, which the backbone does itself so
that every caller keeps passing images in [0, 1].
"""

from __future__ import annotations

from torch import Tensor, nn

from matting.models.backbone import Backbone, FeatureInfo
from matting.models.layers import conv_bn_act, init_weights
from matting.models.mobilenetv2 import InvertedResidual

# (expansion, channels, repeats, first stride, kernel) of EfficientNet-B0's stages.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 16, 1, 1, 3),
    (6, 24, 2, 2, 3),
    (6, 40, 2, 2, 5),
    (6, 80, 3, 2, 3),
    (6, 112, 3, 1, 5),
    (6, 192, 4, 2, 5),
    (6, 320, 1, 1, 3),
)
# Blocks per stage of each variant.
REPEATS: dict[str, tuple[int, ...]] = {
    "lite0": tuple(stage[2] for stage in STAGES),
    "lite1": (1, 3, 3, 4, 4, 5, 1),
}
# Stages after which a feature is taken: strides 2, 4, 8, 16 and the deepest.
_TAPS = (0, 1, 2, 4, 6)
# The ImageNet weights were trained with TensorFlow's BatchNorm epsilon.
BN_EPS = 1e-3


class EfficientNetLite(Backbone):
    def __init__(
        self, in_channels: int = 3, output_stride: int = 16, variant: str = "lite0"
    ) -> None:
        super().__init__()
        if variant not in REPEATS:
            raise ValueError(
                f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(REPEATS)}"
            )
        self.stem = conv_bn_act(in_channels, 32, 3, stride=2, act=nn.ReLU6)
        stride, dilation, cin = 2, 1, 32
        stages: list[nn.Module] = []
        info: list[FeatureInfo] = []
        for i, ((t, c, _, s, k), n) in enumerate(zip(STAGES, REPEATS[variant], strict=True)):
            if s == 2 and stride >= output_stride:
                s, dilation = 1, dilation * 2
            stride *= s
            blocks = []
            for j in range(n):
                blocks.append(InvertedResidual(cin, c, s if j == 0 else 1, t, dilation, k))
                cin = c
            stages.append(nn.Sequential(*blocks))
            if i in _TAPS:
                info.append(FeatureInfo(c, stride))
        self.stages = nn.ModuleList(stages)
        self.feature_info = tuple(info)
        init_weights(self)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = BN_EPS

    def forward(self, x: Tensor) -> list[Tensor]:
        # [0, 1] -> the (255 x - 127) / 128 scaling of the ImageNet weights.
        x = self.stem(x * (255.0 / 128.0) - 127.0 / 128.0)
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in _TAPS:
                features.append(x)
        return features
