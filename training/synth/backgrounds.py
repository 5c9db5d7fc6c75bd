"""Procedural backgrounds: gradients, blurry scenes, textures, shapes, bokeh and clutter.

Backgrounds borrow the foregrounds' tools on purpose (the same noise, skin, hair and fur
colours, strands and soft edges) so that texture, palette or edge sharpness alone does not
tell a network which side of a composite a pixel came from.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from training.synth.draw import (
    Size,
    Strands,
    check_size,
    coverage,
    grid,
    rotate,
    sd_box,
    sd_ellipse,
    splat_strands,
)
from training.synth.texture import (
    FUR,
    HAIR,
    SKIN,
    colour_field,
    fractal_noise,
    pick,
    random_colour,
    smooth_noise,
    upsample,
)


def generate_background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """One random background of `size` (height, width): (H, W, 3) float32 in [0, 1].

    Deterministic for a given generator state.
    """
    size = check_size(size)
    base = (_gradient, _scene, _pattern)[rng.choice(3, p=[0.25, 0.45, 0.3])]
    rgb = base(rng, size)
    if rng.random() < 0.5:
        rgb = _shapes(rng, rgb)
    if rng.random() < 0.25:
        rgb = _clutter(rng, rgb)
    if rng.random() < 0.25:
        rgb = _bokeh(rng, rgb)
    if rng.random() < 0.35:
        rgb = _defocus(rgb, rng.uniform(2.0, 8.0))
    gain, offset = rng.uniform(0.7, 1.2), rng.uniform(-0.08, 0.08)
    rgb = np.clip(rgb * np.float32(gain) + np.float32(offset), 0.0, 1.0)
    # Built channel-first for speed (see generate_foreground); returned as (H, W, 3).
    return np.ascontiguousarray(rgb.transpose(1, 2, 0), dtype=np.float32)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """Mostly arbitrary colours, sometimes the foreground palettes (skin, hair, fur)."""
    r = rng.random()
    if r < 0.1:
        return pick(rng, SKIN)
    if r < 0.2:
        return pick(rng, HAIR if r < 0.15 else FUR)
    return random_colour(rng, rng.uniform(0.1, 1.0))


def _gradient(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Linear blend of two colours along a random direction, with faint mottling."""
    h, w = size
    y, x = grid(size)
    theta = rng.uniform(0.0, 2 * np.pi)
    t = (y / np.float32(h) - 0.5) * np.float32(np.sin(theta))
    t = t + (x / np.float32(w) - 0.5) * np.float32(np.cos(theta)) + 0.5
    t = np.clip(t + 0.15 * (smooth_noise(rng, size, min(size) * 0.3) - 0.5), 0.0, 1.0)
    return colour_field(_colour(rng), _colour(rng), t)


