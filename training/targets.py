"""Training targets derived from a ground-truth alpha matte.

The unified semantic representation follows seed 004 (section 3.2): the
traditional trimap ``T`` in {0, 0.5, 1} (background, transition, foreground)
is generalised per image type into

* salient opaque (``"opaque"``):           ``U = T``                (trimap)
* salient transparent (``"transparent"``): ``U = 0.5 where T > 0``  (duomap)
* non-salient (``"nonsalient"``):          ``U = 0.5`` everywhere   (unimap)

All functions are pure and work on single (H, W) maps.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "Kind",
    "semantic_classes",
    "transition_band",
    "trimap_from_alpha",
    "unified_target",
]

Kind = Literal["opaque", "transparent", "nonsalient"]

_KINDS: tuple[str, ...] = get_args(Kind)

# Alpha values inside [_LOW, _HIGH] count as semi-transparent (the trimap's unknown band).
_LOW = 0.01
_HIGH = 0.99


def _as_alpha(alpha: ArrayLike) -> NDArray[np.floating]:
    arr = np.asarray(alpha)
    if arr.ndim != 2:
        raise ValueError(f"alpha must be a 2-D (H, W) matte, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        # Keep the input precision so that e.g. float32 0.01 counts as exactly 0.01.
        out = arr
    elif np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        out = arr.astype(np.float64)
    else:
        raise ValueError(f"alpha must be a real-valued array, got dtype {arr.dtype}")
    # Written so that NaN fails the check too.
    if not np.all((out >= 0.0) & (out <= 1.0)):
        raise ValueError("alpha values must lie in [0, 1]")
    return out


def _check_radius(radius: int, name: str = "radius") -> int:
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer):
        raise ValueError(f"{name} must be an int, got {type(radius).__name__}")
    if radius < 0:
        raise ValueError(f"{name} must be >= 0, got {radius}")
    return int(radius)


def _disk(radius: int) -> NDArray[np.bool_]:
    """(2r+1, 2r+1) bool disk of offsets with dy^2 + dx^2 <= r^2 (r = 1: the 4-neighbour cross)."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2


def trimap_from_alpha(alpha: ArrayLike, radius: int) -> NDArray[np.float32]:
    """Traditional trimap from a ground-truth matte.

    Args:
        alpha: (H, W) float matte in [0, 1].
        radius: dilation radius in pixels of the unknown band (disk structuring
            element, ``dy^2 + dx^2 <= radius^2``); 0 means no dilation.

    Returns:
        (H, W) float32 trimap ``T``: 0.5 on the unknown band (``0.01 <= alpha <= 0.99``
        dilated by ``radius``), otherwise 1 where ``alpha > 0.99`` and 0 where
        ``alpha < 0.01``.
    """
    a = _as_alpha(alpha)
    radius = _check_radius(radius)
    low, high = a.dtype.type(_LOW), a.dtype.type(_HIGH)
    unknown = (a >= low) & (a <= high)
    if radius > 0 and unknown.any():
        unknown = ndimage.binary_dilation(unknown, structure=_disk(radius))
    trimap = np.where(a > high, 1.0, 0.0).astype(np.float32)
    trimap[unknown] = 0.5
    return trimap


def unified_target(alpha: ArrayLike, kind: Kind, radius: int) -> NDArray[np.float32]:
    """Unified semantic representation ``U`` (seed 004, section 3.2).

    Args:
        alpha: (H, W) float matte in [0, 1].
        kind: image type: ``"opaque"`` (trimap), ``"transparent"`` (duomap:
            background vs transition) or ``"nonsalient"`` (unimap: all transition).
        radius: unknown-band dilation radius, as in :func:`trimap_from_alpha`.

    Returns:
        (H, W) float32 map with values in {0, 0.5, 1}.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    trimap = trimap_from_alpha(alpha, radius)
    if kind == "opaque":
        return trimap
    if kind == "transparent":
        # No explicit foreground in transparent objects: everything not background is transition.
        return np.where(trimap > 0, 0.5, 0.0).astype(np.float32)
    return np.full_like(trimap, 0.5)


def semantic_classes(unified: ArrayLike) -> NDArray[np.int64]:
    """Class indices for the semantic head's cross entropy.

    Args:
        unified: map of any shape (typically (H, W)) with values in {0, 0.5, 1}.

    Returns:
        int64 array of the same shape: 0 background, 1 transition, 2 foreground.
    """
    u = np.asarray(unified)
    if u.ndim == 0:
        raise ValueError("unified must have at least one dimension")
    if not np.all(np.isin(u, (0.0, 0.5, 1.0))):
        raise ValueError("unified values must be in {0, 0.5, 1}")
    return np.rint(u.astype(np.float64) * 2.0).astype(np.int64)


def transition_band(mask: ArrayLike, width: int) -> NDArray[np.bool_]:
    """Pixels within ``width`` px (euclidean) of the edge of a binary mask, on either side.

    Used to leave out the band around a binary mask's edge when scoring a soft
    alpha against it. A pixel is in the band when its distance to the nearest
    pixel of the other class is ``<= width``; 4-neighbours across the edge are
    at distance 1, so ``width=0`` gives an empty band.

    Args:
        mask: (H, W) binary mask (bool, or numbers where nonzero is True).
        width: band half-width in pixels, >= 0.

    Returns:
        (H, W) bool array. All False when the mask has no edge (all one class).
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be a 2-D (H, W) array, got shape {m.shape}")
    width = _check_radius(width, "width")
    m = m.astype(bool)
    if m.all() or not m.any():
        return np.zeros(m.shape, dtype=bool)
    # edt gives each nonzero pixel its distance to the nearest zero pixel.
    dist_inside = ndimage.distance_transform_edt(m)
    dist_outside = ndimage.distance_transform_edt(~m)
    dist_to_other = np.where(m, dist_inside, dist_outside)
    return dist_to_other <= width
