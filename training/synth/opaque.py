"""Salient opaque foregrounds (AIM type SO): portraits, animals and furry blobs.

Each subject is a signed distance silhouette with an opaque interior and an anti-aliased edge,
plus a layer of thin strands (hair or fur) rooted just inside the boundary. The two layers are
flattened with `over`, so the returned alpha is exactly the coverage the colours were mixed
with. Silhouettes are drawn as distances on a half-resolution grid and upsampled (see
`half_grid`); coverage, colour and strands are full resolution.
"""

from __future__ import annotations

import numpy as np

from training.synth.draw import (
    Size,
    Strands,
    bezier_strands,
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
    splat_strands,
)
from training.synth.texture import (
    FUR,
    HAIR,
    SKIN,
    fractal_noise,
    paint,
    pick,
    random_colour,
    smooth_noise,
)

Layers = tuple[np.ndarray, np.ndarray]


def opaque(rng: np.random.Generator, size: Size) -> Layers:
    """(rgb, alpha) of one opaque subject filling roughly 20-70% of the frame."""
    build = (_portrait, _animal, _blob)[rng.choice(3, p=[0.5, 0.3, 0.2])]
    return build(rng, size)


def _portrait(rng: np.random.Generator, size: Size) -> Layers:
    """Head, hair volume, neck and shoulders cut by the bottom edge, with flyaway hair."""
    h, w = size
    s = min(h, w)
    y, x = half_grid(size)
    ry = s * rng.uniform(0.14, 0.25)
    rx = ry * rng.uniform(0.72, 0.88)
    cy = max(h * rng.uniform(0.22, 0.42), 0.9 * ry)
    cx = w * rng.uniform(0.38, 0.62)
    yr, xr = rotate(y, x, cy, cx, rng.normal(0.0, 0.1))
    face = sd_ellipse(yr - 0.1 * ry, xr, 0.95 * ry, 0.95 * rx)
    lift = ry * rng.uniform(0.05, 0.2)
    hair = sd_ellipse(yr + lift, xr, ry * rng.uniform(1.0, 1.2), rx * rng.uniform(1.05, 1.3))
    if rng.random() < 0.4:  # long hair falling behind the shoulders
        fall = sd_capsule(yr, xr, (0.0, 0.0), (ry * rng.uniform(1.5, 2.8), 0.0), rx * 1.05)
        hair = smooth_union(hair, fall, 0.3 * rx)
    neck = sd_capsule(yr, xr, (0.5 * ry, 0.0), (1.7 * ry, 0.0), rx * rng.uniform(0.4, 0.5))
    top = ry * rng.uniform(1.5, 2.0)
    tx = rx * rng.uniform(2.2, 3.2)
    ty = tx * rng.uniform(1.0, 1.8)
    if rng.random() < 0.5:
        torso = sd_ellipse(yr - top - ty, xr, ty, tx)
    else:
        torso = sd_box(yr - top - ty, xr, ty, tx, 0.7 * tx)
    skin = np.minimum(face, neck)
    body = smooth_union(smooth_union(hair, skin, 0.2 * rx), torso, 0.4 * rx)
    body += _wobble(rng, body.shape, s, rng.uniform(0.0, 2.5))
    on_hair = (hair - body) < 2.0  # where the hair volume forms the outline: strand roots

    t = fractal_noise(rng, size, s * 0.08, octaves=5)
    hair_rgb = paint(pick(rng, HAIR), pick(rng, HAIR), t)
    skin_c = pick(rng, SKIN)
    skin_rgb = paint(skin_c, skin_c * 0.85, 1.0 - t)
    cloth_c = random_colour(rng, rng.uniform(0.1, 1.0))
    cloth_rgb = paint(cloth_c, cloth_c * rng.uniform(0.4, 0.9), t)
    rgb = hair_rgb.copy()
    rgb += from_half(coverage(skin, 2.0), size) * (skin_rgb - rgb)
    rgb += from_half(coverage(torso, 1.5), size) * (cloth_rgb - rgb)
    body = from_half(body, size)
    rgb = _shade(rng, rgb, body, cx, s)

    strands = _boundary_strands(
        rng,
        body,
        on_hair,
        density=rng.uniform(0.4, 1.5),
        mean_length=s * rng.uniform(0.02, 0.07),
        spread=0.3,
        gravity=rng.uniform(0.1, 1.0),
        curl=0.6,
        widths=(0.3, 1.2),
    )
    return _with_strands(rng, rgb, body, hair_rgb, strands)


