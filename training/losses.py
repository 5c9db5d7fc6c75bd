"""Matting losses as pure functions; combining them is left to the trainer.

Every loss takes (B, C, H, W) float tensors (unless stated otherwise) and
returns a scalar tensor. Alpha losses follow seed 002 (L1 + Sobel gradient,
foreground L1 where the true alpha is positive, error-map MSE against
``|alpha - alpha*|``); the Laplacian pyramid loss and cross entropy for the
semantic head follow the design notes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

__all__ = [
    "LossWeights",
    "composition_loss",
    "error_map_loss",
    "foreground_loss",
    "gradient_loss",
    "l1_loss",
    "laplacian_loss",
    "mse_loss",
    "semantic_loss",
]

# Keeps masked means finite when the mask is empty (the loss is then 0).
_EPS = 1e-8


class LossWeights(BaseModel):
    """Per-term weights for the trainer's weighted sum; all >= 0."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    l1: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    laplacian: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    gradient: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    composition: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    foreground: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    error: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    semantic: float = Field(0.5, ge=0.0, allow_inf_nan=False)


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------


def _check_4d(name: str, t: Tensor) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(t.shape)}")


def _check_pair(pred: Tensor, target: Tensor) -> None:
    _check_4d("pred", pred)
    _check_4d("target", target)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )


def _check_mask(mask: Tensor, like: Tensor) -> None:
    _check_4d("mask", mask)
    b, c, h, w = like.shape
    if mask.shape[0] != b or mask.shape[1] not in (1, c) or mask.shape[2:] != (h, w):
        raise ValueError(
            f"mask must be (B, 1, H, W) or (B, C, H, W) for data {tuple(like.shape)}, "
            f"got {tuple(mask.shape)}"
        )


def _weighted_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``values`` (B, C, H, W), or ``sum(w * v) / max(sum(w) * C, eps)`` with weights."""
    if mask is None:
        return values.mean()
    _check_mask(mask, values)
    w = mask.to(values.dtype).expand_as(values)
    # Expanding a 1-channel mask counts each pixel C times, i.e. sum(w) * C.
    return (w * values).sum() / w.sum().clamp_min(_EPS)


# --------------------------------------------------------------------------
# Pixel losses
# --------------------------------------------------------------------------


def l1_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error.

    Args:
        pred, target: (B, C, H, W).
        mask: optional (B, 1, H, W) or (B, C, H, W) weights (e.g. {0, 1});
            the loss is then ``sum(w * |pred - target|) / max(sum(w) * C, eps)``.

    Returns:
        Scalar tensor.
    """
    _check_pair(pred, target)
    return _weighted_mean((pred - target).abs(), mask)


def mse_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error; ``mask`` as in :func:`l1_loss`.

    Args:
        pred, target: (B, C, H, W).
        mask: optional (B, 1, H, W) or (B, C, H, W) weights.

    Returns:
        Scalar tensor.
    """
    _check_pair(pred, target)
    return _weighted_mean((pred - target).square(), mask)


# --------------------------------------------------------------------------
# Laplacian pyramid
# --------------------------------------------------------------------------


def _binomial_kernel(channels: int, like: Tensor) -> Tensor:
    """(C, 1, 5, 5) depthwise kernel: outer product of [1, 4, 6, 4, 1] / 16, sums to 1."""
    k1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=like.dtype, device=like.device) / 16.0
    return torch.outer(k1, k1).expand(channels, 1, 5, 5)


def _reflect_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Source indices for reflect padding (edge not repeated) of a length-``n`` axis.

    Unlike ``F.pad(mode="reflect")`` this works for any ``pad``, by mirroring
    periodically with period ``2 (n - 1)``; a length-1 axis is repeated.
    """
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx < n, idx, period - idx)


