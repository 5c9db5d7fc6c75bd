"""Alpha-matte error metrics as defined by the Deep Image Matting benchmark.

SAD, MSE, MAD, Gradient and Connectivity follow the MATLAB evaluation code
released with Deep Image Matting (Xu et al., CVPR 2017), so numbers computed
here can be compared with published tables.

Conventions shared by every metric:

* ``pred`` and ``gt`` are alpha mattes of shape (H, W): floats in [0, 1], or
  uint8 in [0, 255], which is divided by 255 as the MATLAB code does.
* ``mask`` is an optional bool array of shape (H, W) selecting the region the
  error is summed over; ``None`` means the whole image. The benchmark's region
  is the trimap's unknown band, ``trimap_unknown(trimap)``.
* SAD, Gradient and Connectivity are sums over the region and are reported
  divided by 1000, the scale of published tables. MSE and MAD are means and
  are not rescaled.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "connectivity_error",
    "connectivity_thresholds",
    "evaluate",
    "gaussian_gradient",
    "gaussian_gradient_kernel",
    "gradient_error",
    "mad",
    "mse",
    "sad",
    "transition_region",
    "trimap_unknown",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# The benchmark reports the summed errors (SAD, Gradient, Connectivity) in
# thousands because its test images are large.
_REPORT_SCALE = 1000.0

# 4-connectivity, as bwconncomp(..., 4) in the reference code.
_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


# --------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------


def _as_alpha(alpha: ArrayLike, name: str) -> FloatArray:
    """Validate one (H, W) matte and return it as float64 in [0, 1]."""
    arr = np.asarray(alpha)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) alpha matte, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"{name} must be float in [0, 1] or uint8 in [0, 255], got dtype {arr.dtype}"
        )
    out = arr.astype(np.float64)
    # Written so that NaN fails the check too.
    if not np.all((out >= 0.0) & (out <= 1.0)):
        raise ValueError(
            f"{name} values must lie in [0, 1], got min {np.nanmin(out)!r}, "
            f"max {np.nanmax(out)!r} (NaN present: {bool(np.isnan(out).any())})"
        )
    return out


def _as_mask(mask: ArrayLike | None, shape: tuple[int, ...]) -> BoolArray:
    """Validate the region mask; None selects every pixel."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        # A uint8 trimap passed here by mistake would silently select every
        # non-zero pixel, so only an explicit bool mask is accepted.
        raise ValueError(
            f"mask must be a bool array, got dtype {arr.dtype}; "
            "use trimap_unknown(trimap) to turn a trimap into a mask"
        )
    if arr.shape != shape:
        raise ValueError(f"mask shape {arr.shape} does not match the matte shape {shape}")
    return arr


