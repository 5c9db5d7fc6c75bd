"""Non-salient foregrounds (AIM type NS): smoke, fog, rain and snow spread over the frame.

There is no object: alpha is partial almost everywhere (the paper's unimap), mostly below 0.8.
"""

from __future__ import annotations

import numpy as np

from training.synth.draw import Size, Strands, over, splat_strands
from training.synth.texture import colour_field, fractal_noise, jitter, smooth_noise

Layers = tuple[np.ndarray, np.ndarray]


def nonsalient(rng: np.random.Generator, size: Size) -> Layers:
    """(rgb, alpha) of smoke, fog, rain or snow."""
    build = (_smoke, _fog, _rain, _snow)[rng.choice(4, p=[0.35, 0.25, 0.25, 0.15])]
    return build(rng, size)


def _smoke(rng: np.random.Generator, size: Size) -> Layers:
    """Billowing fractal density, stretched vertically, thicker toward a random side."""
    s = min(size)
    n = fractal_noise(rng, size, s * rng.uniform(0.2, 0.5), octaves=5, aspect=rng.uniform(1.0, 2.5))
    lo = rng.uniform(0.0, 0.3)
    density = np.clip((n - lo) / (1.0 - lo), 0.0, 1.0) ** rng.uniform(0.8, 2.0)
    alpha = density * _ramp(rng, size) * rng.uniform(0.5, 0.85)
    return _cloud_colour(rng, size), alpha.astype(np.float32)


def _fog(rng: np.random.Generator, size: Size) -> Layers:
    """Low-contrast haze over the whole frame with a vertical density gradient."""
    s = min(size)
    n = fractal_noise(rng, size, s * rng.uniform(0.4, 1.0), octaves=3)
    level = rng.uniform(0.15, 0.5)
    alpha = level * (0.5 + n) * _ramp(rng, size)
    return _cloud_colour(rng, size), np.clip(alpha, 0.0, 0.8).astype(np.float32)


def _rain(rng: np.random.Generator, size: Size) -> Layers:
    """Many thin slanted streaks over a faint mist (rain always comes with some haze)."""
    h, w = size
    mean_length = h * rng.uniform(0.03, 0.12)
    # Density capped at 0.1 px of streak per frame pixel, which bounds the splatting cost.
    n = int(h * w * min(rng.uniform(0.002, 0.008), 0.1 / mean_length))
    angle = rng.normal(0.0, 0.25)
    lengths = rng.uniform(0.5, 1.5, n) * mean_length
    heading = angle + rng.normal(0.0, 0.03, n)
    direction = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    # Roots above and to the side of the frame too, so streaks enter from the edges.
    roots = rng.uniform((-0.15 * h, -0.15 * w), (h, 1.15 * w), (n, 2))
    tips = roots + direction * lengths[:, None]
    strands = Strands(
        roots, 0.5 * (roots + tips), tips, rng.uniform(0.3, 1.2, n), rng.uniform(0.8, 1.1, n), 0.3
    )
    streak_a, brightness = splat_strands(strands, size)
    streak_a *= rng.uniform(0.4, 0.8)
    colour = jitter(rng, np.array([0.85, 0.88, 0.92], np.float32), 0.05)
    streak_rgb = np.clip(colour * brightness, 0.0, 1.0)
    return over([_mist(rng, size), (streak_rgb, streak_a)])


def _snow(rng: np.random.Generator, size: Size) -> Layers:
    """Soft Gaussian flakes of several sizes (out-of-focus ones large and faint) over mist."""
    h, w = size
    n = int(h * w * rng.uniform(0.0005, 0.003))
    radius = np.minimum(rng.gamma(1.5, 1.2, n) + 0.5, 4.0)
    peak = np.clip(rng.uniform(0.5, 1.0, n) / np.sqrt(radius), 0.1, 0.95)
    # Every flake is stamped on the same 17x17 window (2 radii of the largest flake) around
    # its centre pixel, all at once; overlapping flakes add up.
    offsets = np.arange(-8, 9)
    cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
    sub = rng.uniform(-0.5, 0.5, (2, n, 1, 1))
    dy = offsets[None, :, None] - sub[0]
    dx = offsets[None, None, :] - sub[1]
    stamp = peak[:, None, None] * np.exp(-(dy**2 + dx**2) / radius[:, None, None] ** 2)
    py = cy[:, None, None] + offsets[None, :, None]
    px = cx[:, None, None] + offsets[None, None, :]
    inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
    flat = (py * w + px)[inside]
    alpha = np.bincount(flat, stamp[inside], h * w).reshape(h, w).astype(np.float32)
    np.minimum(alpha, 0.95, out=alpha)
    white = np.full((3, h, w), rng.uniform(0.85, 1.0), dtype=np.float32)
    return over([_mist(rng, size), (white, alpha)])


def _mist(rng: np.random.Generator, size: Size) -> Layers:
    """Thin haze layer: alpha about 0.03-0.25 everywhere."""
    n = smooth_noise(rng, size, min(size) * 0.5)
    alpha = rng.uniform(0.03, 0.15) * (0.6 + 0.8 * n)
    return _cloud_colour(rng, size), alpha.astype(np.float32)


def _ramp(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Linear density envelope between about 0.3 and 1 along a random direction."""
    h, w = size
    theta = rng.uniform(0.0, 2 * np.pi)
    y = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None] * np.float32(np.sin(theta))
    x = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :] * np.float32(np.cos(theta))
    low = rng.uniform(0.3, 1.0)
    return low + (1.0 - low) * np.clip(y + x + 0.5, 0.0, 1.0)


def _cloud_colour(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Greys from dark smoke to white steam, faintly tinted, with soft light and shadow."""
    grey = rng.uniform(0.3, 1.0) if rng.random() < 0.7 else rng.uniform(0.1, 0.4)
    tone = jitter(rng, np.full(3, grey, np.float32), 0.05)
    light = smooth_noise(rng, size, min(size) * 0.3)
    return np.clip(colour_field(tone * 0.7, tone * 1.1, light), 0.0, 1.0)
