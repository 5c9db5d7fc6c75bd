"""Smooth noise fields and colour palettes shared by the foreground and background generators.

Noise is drawn on a coarse grid and upsampled with Pillow's bicubic filter on a float ('F')
image: about 1 ms for 384x384, an order of magnitude faster than scipy.ndimage.zoom.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

Size = tuple[int, int]

# Hand-picked anchors; every draw is jittered so no colour repeats exactly.
SKIN = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.90, 0.71, 0.58],
        [0.80, 0.60, 0.47],
        [0.64, 0.45, 0.32],
        [0.45, 0.30, 0.21],
        [0.30, 0.20, 0.14],
    ],
    dtype=np.float32,
)
HAIR = np.array(
    [
        [0.06, 0.05, 0.05],
        [0.20, 0.13, 0.09],
        [0.38, 0.25, 0.15],
        [0.62, 0.46, 0.28],
        [0.85, 0.72, 0.48],
        [0.58, 0.25, 0.12],
        [0.72, 0.72, 0.70],
    ],
    dtype=np.float32,
)
FUR = np.array(
    [
        [0.93, 0.91, 0.86],
        [0.80, 0.48, 0.18],
        [0.55, 0.38, 0.24],
        [0.32, 0.22, 0.15],
        [0.50, 0.50, 0.50],
        [0.12, 0.11, 0.10],
        [0.76, 0.66, 0.50],
    ],
    dtype=np.float32,
)


def upsample(grid: np.ndarray, size: Size) -> np.ndarray:
    """Bicubic upsampling of a small 2-D float grid to `size` (height, width), float32."""
    image = Image.fromarray(np.ascontiguousarray(grid, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BICUBIC))


def smooth_noise(
    rng: np.random.Generator, size: Size, cell: float, aspect: float = 1.0
) -> np.ndarray:
    """Value noise in roughly [0, 1] with features about `cell` pixels wide.

    aspect > 1 stretches features vertically (rising smoke, falling fabric).
    """
    h, w = size
    gh = max(2, round(h / (cell * aspect)) + 2)
    gw = max(2, round(w / cell) + 2)
    return upsample(rng.random((gh, gw), dtype=np.float32), size)


def fractal_noise(
    rng: np.random.Generator,
    size: Size,
    cell: float,
    octaves: int = 4,
    gain: float = 0.5,
    aspect: float = 1.0,
) -> np.ndarray:
    """Sum of `octaves` noise layers, each half the feature size, rescaled to [0, 1].

    The octaves are summed on the finest octave's small grid and upsampled once: one
    full-size resize instead of one per octave (resizes dominate the generators' cost).
    """
    h, w = size
    finest = max(cell / 2 ** (octaves - 1), 1.5)
    fine = (min(round(h / (finest * aspect)) + 2, h), min(round(w / finest) + 2, w))
    total = np.zeros(fine, dtype=np.float32)
    amplitude = 1.0
    for _ in range(octaves):
        cell = max(cell, finest)
        coarse = (max(2, round(h / (cell * aspect)) + 2), max(2, round(w / cell) + 2))
        total += amplitude * upsample(rng.random(coarse, dtype=np.float32), fine)
        cell /= 2.0
        amplitude *= gain
    lo, hi = float(total.min()), float(total.max())
    total = (total - lo) / max(hi - lo, 1e-6)
    out = upsample(total, size).copy()  # Pillow's buffer is read-only
    return np.clip(out, 0.0, 1.0, out=out)


def jitter(rng: np.random.Generator, colour: np.ndarray, amount: float = 0.06) -> np.ndarray:
    """A colour nudged per channel and in brightness, clipped to [0, 1], shaped (3, 1, 1)."""
    shifted = np.reshape(colour, 3) * rng.uniform(0.85, 1.15) + rng.uniform(-amount, amount, 3)
    return np.clip(shifted, 0.0, 1.0).astype(np.float32).reshape(3, 1, 1)


def pick(rng: np.random.Generator, palette: np.ndarray) -> np.ndarray:
    """One jittered colour from `palette`."""
    return jitter(rng, palette[rng.integers(len(palette))])


def random_colour(rng: np.random.Generator, saturation: float = 1.0) -> np.ndarray:
    """A random colour; `saturation` < 1 pulls it toward its grey for muted tones."""
    c = rng.random(3).astype(np.float32)
    return (c.mean() + saturation * (c - c.mean())).astype(np.float32).reshape(3, 1, 1)


def colour_field(c0: np.ndarray, c1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel mix of two (3, 1, 1) colours by a (H, W) weight field: (3, H, W) float32."""
    return c0 + t * (c1 - c0)


def paint(c0: np.ndarray, c1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Two-colour texture: (3, 1, 1) colours mixed by a (H, W) field, clipped to [0, 1]."""
    rgb = colour_field(c0, c1, t)
    return np.clip(rgb, 0.0, 1.0, out=rgb)
