"""Alpha compositing math on float images: pure numpy, no I/O.

Conventions: alpha is (H, W) float32 in [0, 1]; foreground and background
colours are (H, W, 3) float32 in [0, 1], straight (not premultiplied) unless a
name says otherwise. Results are float32. The functions work in place on
their own temporaries so that an 8K frame (33 MP, 400 MB per float RGB array)
needs as few full-size buffers as possible.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["composite", "premultiply", "to_float", "to_uint8"]


def _float_array(x: ArrayLike, name: str) -> np.ndarray:
    """`x` as float32 (no copy when it already is), refusing integer data.

    Integer images hold 0..255, not [0, 1]; silently accepting them would give
    results 255 times too bright, so they must go through to_float first.
    """
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(
            f"{name} must be a float array with values in [0, 1], got dtype {a.dtype}"
            + ("; convert uint8 images with to_float" if a.dtype == np.uint8 else "")
        )
    return a.astype(np.float32, copy=False)


def _check_pair(foreground: np.ndarray, alpha: np.ndarray) -> None:
    """Foreground (H, W, 3) and alpha (H, W) of the same height and width."""
    if foreground.ndim != 3 or foreground.shape[2] != 3:
        raise ValueError(f"foreground must have shape (H, W, 3), got {foreground.shape}")
    if alpha.shape != foreground.shape[:2]:
        raise ValueError(
            f"alpha must have shape (H, W) = {foreground.shape[:2]} to match the "
            f"foreground {foreground.shape}, got {alpha.shape}"
        )


def composite(foreground: ArrayLike, alpha: ArrayLike, background: ArrayLike) -> np.ndarray:
    """Foreground over background: F * a + B * (1 - a).

    foreground: (H, W, 3) float in [0, 1], straight colour.
    alpha: (H, W) float in [0, 1].
    background: (H, W, 3) float image, or (3,) float RGB colour used everywhere.
    Returns (H, W, 3) float32.
    """
    f = _float_array(foreground, "foreground")
    a = _float_array(alpha, "alpha")
    b = _float_array(background, "background")
    _check_pair(f, a)
    if b.shape not in ((3,), f.shape):
        raise ValueError(
            f"background must be an RGB colour of shape (3,) or an image of shape "
            f"{f.shape} matching the foreground, got {b.shape}"
        )
    # B + (F - B) * a is the same blend with one full-size temporary instead of three.
    out = np.subtract(f, b, dtype=np.float32)
    out *= a[..., None]
    out += b
    return out


def premultiply(foreground: ArrayLike, alpha: ArrayLike) -> np.ndarray:
    """Foreground colour premultiplied by alpha: F * a.

    foreground: (H, W, 3) float in [0, 1]; alpha: (H, W) float in [0, 1].
    Returns (H, W, 3) float32 (the composite over black).
    """
    f = _float_array(foreground, "foreground")
    a = _float_array(alpha, "alpha")
    _check_pair(f, a)
    return np.multiply(f, a[..., None], dtype=np.float32)


def to_uint8(x: ArrayLike) -> np.ndarray:
    """Float [0, 1] -> uint8 0..255, rounding half up; any shape.

    Values outside [0, 1] are clipped and NaN becomes 0, so a network output
    that overshoots slightly still encodes instead of wrapping around.
    """
    a = _float_array(x, "x")
    y = np.multiply(a, 255.0, dtype=np.float32)
    y += 0.5
    # Before the clip, because clip keeps NaN and a NaN cast to uint8 is undefined.
    np.nan_to_num(y, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(y, 0.0, 255.0, out=y)
    # Non-negative, so truncation toward zero is floor(x * 255 + 0.5).
    return y.astype(np.uint8)


def to_float(x: ArrayLike) -> np.ndarray:
    """uint8 0..255 -> float32 [0, 1] (x / 255); any shape."""
    a = np.asarray(x)
    if a.dtype != np.uint8:
        raise ValueError(f"x must be a uint8 array, got dtype {a.dtype}")
    y = a.astype(np.float32)
    y /= 255.0
    return y