def _prepare(
    pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None
) -> tuple[FloatArray, FloatArray, BoolArray]:
    p = _as_alpha(pred, "pred")
    g = _as_alpha(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {p.shape} and {g.shape}")
    return p, g, _as_mask(mask, p.shape)


# --------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------


def trimap_unknown(trimap: ArrayLike) -> BoolArray:
    """Unknown band of a trimap: the benchmark's evaluation region.

    Args:
        trimap: (H, W) integer array (normally uint8) with 0 = background,
            255 = foreground and 128 = unknown.

    Returns:
        (H, W) bool array, True where ``trimap == 128``.
    """
    arr = np.asarray(trimap)
    if arr.ndim != 2:
        raise ValueError(f"trimap must be a 2-D (H, W) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"trimap must be an integer (uint8) array with 128 marking unknown, "
            f"got dtype {arr.dtype}"
        )
    return arr == 128


def transition_region(alpha: ArrayLike, low: float = 0.05, high: float = 0.95) -> BoolArray:
    """Pixels whose alpha is strictly between ``low`` and ``high``.

    Useful as an evaluation region when no trimap exists: it keeps the
    semi-transparent pixels and drops the solid foreground and background.

    Args:
        alpha: (H, W) matte, float in [0, 1] or uint8.
        low, high: open bounds in alpha units, 0 <= low < high <= 1.

    Returns:
        (H, W) bool array, True where ``low < alpha < high``.
    """
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    a = _as_alpha(alpha, "alpha")
    return (a > low) & (a < high)


# --------------------------------------------------------------------------
# SAD, MSE, MAD
# --------------------------------------------------------------------------


def _sad(p: FloatArray, g: FloatArray, m: BoolArray) -> float:
    return float(np.abs(p - g)[m].sum()) / _REPORT_SCALE


def _mse(p: FloatArray, g: FloatArray, m: BoolArray) -> float:
    n = int(m.sum())
    if n == 0:
        return 0.0
    return float(np.square(p - g)[m].sum()) / n


def _mad(p: FloatArray, g: FloatArray, m: BoolArray) -> float:
    n = int(m.sum())
    if n == 0:
        return 0.0
    return float(np.abs(p - g)[m].sum()) / n


def sad(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Sum of absolute differences, divided by 1000.

    Args:
        pred, gt: (H, W) mattes, float in [0, 1] or uint8.
        mask: optional (H, W) bool region; None means the whole image.

    Returns:
        sum over the region of |pred - gt| (alpha units), divided by 1000.
    """
    return _sad(*_prepare(pred, gt, mask))


def mse(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean squared error over the region (not rescaled).

    Args:
        pred, gt: (H, W) mattes, float in [0, 1] or uint8.
        mask: optional (H, W) bool region; None means the whole image.

    Returns:
        sum over the region of (pred - gt)^2 divided by the number of region
        pixels, in squared alpha units; 0.0 for an empty region.
    """
    return _mse(*_prepare(pred, gt, mask))


def mad(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Mean absolute difference over the region (not rescaled).

    Args:
        pred, gt: (H, W) mattes, float in [0, 1] or uint8.
        mask: optional (H, W) bool region; None means the whole image.

    Returns:
        sum over the region of |pred - gt| divided by the number of region
        pixels, in alpha units; 0.0 for an empty region.
    """
    return _mad(*_prepare(pred, gt, mask))


# --------------------------------------------------------------------------
# Gradient
# --------------------------------------------------------------------------


def gaussian_gradient_kernel(sigma: float = 1.4) -> tuple[FloatArray, FloatArray]:
    """First-derivative-of-Gaussian kernels of the reference ``gaussgradient``.

    The half size is the reference's ``ceil(sigma * sqrt(-2 * log(sqrt(2 pi)
    * sigma * 1e-2)))``, the radius at which the unit-area Gaussian falls to
    1e-2: 4 for sigma 1.4, a 9 x 9 kernel.
    ``hx[i, j] = gauss(i - h) * dgauss(j - h)`` (row offset i - h, column
    offset j - h), scaled to unit L2 norm, and ``hy = hx.T``.

    Args:
        sigma: Gaussian standard deviation in pixels, 0 < sigma < ~39.9.

    Returns:
        (hx, hy), each (2h + 1, 2h + 1) float64: hx differentiates along
        columns (x), hy along rows (y).
    """
    if not sigma > 0.0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    epsilon = 1e-2
    peak = math.sqrt(2.0 * math.pi) * sigma * epsilon
    if peak >= 1.0:
        # The size formula needs log(peak) < 0; beyond this the kernel is empty.
        raise ValueError(f"sigma {sigma} is too large for the gaussgradient size formula")
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(peak)))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(offsets**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -offsets * gauss / sigma**2
    hx = np.outer(gauss, dgauss)
    hx /= math.sqrt(float(np.sum(hx * hx)))
    return hx, hx.T.copy()


def gaussian_gradient(image: ArrayLike, sigma: float = 1.4) -> tuple[FloatArray, FloatArray]:
    """Derivative-of-Gaussian gradients (gx, gy) of a 2-D image.

    Matches MATLAB ``imfilter(image, h, 'replicate', 'conv')``: a true
    convolution (kernel flipped) with edge-replicated borders, output the size
    of the input. With this sign convention gx is positive where the image
    increases to the right and gy positive where it increases downwards.

    Args:
        image: (H, W) real array (no range restriction).
        sigma: Gaussian standard deviation in pixels.

    Returns:
        (gx, gy), each (H, W) float64, in image units per pixel times the
        kernel's normalisation (the kernel has unit L2 norm, not unit gain).
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {img.shape}")
    hx, hy = gaussian_gradient_kernel(sigma)
    # scipy's 'nearest' mode repeats the edge pixel, which is MATLAB's 'replicate'.
    gx = ndimage.convolve(img, hx, mode="nearest")
    gy = ndimage.convolve(img, hy, mode="nearest")
    return gx, gy


def _mat2gray(a: FloatArray) -> FloatArray:
    """Min-max rescale to [0, 1] like MATLAB mat2gray; constant images are only clipped."""
    lo, hi = float(a.min()), float(a.max())
    if hi == lo:
        return np.clip(a, 0.0, 1.0)
    return (a - lo) / (hi - lo)


def _gradient_error(
    p: FloatArray, g: FloatArray, m: BoolArray, sigma: float, normalize: bool
) -> float:
    if normalize:
        p, g = _mat2gray(p), _mat2gray(g)
    pgx, pgy = gaussian_gradient(p, sigma)
    ggx, ggy = gaussian_gradient(g, sigma)
    err = np.square(np.hypot(pgx, pgy) - np.hypot(ggx, ggy))
    return float(err[m].sum()) / _REPORT_SCALE