def _scene(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Out-of-focus 'scene': several colours mixed by smooth noise, often split by a horizon."""
    s = min(size)
    rgb = colour_field(_colour(rng), _colour(rng), fractal_noise(rng, size, s * 0.5, 3))
    for _ in range(rng.integers(1, 3)):
        weight = smooth_noise(rng, size, s * rng.uniform(0.1, 0.4)) ** 2
        rgb += weight * (_colour(rng) - rgb)
    if rng.random() < 0.4:
        y, x = grid(size)
        yr, _ = rotate(y, x, size[0] * rng.uniform(0.2, 0.8), size[1] / 2, rng.normal(0.0, 0.2))
        ground = coverage(-yr, rng.uniform(1.0, 20.0))
        rgb += ground * (_colour(rng) * 0.8 - rgb)
    return rgb


def _pattern(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Stripes, checks or wood-like grain in two colours, warped and shaded."""
    s = min(size)
    y, x = grid(size)
    yr, xr = rotate(y, x, 0.0, 0.0, rng.uniform(0.0, np.pi))
    warp = (smooth_noise(rng, size, s * 0.3) - 0.5) * np.float32(rng.uniform(0.0, 30.0))
    freq = np.float32(2 * np.pi / rng.uniform(4.0, 40.0))
    wave = np.sin((xr + warp) * freq)
    if rng.random() < 0.35:
        wave = wave * np.sin((yr + warp) * freq)
    t = 0.5 + 0.5 * np.tanh(wave * np.float32(rng.uniform(0.5, 8.0)))
    rgb = colour_field(_colour(rng), _colour(rng), t)
    return rgb * (0.75 + 0.5 * smooth_noise(rng, size, s * 0.4))


def _shapes(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Rectangles and ellipses with textured fills, drawn only inside their bounding boxes."""
    h, w = rgb.shape[1:]
    s = min(h, w)
    texture = smooth_noise(rng, (h, w), rng.uniform(2.0, 12.0)) - 0.5
    for _ in range(rng.integers(2, 12)):
        half = rng.uniform(0.03, 0.3, 2) * s
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        reach = float(np.hypot(*half)) + 4.0
        y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, h)
        x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        y = np.arange(y0, y1, dtype=np.float32)[:, None]
        x = np.arange(x0, x1, dtype=np.float32)[None, :]
        yr, xr = rotate(y, x, cy, cx, rng.uniform(0.0, np.pi))
        if rng.random() < 0.5:
            sd = sd_box(yr, xr, half[0], half[1], rng.uniform(0.0, min(half)))
        else:
            sd = sd_ellipse(yr, xr, half[0], half[1])
        a = coverage(sd, rng.uniform(0.7, 4.0))
        fill = _colour(rng) * (1.0 + rng.uniform(0.0, 0.8) * texture[y0:y1, x0:x1])
        window = rgb[:, y0:y1, x0:x1]
        window += a * (fill - window)
    return rgb


def _bokeh(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Out-of-focus light discs, often over a darkened base like a night scene."""
    h, w = rgb.shape[1:]
    rgb = rgb * np.float32(rng.uniform(0.3, 1.0))
    for _ in range(rng.integers(5, 40)):
        r = rng.uniform(3.0, 0.1 * min(h, w) + 3.0)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        y0, y1 = max(int(cy - r - 3), 0), min(int(cy + r + 3) + 1, h)
        x0, x1 = max(int(cx - r - 3), 0), min(int(cx + r + 3) + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        y = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        x = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        disc = coverage(np.sqrt(y * y + x * x) - np.float32(r), rng.uniform(1.0, 3.0))
        a = disc * rng.uniform(0.2, 0.7)
        light = random_colour(rng, 0.5) * 0.5 + 0.5
        window = rgb[:, y0:y1, x0:x1]
        window += a * (light - window)
    return rgb


def _clutter(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    """Grass, twigs or stray hairs: the same strands the foregrounds use, in the background."""
    h, w = rgb.shape[1:]
    n = int(rng.uniform(20, 400))
    roots = rng.uniform((0, 0), (h, w), (n, 2))
    heading = rng.normal(np.pi if rng.random() < 0.5 else rng.uniform(0, 2 * np.pi), 0.4, n)
    direction = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    tips = roots + direction * (rng.gamma(2.0, 0.04 * min(h, w), n) + 3.0)[:, None]
    bend = rng.normal(0.0, 0.15, (n, 2)) * np.linalg.norm(tips - roots, axis=1, keepdims=True)
    strands = Strands(
        roots, 0.5 * (roots + tips) + bend, tips, rng.uniform(0.4, 2.5, n), rng.uniform(0.6, 1.4, n)
    )
    a, brightness = splat_strands(strands, (h, w))
    colour = np.clip(_colour(rng) * brightness, 0.0, 1.0)
    return rgb + a * (colour - rgb)


def _defocus(rgb: np.ndarray, factor: float) -> np.ndarray:
    """Cheap blur: box-downsample by `factor`, then bicubic back up, per channel."""
    h, w = rgb.shape[1:]
    small = (max(2, round(w / factor)), max(2, round(h / factor)))
    channels = []
    for c in range(3):
        image = Image.fromarray(np.ascontiguousarray(rgb[c], dtype=np.float32), mode="F")
        channels.append(upsample(np.asarray(image.resize(small, Image.Resampling.BOX)), (h, w)))
    return np.stack(channels)
