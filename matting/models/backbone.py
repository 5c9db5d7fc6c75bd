"""The feature contract every backbone meets, and the registry that builds them.

A backbone maps an image (B, C, H, W) to a list of feature maps, deepest last.
`feature_info[i]` gives the channels and stride of feature i, and feature i has
spatial size ceil(H / stride) x ceil(W / stride) for any H and W: every
downsampling layer is a stride-2 conv or pool with "same" padding.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class FeatureInfo:
    channels: int
    stride: int


class Backbone(nn.Module):
    """Base class: subclasses set `feature_info` and return one tensor per entry."""

    feature_info: tuple[FeatureInfo, ...]

    def forward(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def stride_indices(self, strides: tuple[int, ...]) -> list[int]:
        """Index of the deepest feature at each requested stride (decoder skips)."""
        out = []
        for s in strides:
            matches = [i for i, f in enumerate(self.feature_info) if f.stride == s]
            if not matches:
                raise ValueError(f"backbone has no feature at stride {s}")
            out.append(matches[-1])
        return out


def build_backbone(name: str, in_channels: int = 3, output_stride: int = 16) -> Backbone:
    """Build a backbone by name: mobilenetv2, efficientnet_lite0, efficientnet_lite1,
    resnet18, resnet34 or resnet50."""
    from matting.models.efficientnet_lite import EfficientNetLite
    from matting.models.mobilenetv2 import MobileNetV2
    from matting.models.resnet import resnet

    if output_stride not in (16, 32):
        raise ValueError(f"output_stride must be 16 or 32, got {output_stride}")
    if name == "mobilenetv2":
        return MobileNetV2(in_channels, output_stride)
    if name in ("efficientnet_lite0", "efficientnet_lite1"):
        return EfficientNetLite(
            in_channels, output_stride, variant=name.removeprefix("efficientnet_")
        )
    if name in ("resnet18", "resnet34", "resnet50"):
        return resnet(name, in_channels, output_stride)
    known = "mobilenetv2, efficientnet_lite0, efficientnet_lite1, resnet18, resnet34, resnet50"
    raise ValueError(f"unknown backbone {name!r}; known: {known}")
