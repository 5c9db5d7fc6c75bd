"""Batch augmentations of seed 002 in torch, driven by an explicit torch.Generator.

Geometry (affine + flip) moves layers and labels together; photometric changes
(colour jitter, noise, blur, sharpen) touch only what the network sees. Seed 003
calls geometry alone "weak" and geometry + photometric "strong".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def affine_matrices(
    gen: torch.Generator,
    n: int,
    degrees: float = 10.0,
    scale: tuple[float, float] = (0.85, 1.15),
    shear: float = 5.0,
    translate: float = 0.05,
    flip: float = 0.5,
) -> Tensor:
    """(n, 2, 3) matrices for F.affine_grid: output coordinates -> input coordinates."""
    rot = torch.deg2rad(_uniform(gen, n, -degrees, degrees))
    sh = torch.deg2rad(_uniform(gen, n, -shear, shear))
    s = _uniform(gen, n, *scale)
    tx, ty = (
        _uniform(gen, n, -translate, translate) * 2,
        _uniform(gen, n, -translate, translate) * 2,
    )
    fx = torch.where(torch.rand(n, generator=gen) < flip, -1.0, 1.0)
    cos, sin = torch.cos(rot), torch.sin(rot)
    # Inverse map: rotate, shear, then divide by the scale (zooming in samples less).
    a = torch.stack([cos, -sin + torch.tan(sh) * cos, tx], dim=1) / s[:, None]
    b = torch.stack([sin, cos + torch.tan(sh) * sin, ty], dim=1) / s[:, None]
    a[:, 2], b[:, 2] = tx, ty
    m = torch.stack([a, b], dim=1)
    m[:, :, 0] = m[:, :, 0] * fx[:, None]
    return m


def warp(x: Tensor, theta: Tensor, mode: str = "bilinear") -> Tensor:
    """Apply (B, 2, 3) affine maps to (B, C, H, W); edges are replicated."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def warp_classes(classes: Tensor, theta: Tensor) -> Tensor:
    """Nearest-neighbour warp of an integer class map (B, H, W)."""
    return warp(classes[:, None].float(), theta, mode="nearest")[:, 0].round().long()


def color_jitter(x: Tensor, gen: torch.Generator, strength: float = 1.0) -> Tensor:
    """Brightness, contrast, saturation and hue per image of (B, 3, H, W) in [0, 1]."""
    n = x.shape[0]
    bright = _uniform(gen, n, -0.15, 0.15).view(n, 1, 1, 1) * strength
    contrast = (1 + _uniform(gen, n, -0.25, 0.25) * strength).view(n, 1, 1, 1)
    sat = (1 + _uniform(gen, n, -0.3, 0.3) * strength).view(n, 1, 1, 1)
    hue = _uniform(gen, n, -0.05, 0.05) * strength * 2 * math.pi
    grey = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    mean = grey.mean(dim=(2, 3), keepdim=True)
    y = (x - mean) * contrast + mean + bright
    y = grey + (y - grey) * sat
    return rotate_hue(y, hue).clamp(0.0, 1.0)


def rotate_hue(x: Tensor, angle: Tensor) -> Tensor:
    """Rotate the chroma of (B, 3, H, W) about the grey axis by `angle` radians (B,)."""
    # Rodrigues rotation about the unit vector (1, 1, 1) / sqrt(3).
    c, s = torch.cos(angle), torch.sin(angle)
    k = 1.0 / 3.0
    r = math.sqrt(k)
    diag = c + (1 - c) * k
    off1 = (1 - c) * k - r * s
    off2 = (1 - c) * k + r * s
    m = torch.stack(
        [
            torch.stack([diag, off1, off2], dim=1),
            torch.stack([off2, diag, off1], dim=1),
            torch.stack([off1, off2, diag], dim=1),
        ],
        dim=1,
    ).to(x.dtype)
    return torch.einsum("bij,bjhw->bihw", m, x)


def gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with one sigma per image (B,); sigma 0 keeps the image."""
    radius = 3
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.clamp_min(1e-3).to(x.dtype).view(-1, 1)
    k = torch.exp(-0.5 * (t.view(1, -1) / s) ** 2)
    k = k / k.sum(dim=1, keepdim=True)  # (B, 7)
    b, c, h, w = x.shape
    y = x.reshape(1, b * c, h, w)
    kh = k.repeat_interleave(c, dim=0)
    y = F.conv2d(
        F.pad(y, (radius, radius, 0, 0), mode="replicate"), kh.view(b * c, 1, 1, -1), groups=b * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, radius, radius), mode="replicate"), kh.view(b * c, 1, -1, 1), groups=b * c
    )
    return y.view(b, c, h, w)


def degrade(x: Tensor, gen: torch.Generator, p: float = 0.5) -> Tensor:
    """Seed 002's noise, blur and sharpening, each applied to a random subset of images."""
    n = x.shape[0]
    pick = torch.rand(n, 3, generator=gen) < p
    sigma = _uniform(gen, n, 0.4, 1.5) * pick[:, 0]
    y = torch.where(pick[:, 0].view(n, 1, 1, 1), gaussian_blur(x, sigma), x)
    amount = _uniform(gen, n, 0.3, 1.0).view(n, 1, 1, 1) * pick[:, 1].view(n, 1, 1, 1)
    y = y + amount * (y - gaussian_blur(y, torch.full((n,), 1.0)))  # unsharp mask
    noise = torch.randn(x.shape, generator=gen) * _uniform(gen, n, 0.005, 0.04).view(n, 1, 1, 1)
    y = y + noise * pick[:, 2].view(n, 1, 1, 1)
    return y.clamp(0.0, 1.0)


def cast_shadow(bg: Tensor, alpha: Tensor, gen: torch.Generator, p: float = 0.3) -> Tensor:
    """Darken the background under a shifted, blurred copy of the alpha (seed 002
    shadow augmentation), so a dark halo is not taken for foreground."""
    n = bg.shape[0]
    pick = (torch.rand(n, generator=gen) < p).view(n, 1, 1, 1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = _uniform(gen, n * 2, -0.15, 0.15).view(n, 2)
    shadow = gaussian_blur(warp(alpha, theta), _uniform(gen, n, 1.0, 3.0))
    strength = _uniform(gen, n, 0.2, 0.6).view(n, 1, 1, 1)
    return torch.where(pick, bg * (1 - strength * shadow), bg)
