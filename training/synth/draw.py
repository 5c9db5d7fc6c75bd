"""Vectorised rasterisation: signed distance shapes, anti-aliased coverage and strand splatting.

Signed distances are in pixels, negative inside. Coverage of a shape is a box filter across its
edge, clip(0.5 - d / softness), which is the exact area coverage of a straight edge when
softness is 1 and a wider (defocused) ramp when it is larger. Strands are sampled every 0.7
pixel and splatted with bilinear weights, so a strand of width w adds w * length of coverage in
total and sub-pixel strands get partial alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

Size = tuple[int, int]


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) as ints, refusing sizes too small to draw a subject in."""
    if len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ValueError(f"size must be at least 16x16, got {h}x{w}")
    return h, w


def grid(size: Size) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y column, x row) that broadcast to (H, W)."""
    h, w = size
    return (
        np.arange(h, dtype=np.float32)[:, None],
        np.arange(w, dtype=np.float32)[None, :],
    )


def rotate(
    y: np.ndarray, x: np.ndarray, cy: float, cx: float, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates relative to (cy, cx) expressed in a frame turned by `angle` radians."""
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    dy, dx = y - np.float32(cy), x - np.float32(cx)
    return c * dy - s * dx, s * dy + c * dx


def sd_ellipse(y: np.ndarray, x: np.ndarray, ry: float, rx: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse centred at the origin.

    Uses k0 * (k0 - 1) / k1 (k0, k1: norms of p/r and p/r^2), accurate near the edge, which is
    all that coverage needs.
    """
    qy, qx = y / np.float32(ry), x / np.float32(rx)
    k0 = np.sqrt(qy * qy + qx * qx)
    k1 = np.sqrt((qy / np.float32(ry)) ** 2 + (qx / np.float32(rx)) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def sd_capsule(
    y: np.ndarray, x: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], r: float
) -> np.ndarray:
    """Exact signed distance to a segment p0-p1 (as (y, x)) thickened by radius r."""
    ay, ax = y - np.float32(p0[0]), x - np.float32(p0[1])
    by, bx = np.float32(p1[0] - p0[0]), np.float32(p1[1] - p0[1])
    h = np.clip((ay * by + ax * bx) / max(float(by * by + bx * bx), 1e-6), 0.0, 1.0)
    return np.sqrt((ay - h * by) ** 2 + (ax - h * bx) ** 2) - np.float32(r)


def sd_box(y: np.ndarray, x: np.ndarray, hy: float, hx: float, r: float) -> np.ndarray:
    """Exact signed distance to a rounded box centred at the origin with half sizes hy, hx."""
    qy, qx = np.abs(y) - np.float32(hy - r), np.abs(x) - np.float32(hx - r)
    outside = np.sqrt(np.maximum(qy, 0.0) ** 2 + np.maximum(qx, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qy, qx), 0.0) - np.float32(r)


def sd_star(
    y: np.ndarray, x: np.ndarray, radius: float, amps: np.ndarray, phases: np.ndarray
) -> np.ndarray:
    """Approximate signed distance to a blob whose radius wobbles with angle (Fourier terms)."""
    theta = np.arctan2(y, x)
    wobble = np.ones_like(theta)
    for k, (a, p) in enumerate(zip(amps, phases, strict=True), start=2):
        wobble += np.float32(a) * np.cos(k * theta + np.float32(p))
    return np.sqrt(y * y + x * x) - np.float32(radius) * wobble


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Union of two signed distances with a rounded fillet of size k (polynomial smooth min)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + h * (a - b) - k * h * (1.0 - h)


def coverage(sd: np.ndarray, softness: float = 1.0) -> np.ndarray:
    """Anti-aliased area coverage of the inside of a signed distance field, float32 in [0, 1]."""
    cov = (0.5 - sd / np.float32(softness)).astype(np.float32, copy=False)
    return np.clip(cov, 0.0, 1.0, out=cov)


@dataclass(frozen=True)
class Strands:
    """Quadratic Bezier strands, one row per strand: points are (y, x) pixel positions."""

    p0: np.ndarray  # (S, 2) root
    p1: np.ndarray  # (S, 2) control point
    p2: np.ndarray  # (S, 2) tip
    width: np.ndarray  # (S,) pixels; below 1 gives partial coverage
    value: np.ndarray  # (S,) per-strand scalar (brightness), averaged where strands overlap
    fade: float = 1.0  # 0: uniform along the strand, 1: tapers to nothing at the tip


def splat_strands(strands: Strands, size: Size, step: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Render strands; returns (coverage clipped to [0, 1], coverage-weighted mean value).

    Where no strand lands the value map holds the mean of all strand values, so that it is
    defined everywhere.
    """
    p0, p1, p2 = strands.p0, strands.p1, strands.p2
    # Arc length of a quadratic Bezier lies between its chord and its control polygon.
    chord = np.linalg.norm(p2 - p0, axis=1)
    polygon = np.linalg.norm(p1 - p0, axis=1) + np.linalg.norm(p2 - p1, axis=1)
    length = 0.5 * (chord + polygon)
    counts = np.maximum(np.ceil(length / step).astype(np.int64), 1)
    index = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    # Midpoint samples, each standing for length / count of the strand: exact total mass.
    t = ((np.arange(index.size) - starts[index] + 0.5) / counts[index]).astype(np.float32)
    u = 1.0 - t
    a, b, c = u * u, 2.0 * u * t, t * t
    y = a * p0[index, 0] + b * p1[index, 0] + c * p2[index, 0]
    x = a * p0[index, 1] + b * p1[index, 1] + c * p2[index, 1]
    taper = 1.0 - np.float32(strands.fade) * t**1.5
    mass = (strands.width * length / counts).astype(np.float32)[index] * taper
    acc, val = _bilinear_splat(
        y.astype(np.float32),
        x.astype(np.float32),
        mass,
        strands.value.astype(np.float32)[index],
        size,
    )
    fill = np.float32(strands.value.mean() if strands.value.size else 0.0)
    value = np.where(acc > 0, val / np.maximum(acc, np.float32(1e-12)), fill)
    return np.minimum(acc, 1.0, out=acc), value.astype(np.float32, copy=False)


def _bilinear_splat(
    y: np.ndarray, x: np.ndarray, mass: np.ndarray, value: np.ndarray, size: Size
) -> tuple[np.ndarray, np.ndarray]:
    """Accumulate mass and mass*value onto the four pixels around each sample: (H, W) maps.

    The canvas has a one-pixel margin so that no per-corner bounds checks are needed; the
    margin is cropped off. Two bincounts over all four corners keep the full-size
    temporaries few, which is what costs time here.
    """
    h, w = size
    keep = (y > -1) & (y < h) & (x > -1) & (x < w)
    if not keep.all():
        y, x, mass, value = y[keep], x[keep], mass[keep], value[keep]
    y, x = y + 1, x + 1  # positive, so truncation is floor
    yi, xi = y.astype(np.int32), x.astype(np.int32)
    fy, fx = y - yi, x - xi
    stride = w + 2
    base = yi * stride + xi
    index = np.concatenate([base, base + 1, base + stride, base + stride + 1])
    right = mass * fx
    left = mass - right
    weight = np.concatenate([left - left * fy, right - right * fy, left * fy, right * fy])
    cells = (h + 2) * stride
    maps = [
        np.bincount(index, wgt, cells).reshape(h + 2, stride)[1 : h + 1, 1 : w + 1]
        for wgt in (weight, weight * np.tile(value, 4))
    ]
    return maps[0].astype(np.float32), maps[1].astype(np.float32)


def bezier_strands(
    rng: np.random.Generator,
    roots: np.ndarray,
    directions: np.ndarray,
    lengths: np.ndarray,
    curl: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control points for strands growing from `roots` along unit `directions`.

    The control point is pushed sideways by up to `curl` times the length, bending the strand.
    """
    tips = roots + directions * lengths[:, None]
    normal = np.stack([directions[:, 1], -directions[:, 0]], axis=1)
    bend = rng.uniform(-curl, curl, len(roots)) * lengths
    mids = 0.5 * (roots + tips) + normal * bend[:, None]
    return roots, mids, tips


def over(layers: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten (rgb, alpha) layers, bottom first, into one straight-colour layer (F, A).

    A = 1 - prod(1 - a), so any opaque layer gives exactly 1. Each layer pulls F toward its
    colour by a / A_new, which keeps A * F equal to the premultiplied stack: A F + (1 - A) B
    is then the same image as compositing the layers over B one by one. Where A is 0, F keeps
    the bottom layer's colour, so it is defined everywhere.
    """
    rgb, alpha = layers[0]
    rgb = rgb.copy()
    for top_rgb, a in layers[1:]:
        alpha = 1.0 - (1.0 - alpha) * (1.0 - a)
        pull = a / np.where(alpha > 0, alpha, 1.0)
        rgb += pull * (top_rgb - rgb)
    return np.clip(rgb, 0.0, 1.0, out=rgb), alpha.astype(np.float32, copy=False)


def half_grid(size: Size) -> tuple[np.ndarray, np.ndarray]:
    """Half-resolution grid in full-resolution pixel units (y column, x row).

    Half-resolution pixel j covers full-resolution pixels 2j and 2j + 1, so its centre is at
    2j + 0.5. Smooth signed distances are drawn on it and brought back with `from_half`, 4x
    fewer pixels for the many operations a silhouette needs.
    """
    h2, w2 = (size[0] + 1) // 2, (size[1] + 1) // 2
    return (
        (np.arange(h2, dtype=np.float32) * 2 + 0.5)[:, None],
        (np.arange(w2, dtype=np.float32) * 2 + 0.5)[None, :],
    )


def from_half(field: np.ndarray, size: Size) -> np.ndarray:
    """Bilinear upsampling of a `half_grid` field to full resolution, float32.

    Distances are locally linear across an edge, so the edge position survives exactly up to
    the shape's curvature.
    """
    h, w = size
    # Odd reflection extrapolates linearly, so the outermost rows stay exact too.
    padded = np.pad(field.astype(np.float32, copy=False), 1, mode="reflect", reflect_type="odd")
    image = Image.fromarray(padded, mode="F")
    box = (1.0, 1.0, 1.0 + w / 2, 1.0 + h / 2)
    return np.asarray(image.resize((w, h), Image.Resampling.BILINEAR, box=box))