def _animal(rng: np.random.Generator, size: Size) -> Layers:
    """Four-legged silhouette: body, head, ears, legs and tail, covered in short fur."""
    h, w = size
    s = min(h, w)
    y, x = half_grid(size)
    bry = s * rng.uniform(0.16, 0.26)
    brx = bry * rng.uniform(1.3, 1.9)
    cy, cx = h * rng.uniform(0.45, 0.62), w * rng.uniform(0.42, 0.58)
    face = rng.choice([-1.0, 1.0])
    yr, xr = rotate(y, x, cy, cx, rng.normal(0.0, 0.08))
    sd = sd_ellipse(yr, xr, bry, brx)
    hr = bry * rng.uniform(0.55, 0.8)
    hy, hx = -bry * rng.uniform(0.5, 1.0), face * brx * rng.uniform(0.8, 1.0)
    head = sd_ellipse(yr - hy, xr - hx, hr, hr * rng.uniform(0.9, 1.25))
    for side in (-1.0, 1.0):  # ears
        tip = (hy - hr * rng.uniform(1.1, 1.5), hx + side * hr * rng.uniform(0.3, 0.6))
        ear = sd_capsule(yr, xr, (hy - 0.5 * hr, hx + side * 0.4 * hr), tip, 0.22 * hr)
        head = np.minimum(head, ear)
    leg_r = brx * rng.uniform(0.08, 0.13)
    leg_len = bry * rng.uniform(1.0, 1.8)
    tail_end = (-bry * rng.uniform(0.2, 1.2), -face * brx * rng.uniform(1.2, 1.6))
    limbs = sd_capsule(yr, xr, (-0.2 * bry, -face * 0.8 * brx), tail_end, 0.12 * bry)
    for lx in (-0.65, -0.4, 0.4, 0.65):
        px = lx * brx + rng.normal(0.0, 0.05 * brx)
        leg = sd_capsule(yr, xr, (0.3 * bry, px), (leg_len, px + rng.normal(0, leg_r)), leg_r)
        limbs = np.minimum(limbs, leg)
    # Parts do not touch each other, so one fillet per group is enough (and 3x cheaper).
    sd = smooth_union(smooth_union(sd, head, 0.15 * bry), limbs, 0.15 * bry)
    sd += _wobble(rng, sd.shape, s, rng.uniform(0.0, 2.0))
    sd = from_half(sd, size)

    c0, c1 = pick(rng, FUR), pick(rng, FUR)
    t = fractal_noise(rng, size, s * 0.12, octaves=5)
    c1 = c1 if rng.random() < 0.5 else c0 * 0.8
    fur_rgb = paint(c0, c1, t)
    rgb = _shade(rng, fur_rgb, sd, cx, s)
    strands = _boundary_strands(
        rng,
        sd,
        None,
        density=rng.uniform(1.0, 3.0),
        mean_length=s * rng.uniform(0.01, 0.03),
        spread=0.5,
        gravity=0.2,
        curl=0.3,
        widths=(0.3, 0.9),
    )
    return _with_strands(rng, rgb, sd, fur_rgb, strands)


def _blob(rng: np.random.Generator, size: Size) -> Layers:
    """A plush, rock or fruit-like wobbly blob; usually furry, sometimes crisp-edged."""
    h, w = size
    s = min(h, w)
    y, x = half_grid(size)
    cy, cx = h * rng.uniform(0.4, 0.7), w * rng.uniform(0.35, 0.65)
    yr, xr = rotate(y, x, cy, cx, rng.uniform(0, np.pi))
    stretch = rng.uniform(0.7, 1.4)
    amps = rng.uniform(0.0, 0.12, 4) / np.arange(1, 5)
    radius = s * rng.uniform(0.24, 0.4)
    sd = sd_star(yr * stretch, xr / stretch, radius, amps, rng.uniform(0, 6.3, 4))
    sd += _wobble(rng, sd.shape, s, rng.uniform(0.0, 3.0))
    sd = from_half(sd, size)
    palette = FUR if rng.random() < 0.6 else HAIR
    t = fractal_noise(rng, size, s * 0.2, octaves=5)
    base = paint(pick(rng, palette), random_colour(rng, 0.6), t)
    rgb = _shade(rng, base, sd, cx, s)
    if rng.random() < 0.25:
        return rgb, coverage(sd, rng.uniform(0.8, 2.0))
    strands = _boundary_strands(
        rng,
        sd,
        None,
        density=rng.uniform(0.5, 2.5),
        mean_length=s * rng.uniform(0.01, 0.05),
        spread=0.5,
        gravity=0.1,
        curl=0.5,
        widths=(0.3, 1.0),
    )
    return _with_strands(rng, rgb, sd, base, strands)