def _blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Depthwise 5x5 filtering of (B, C, H, W) with reflect padding; same size out."""
    h, w = x.shape[-2:]
    x = x.index_select(-2, _reflect_index(h, 2, x.device))
    x = x.index_select(-1, _reflect_index(w, 2, x.device))
    return F.conv2d(x, kernel, groups=x.shape[1])


def _upsample(x: Tensor, size: tuple[int, int], kernel: Tensor) -> Tensor:
    """Burt-Adelson expand: zero insertion then 4 * binomial blur, cropped to ``size``.

    The zero-inserted canvas has even size (2h, 2w) >= 2, so reflect padding keeps
    the sample parity and a constant image expands to the same constant.
    """
    b, c, h, w = x.shape
    canvas = x.new_zeros(b, c, 2 * h, 2 * w)
    canvas[..., ::2, ::2] = x
    return _blur(canvas, 4.0 * kernel)[..., : size[0], : size[1]]


def _laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """``levels`` bands of (B, C, H, W): ``g_i - expand(g_{i+1})``, then the last Gaussian level."""
    kernel = _binomial_kernel(x.shape[1], x)
    pyramid: list[Tensor] = []
    current = x
    for _ in range(levels - 1):
        # Taking every other pixel gives ceil(H / 2) x ceil(W / 2) for odd sizes.
        down = _blur(current, kernel)[..., ::2, ::2]
        size = (current.shape[-2], current.shape[-1])
        pyramid.append(current - _upsample(down, size, kernel))
        current = down
    pyramid.append(current)
    return pyramid


def laplacian_loss(pred: Tensor, target: Tensor, levels: int = 5) -> Tensor:
    """Laplacian pyramid L1 loss: ``sum_i 2**i * mean |L_i(pred) - L_i(target)|``.

    The Gaussian pyramid blurs with the 5x5 binomial kernel ([1, 4, 6, 4, 1] / 16
    outer product, reflect padding) and keeps every other pixel. Band ``i`` is
    ``g_i - expand(g_{i+1})`` with the classic expand (zero insertion + 4 * kernel,
    cropped to ``g_i``'s size); the last band (``i = levels - 1``) is the residual
    Gaussian level. Any H, W works, including odd sizes and levels coarser than 1 px.

    Args:
        pred, target: (B, C, H, W).
        levels: number of bands, >= 1 (1 is plain L1).

    Returns:
        Scalar tensor.
    """
    _check_pair(pred, target)
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an int >= 1, got {levels!r}")
    # The pyramid is linear, so the pyramid of the difference is the difference of pyramids.
    bands = _laplacian_pyramid(pred - target, levels)
    return sum(
        (2.0**i * band.abs().mean() for i, band in enumerate(bands)),
        start=pred.new_zeros(()),
    )


# --------------------------------------------------------------------------
# Gradient, composition, foreground
# --------------------------------------------------------------------------


def _sobel(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel 3x3 Sobel responses (d/dx, d/dy) of (B, C, H, W), replicate padding."""
    c = x.shape[1]
    gx = torch.tensor(
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device
    )
    kernel = torch.stack([gx, gx.t()]).unsqueeze(1).repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    out = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    return out[:, 0::2], out[:, 1::2]


def gradient_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``mean |sobel_x(pred) - sobel_x(target)| + mean |sobel_y(pred) - sobel_y(target)|``.

    Unnormalised 3x3 Sobel kernels ([-1, 0, 1] x [1, 2, 1]), replicate padding.

    Args:
        pred, target: (B, C, H, W).

    Returns:
        Scalar tensor.
    """
    _check_pair(pred, target)
    dx, dy = _sobel(pred - target)  # Sobel is linear
    return dx.abs().mean() + dy.abs().mean()


def composition_loss(
    alpha: Tensor,
    foreground: Tensor,
    background: Tensor,
    image: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    """L1 between the recomposited ``alpha * F + (1 - alpha) * B`` and the image.

    Args:
        alpha: (B, 1, H, W) predicted alpha.
        foreground, background, image: (B, 3, H, W) (any C, all equal).
        mask: optional (B, 1, H, W) or (B, C, H, W) weights, as in :func:`l1_loss`.

    Returns:
        Scalar tensor.
    """
    _check_4d("alpha", alpha)
    _check_pair(foreground, image)
    _check_pair(background, image)
    if (
        alpha.shape[1] != 1
        or alpha.shape[0] != image.shape[0]
        or alpha.shape[2:] != image.shape[2:]
    ):
        raise ValueError(
            f"alpha must be (B, 1, H, W) for image {tuple(image.shape)}, got {tuple(alpha.shape)}"
        )
    composite = alpha * foreground + (1.0 - alpha) * background
    return l1_loss(composite, image, mask)


def foreground_loss(fg_pred: Tensor, fg_true: Tensor, alpha_true: Tensor) -> Tensor:
    """Foreground L1 only where ``alpha_true > 0`` (seed 002): colour is undefined elsewhere.

    Args:
        fg_pred, fg_true: (B, 3, H, W).
        alpha_true: (B, 1, H, W) ground-truth alpha.

    Returns:
        Scalar tensor, ``sum(m * |fg_pred - fg_true|) / max(sum(m) * C, eps)``; 0 if no
        pixel has positive alpha.
    """
    _check_4d("alpha_true", alpha_true)
    return l1_loss(fg_pred, fg_true, (alpha_true > 0).to(fg_pred.dtype))


# --------------------------------------------------------------------------
# Error map and semantic head
# --------------------------------------------------------------------------


def error_map_loss(error_pred: Tensor, alpha_pred: Tensor, alpha_true: Tensor) -> Tensor:
    """MSE between the predicted error map and the actual alpha error ``|alpha - alpha*|``.

    The target is detached (the error head must not push the alpha) and area-pooled
    (``F.adaptive_avg_pool2d``) to the error map's size when that is smaller.

    Args:
        error_pred: (B, 1, h, w) with h <= H, w <= W.
        alpha_pred, alpha_true: (B, 1, H, W).

    Returns:
        Scalar tensor.
    """
    _check_4d("error_pred", error_pred)
    _check_pair(alpha_pred, alpha_true)
    (b, c, h, w), (ab, _, ah, aw) = error_pred.shape, alpha_pred.shape
    if b != ab or c != alpha_pred.shape[1] or h > ah or w > aw:
        raise ValueError(
            f"error_pred {tuple(error_pred.shape)} must match alpha {tuple(alpha_pred.shape)} "
            "in batch and channels and be no larger spatially"
        )
    target = (alpha_pred - alpha_true).abs().detach()
    if (h, w) != (ah, aw):
        target = F.adaptive_avg_pool2d(target, (h, w))
    return F.mse_loss(error_pred, target)


def semantic_loss(logits: Tensor, classes: Tensor, ignore_index: int = -1) -> Tensor:
    """Cross entropy of the semantic head against class maps (0 bg, 1 transition, 2 fg).

    Args:
        logits: (B, K, h, w) raw scores (K = 3 for the unified representation).
        classes: (B, H, W) int64 class indices, possibly at a higher resolution;
            resized to (h, w) with nearest-neighbour sampling.
        ignore_index: class value excluded from the loss.

    Returns:
        Scalar tensor: mean over non-ignored pixels, 0 if every pixel is ignored.
    """
    _check_4d("logits", logits)
    if classes.ndim != 3 or classes.shape[0] != logits.shape[0]:
        raise ValueError(
            f"classes must be (B, H, W) with B={logits.shape[0]}, got {tuple(classes.shape)}"
        )
    if classes.dtype.is_floating_point or classes.dtype == torch.bool:
        raise ValueError(f"classes must be an integer tensor, got {classes.dtype}")
    classes = classes.long()
    if classes.shape[1:] != logits.shape[2:]:
        # Nearest on a float copy: class ids are small integers, exact in float32.
        classes = (
            F.interpolate(classes[:, None].float(), size=logits.shape[2:], mode="nearest")
            .squeeze(1)
            .long()
        )
    if not (classes != ignore_index).any():
        # cross_entropy's mean over zero pixels would be NaN.
        return logits.sum() * 0.0
    return F.cross_entropy(logits, classes, ignore_index=ignore_index)
