"""Small building blocks shared by the backbones, ASPP, decoder and refiner."""

from __future__ import annotations

from torch import Tensor, nn


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    padding: int | None = None,
    act: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """Conv without bias, BatchNorm, then an activation (None for a linear output).

    The default padding keeps the spatial size for stride 1 ("same" padding).
    """
    if padding is None:
        padding = dilation * (kernel_size - 1) // 2
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


def init_weights(module: nn.Module) -> None:
    """He initialisation for convs, unit BatchNorm: the network trains from scratch."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def clamp01(x: Tensor, straight_through: bool) -> Tensor:
    """Clamp to [0, 1]. In training the gradient passes through unchanged: a plain
    clamp has zero gradient outside the range, so a pixel that overshoots (say a
    person predicted at -0.3) would never be pulled back by the loss."""
    y = x.clamp(0.0, 1.0)
    return x + (y - x).detach() if straight_through else y