def _wobble(rng: np.random.Generator, shape: Size, s: float, amplitude: float) -> np.ndarray:
    """Low-frequency offset in pixels for a half-resolution signed distance: irregular edges."""
    return (smooth_noise(rng, shape, s * 0.04) - 0.5) * np.float32(2.0 * amplitude)


def _shade(
    rng: np.random.Generator, rgb: np.ndarray, sd: np.ndarray, cx: float, s: float
) -> np.ndarray:
    """Darken toward the silhouette edge and along a side light, for a rounded 3-D look."""
    depth = np.clip(-sd / np.float32(0.15 * s), 0.0, 1.0)
    rim = rng.uniform(0.0, 0.35)
    _, x = grid(sd.shape)
    side = 1.0 + np.float32(rng.uniform(-0.4, 0.4) / s) * (x - np.float32(cx))
    rgb *= (1.0 - rim + rim * depth) * side
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def _boundary_strands(
    rng: np.random.Generator,
    sd: np.ndarray,
    allowed_half: np.ndarray | None,
    *,
    density: float,
    mean_length: float,
    spread: float,
    gravity: float,
    curl: float,
    widths: tuple[float, float],
) -> Strands:
    """Strands rooted on the silhouette edge, growing mostly outward.

    allowed_half: optional half-resolution mask of where roots may be (None: everywhere).
    density: strands per boundary pixel, capped so the total strand length stays near 0.15 px
    per frame pixel (the splatting cost). Direction: the outward normal plus Gaussian spread
    and a downward pull; roots sit up to 3 px inside so strands emerge from the body.
    """
    h, w = sd.shape
    candidates = np.flatnonzero(np.abs(sd) < 0.8)
    if allowed_half is not None:
        cy, cx = np.divmod(candidates, w)
        candidates = candidates[allowed_half[cy // 2, cx // 2]]
    n = min(int(candidates.size * density), int(0.15 * h * w / (mean_length + 2.0)))
    if n == 0:
        return Strands(*(np.zeros((0, 2)),) * 3, np.zeros(0), np.zeros(0))
    flat = rng.choice(candidates, n)
    iy, ix = np.divmod(flat, w)
    gy = sd[np.minimum(iy + 1, h - 1), ix] - sd[np.maximum(iy - 1, 0), ix]
    gx = sd[iy, np.minimum(ix + 1, w - 1)] - sd[iy, np.maximum(ix - 1, 0)]
    normal = np.stack([gy, gx], axis=1).astype(np.float64)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-6)
    direction = normal + rng.normal(0.0, spread, (n, 2))
    direction[:, 0] += gravity
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-6)
    roots = np.stack([iy, ix], axis=1) + rng.uniform(-0.5, 0.5, (n, 2))
    roots -= normal * rng.uniform(0.5, 3.0, (n, 1))
    lengths = np.minimum(rng.gamma(1.5, mean_length / 1.5, n), 0.35 * min(h, w)) + 2.0
    p0, p1, p2 = bezier_strands(rng, roots, direction, lengths, curl)
    return Strands(
        p0, p1, p2, rng.uniform(*widths, n), rng.uniform(0.75, 1.25, n), fade=rng.uniform(0.3, 1.0)
    )


def _with_strands(
    rng: np.random.Generator,
    rgb: np.ndarray,
    sd: np.ndarray,
    strand_base: np.ndarray,
    strands: Strands,
) -> Layers:
    """Body layer under its strand layer; strand colour is the local texture times a brightness."""
    body_alpha = coverage(sd, rng.uniform(0.8, 2.2))
    strand_alpha, brightness = splat_strands(strands, sd.shape)
    tint = rng.uniform(0.9, 1.15)  # strands catch light a little differently from the mass
    strand_rgb = strand_base * (brightness * np.float32(tint))
    np.clip(strand_rgb, 0.0, 1.0, out=strand_rgb)
    return over([(rgb, body_alpha), (strand_rgb, strand_alpha)])
