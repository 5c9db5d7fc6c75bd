"""Small building blocks shared by the backbones, ASPP, decoder and refiner."""

from __future__ import annotations

from typing import Any

import torch
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


class _ClampTowardRange(torch.autograd.Function):
    """Clamp to [0, 1]; backward passes the gradient inside the range, and outside
    it only where a descent step (x - lr * g) moves x back toward the range."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * inward_gradient_mask(x, grad)


def inward_gradient_mask(x: Tensor, grad: Tensor) -> Tensor:
    """1 where the gradient may flow into x: x in [0, 1], or x > 1 with grad > 0,
    or x < 0 with grad < 0 (both pull x back under descent); 0 elsewhere."""
    keep = ((x >= 0.0) & (x <= 1.0)) | ((x > 1.0) & (grad > 0.0)) | ((x < 0.0) & (grad < 0.0))
    return keep.to(grad.dtype)


def clamp01(x: Tensor, straight_through: bool) -> Tensor:
    """Clamp to [0, 1]. In training a plain clamp's zero gradient outside the range
    would leave an overshooting pixel (a person predicted at -0.3) stuck there, so
    the gradient passes through, but only toward the range: a loss that asks for
    more than 1 where the clamp already gives 1 must not push the raw value on
    (left unchecked, the coarse alpha grew to +-33000 and every export precision
    then rounded its edges differently)."""
    return _ClampTowardRange.apply(x) if straight_through else x.clamp(0.0, 1.0)
