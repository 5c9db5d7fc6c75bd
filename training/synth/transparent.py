"""Salient transparent / meticulous foregrounds (AIM type STM): glass, lace and nets, bags.

These have an object outline but no opaque interior: the whole object is a transition region
(the paper's duomap), so alpha stays below 1 except on a few thread crossings.
"""

from __future__ import annotations

import numpy as np

from training.synth.draw import (
    Size,
    coverage,
    from_half,
    grid,
    half_grid,
    over,
    rotate,
    sd_box,
    sd_capsule,
    sd_ellipse,
    sd_star,
    smooth_union,
)
from training.synth.texture import colour_field, fractal_noise, jitter, random_colour, smooth_noise

Layers = tuple[np.ndarray, np.ndarray]


def transparent(rng: np.random.Generator, size: Size) -> Layers:
    """(rgb, alpha) of one glass object, piece of lace or net, or plastic bag."""
    build = (_glass, _lace, _bag)[rng.choice(3, p=[0.4, 0.35, 0.25])]
    return build(rng, size)


def _glass_outline(rng: np.random.Generator, size: Size) -> tuple[np.ndarray, float]:
    """Half-resolution signed distance of a ball, bottle, tumbler or wine glass, and its radius."""
    h, w = size
    s = min(h, w)
    y, x = half_grid(size)
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    y, x = rotate(y, x, cy, cx, rng.normal(0.0, 0.15))
    r = s * rng.uniform(0.15, 0.3)
    shape = rng.integers(4)
    if shape == 0:  # ball, lens, crystal
        return sd_ellipse(y, x, r, r * rng.uniform(0.8, 1.3)), r
    if shape == 1:  # bottle: body and neck
        body = sd_box(y - 0.4 * r, x, 1.1 * r, 0.6 * r, 0.25 * r)
        neck = sd_capsule(y, x, (-0.6 * r, 0.0), (-1.5 * r, 0.0), 0.18 * r)
        return smooth_union(body, neck, 0.3 * r), 0.6 * r
    if shape == 2:  # tumbler
        return sd_box(y, x, r * rng.uniform(0.9, 1.4), r * rng.uniform(0.5, 0.8), 0.1 * r), 0.6 * r
    bowl = sd_ellipse(y + 0.5 * r, x, 0.7 * r, 0.75 * r)  # wine glass: bowl, stem, foot
    stem = sd_capsule(y, x, (0.0, 0.0), (1.0 * r, 0.0), 0.05 * r + 1.0)
    foot = sd_ellipse(y - 1.0 * r, x, 0.08 * r + 1.0, 0.5 * r)
    return smooth_union(smooth_union(bowl, stem, 0.1 * r), foot, 0.1 * r), 0.5 * r


def _glass(rng: np.random.Generator, size: Size) -> Layers:
    """Faint tinted interior, denser rim, and bright streak highlights."""
    s = min(size)
    sd_half, r = _glass_outline(rng, size)
    sd = from_half(sd_half, size)
    inside = coverage(sd, rng.uniform(0.8, 1.5))
    body = rng.uniform(0.08, 0.35) * (0.6 + 0.8 * smooth_noise(rng, size, s * 0.1))
    rim_width = rng.uniform(1.5, max(1.5, 0.12 * r))  # tiny crops: no wider than 1.5 px
    rim = rng.uniform(0.4, 0.8) * np.exp(np.minimum(sd, 0.0) / np.float32(rim_width))
    glass_a = inside * (1.0 - (1.0 - body) * (1.0 - rim))
    tint = jitter(rng, np.array([0.85, 0.92, 0.95], np.float32) * rng.uniform(0.3, 1.0), 0.15)
    shade = 0.7 + 0.3 * smooth_noise(rng, size, s * 0.15)
    glass_rgb = np.clip(colour_field(tint * 0.6, tint, shade), 0.0, 1.0)

    # Specular streaks: soft capsules inside the object, white; smooth, so half resolution.
    y, x = half_grid(size)
    spec = np.zeros(sd_half.shape, dtype=np.float32)
    inner = np.argwhere(sd_half < -0.3 * r) * 2 + 0.5
    for _ in range(rng.integers(1, 4) if inner.size else 0):
        a = inner[rng.integers(len(inner))]
        b = a + rng.normal(0.0, 0.5 * r, 2)
        width = rng.uniform(1.0, max(1.0, 0.12 * r))
        streak = coverage(sd_capsule(y, x, tuple(a), tuple(b), width), rng.uniform(1.0, 4.0))
        spec = np.maximum(spec, streak * rng.uniform(0.4, 0.9))
    spec = np.clip(from_half(spec, size), 0.0, 1.0) * inside
    white = np.full((3, *size), rng.uniform(0.9, 1.0), dtype=np.float32)
    return over([(glass_rgb, glass_a.astype(np.float32)), (white, spec)])