def gradient_error(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    sigma: float = 1.4,
    normalize: bool = True,
) -> float:
    """Gradient error, divided by 1000.

    Both mattes are filtered with ``gaussian_gradient`` (sigma 1.4); the error
    is the sum over the region of (|grad pred| - |grad gt|)^2.

    Args:
        pred, gt: (H, W) mattes, float in [0, 1] or uint8.
        mask: optional (H, W) bool region; None means the whole image.
        sigma: Gaussian standard deviation in pixels.
        normalize: min-max rescale each matte over the whole image first, as
            the reference code does with ``mat2gray``. It changes nothing for
            a matte that contains both 0 and 1, the usual case.

    Returns:
        summed squared gradient-magnitude difference, divided by 1000.
    """
    p, g, m = _prepare(pred, gt, mask)
    return _gradient_error(p, g, m, sigma, normalize)


# --------------------------------------------------------------------------
# Connectivity
# --------------------------------------------------------------------------


def connectivity_thresholds(step: float = 0.1) -> FloatArray:
    """The thresholds ``0:step:1`` of the reference code, without float drift.

    ``3 * 0.1`` is 0.30000000000000004, which would put a pixel of alpha
    exactly 0.3 below the threshold 0.3; ``k / n`` gives the double nearest
    to each exact value, so alpha == k / n compares equal for float mattes and
    for uint8 ones divided by 255.

    Args:
        step: threshold spacing in alpha units, 0 < step <= 1.

    Returns:
        1-D float64 array 0, step, 2 step, ..., up to 1 (inclusive when step
        divides 1).
    """
    if not 0.0 < step <= 1.0:
        raise ValueError(f"step must be in (0, 1], got {step}")
    n = round(1.0 / step)
    if math.isclose(n * step, 1.0, rel_tol=1e-9):
        return np.arange(n + 1, dtype=np.float64) / n
    count = math.floor(1.0 / step + 1e-9)
    return np.arange(count + 1, dtype=np.float64) * step


def _largest_component(binary: BoolArray) -> BoolArray:
    """Largest 4-connected component of ``binary``; all False if there is none.

    bwconncomp numbers components in column-major order and MATLAB's max keeps
    the first of equal maxima, so ties go to the component met first going
    down the columns. Labelling the transpose reproduces that order.
    """
    if not binary.any():
        return np.zeros_like(binary)
    labels, _ = ndimage.label(binary.T, structure=_FOUR_CONNECTED)
    sizes = np.bincount(labels.ravel())[1:]  # label 0 is the background
    keep = int(np.argmax(sizes)) + 1  # argmax returns the first of equal maxima
    return (labels == keep).T


def _connectivity_error(
    p: FloatArray, g: FloatArray, m: BoolArray, step: float, theta: float
) -> float:
    thresholds = connectivity_thresholds(step)
    # level[y, x] ends as the last threshold at which the pixel still belonged
    # to the largest component shared by pred and gt; 1 if it never left.
    level = np.ones_like(p)
    unset = np.ones(p.shape, dtype=bool)
    for i in range(1, thresholds.size):
        t = thresholds[i]
        omega = _largest_component((p >= t) & (g >= t))
        left = unset & ~omega
        level[left] = thresholds[i - 1]
        unset &= ~left
    pd = p - level
    gd = g - level
    # Distances under theta count as fully connected (phi = 1).
    p_phi = 1.0 - pd * (pd >= theta)
    g_phi = 1.0 - gd * (gd >= theta)
    return float(np.abs(p_phi - g_phi)[m].sum()) / _REPORT_SCALE


def connectivity_error(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike | None = None,
    *,
    step: float = 0.1,
    theta: float = 0.15,
) -> float:
    """Connectivity error, divided by 1000.

    For each threshold t in 0:step:1 (from the second on) the largest
    4-connected component of ``(pred >= t) & (gt >= t)`` is found; a pixel's
    level l is the threshold before the first one at which it is outside that
    component (1 if never). With d = alpha - l, phi = 1 - d * (d >= theta),
    and the error is the sum over the region of |phi(pred) - phi(gt)|.

    Args:
        pred, gt: (H, W) mattes, float in [0, 1] or uint8.
        mask: optional (H, W) bool region; None means the whole image.
        step: threshold spacing in alpha units.
        theta: distances below this (alpha units) are ignored.

    Returns:
        summed connectivity difference, divided by 1000.
    """
    p, g, m = _prepare(pred, gt, mask)
    return _connectivity_error(p, g, m, step, theta)


# --------------------------------------------------------------------------
# All at once
# --------------------------------------------------------------------------


def evaluate(pred: ArrayLike, gt: ArrayLike, mask: ArrayLike | None = None) -> dict[str, float]:
    """All five metrics with their default settings.

    Args:
        pred, gt: (H, W) mattes, float in [0, 1] or uint8.
        mask: optional (H, W) bool region; None means the whole image.

    Returns:
        {"sad", "grad", "conn"}: sums divided by 1000; {"mse", "mad"}: means.
    """
    p, g, m = _prepare(pred, gt, mask)
    return {
        "sad": _sad(p, g, m),
        "mse": _mse(p, g, m),
        "mad": _mad(p, g, m),
        "grad": _gradient_error(p, g, m, 1.4, True),
        "conn": _connectivity_error(p, g, m, 0.1, 0.15),
    }
