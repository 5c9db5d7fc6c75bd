"""ResNet-18/34/50 (He et al. 2016) written for the feature contract.

Features: the stem (stride 2) and the four stages (4, 8, 16, 32). With output
stride 16 the last stage trades its stride for dilation 2; as in DeepLabV3 its
first block keeps the previous dilation. The stride of a bottleneck sits in its
3x3 conv (the "v1.5" variant).
"""

from __future__ import annotations

from torch import Tensor, nn

from matting.models.backbone import Backbone, FeatureInfo
from matting.models.layers import conv_bn_act, init_weights


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_act(cin, planes, 3, stride, dilation)
        self.conv2 = conv_bn_act(planes, planes, 3, 1, dilation, act=None)
        self.shortcut = _shortcut(cin, planes, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, dilation: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = conv_bn_act(cin, planes, 1)
        self.conv2 = conv_bn_act(planes, planes, 3, stride, dilation)
        self.conv3 = conv_bn_act(planes, cout, 1, act=None)
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return conv_bn_act(cin, cout, 1, stride, padding=0, act=None)


_SPECS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNet(Backbone):
    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        depths: tuple[int, int, int, int],
        in_channels: int = 3,
        output_stride: int = 16,
    ) -> None:
        super().__init__()
        self.stem = conv_bn_act(in_channels, 64, 7, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        info = [FeatureInfo(64, 2)]
        cin, stride, dilation = 64, 4, 1
        stages = []
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            s = 1 if i == 0 else 2
            first_dilation = dilation
            if s == 2 and stride >= output_stride:
                s, dilation = 1, dilation * 2
            stride *= s
            blocks = [block(cin, planes, s, first_dilation)]
            cin = planes * block.expansion
            blocks += [block(cin, planes, 1, dilation) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            info.append(FeatureInfo(cin, stride))
        self.stages = nn.ModuleList(stages)
        self.feature_info = tuple(info)
        init_weights(self)
        # Zero the last BN of each residual branch so every block starts as identity.
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                bn = (m.conv2 if isinstance(m, BasicBlock) else m.conv3)[1]
                if isinstance(bn, nn.BatchNorm2d):
                    nn.init.zeros_(bn.weight)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        features = [x]
        x = self.pool(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def resnet(name: str, in_channels: int = 3, output_stride: int = 16) -> ResNet:
    block, depths = _SPECS[name]
    return ResNet(block, depths, in_channels, output_stride)