def _lace(rng: np.random.Generator, size: Size) -> Layers:
    """A region of lace (fabric with a lattice of holes) or a net (crossing threads)."""
    h, w = size
    s = min(h, w)
    y, x = grid(size)
    cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
    yr, xr = rotate(y, x, cy, cx, rng.uniform(0.0, np.pi))
    warp = rng.uniform(0.0, 6.0)
    u = xr + (smooth_noise(rng, size, s * 0.3) - 0.5) * np.float32(2 * warp)
    v = yr + (smooth_noise(rng, size, s * 0.3) - 0.5) * np.float32(2 * warp)
    period = rng.uniform(5.0, 18.0)
    du = u - np.float32(period) * np.round(u / np.float32(period))
    if rng.random() < 0.5:  # net: threads along u and v, optionally a third diagonal set
        thread = rng.uniform(0.8, 3.0)
        dv = v - np.float32(period) * np.round(v / np.float32(period))
        weave = np.maximum(coverage(np.abs(du) - thread / 2), coverage(np.abs(dv) - thread / 2))
        if rng.random() < 0.3:
            d = (u + v) * np.float32(np.sqrt(0.5))
            dd = d - np.float32(period) * np.round(d / np.float32(period))
            weave = np.maximum(weave, coverage(np.abs(dd) - thread / 2))
        weave *= rng.uniform(0.7, 1.0)
    else:  # lace: fabric with round holes, rows offset by half a period
        row = np.round(v / np.float32(period))
        shifted = u + row * np.float32(period / 2)
        du = shifted - np.float32(period) * np.round(shifted / np.float32(period))
        dv = v - np.float32(period) * row
        hole = rng.uniform(0.25, 0.45) * period
        weave = coverage(hole - np.sqrt(du * du + dv * dv)) * rng.uniform(0.6, 0.95)
    amps = rng.uniform(0.0, 0.15, 3)
    region = sd_star(yr, xr, s * rng.uniform(0.25, 0.42), amps, rng.uniform(0, 6.3, 3))
    alpha = weave * coverage(region, rng.uniform(1.0, 3.0))
    c = random_colour(rng, rng.uniform(0.0, 0.6)) if rng.random() < 0.5 else _near_white(rng)
    rgb = colour_field(c * 0.75, c, smooth_noise(rng, size, s * 0.1))
    return np.clip(rgb, 0.0, 1.0), alpha.astype(np.float32)


def _bag(rng: np.random.Generator, size: Size) -> Layers:
    """Thin plastic: low alpha film with brighter, denser creases and optional handles."""
    h, w = size
    s = min(h, w)
    y, x = grid(size)
    cy, cx = h * rng.uniform(0.45, 0.6), w * rng.uniform(0.4, 0.6)
    yr, xr = rotate(y, x, cy, cx, rng.normal(0.0, 0.2))
    r = s * rng.uniform(0.22, 0.35)
    amps = rng.uniform(0.0, 0.08, 4)
    sd = sd_star(yr * rng.uniform(0.8, 1.1), xr, r, amps, rng.uniform(0, 6.3, 4))
    if rng.random() < 0.6:  # handles: rings above the body
        for side in (-1.0, 1.0):
            ring = np.abs(sd_ellipse(yr + r, xr - side * 0.35 * r, 0.4 * r, 0.2 * r))
            sd = np.minimum(sd, ring - rng.uniform(1.5, 4.0))
    film = coverage(sd, rng.uniform(0.8, 2.0))
    n = fractal_noise(rng, size, s * 0.25, octaves=3)
    crease = np.clip(1.0 - np.abs(2.0 * n - 1.0) * rng.uniform(4.0, 10.0), 0.0, 1.0)
    base = rng.uniform(0.1, 0.35)
    alpha = film * (base + (rng.uniform(0.55, 0.85) - base) * crease)
    c = _near_white(rng) if rng.random() < 0.6 else random_colour(rng, 0.8)
    rgb = colour_field(c * 0.8, np.minimum(c * 1.2, 1.0), crease)
    return np.clip(rgb, 0.0, 1.0), alpha.astype(np.float32)


def _near_white(rng: np.random.Generator) -> np.ndarray:
    """A white or light grey with a faint cast."""
    return jitter(rng, np.full(3, rng.uniform(0.75, 0.97), np.float32), 0.04)
