"""Tests for matting.compositing: blend math, shape checks and uint8 conversion."""

from __future__ import annotations

import numpy as np
import pytest

from matting.compositing import composite, premultiply, to_float, to_uint8


def _inputs(h: int = 4, w: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    fg = rng.random((h, w, 3), dtype=np.float32)
    alpha = rng.random((h, w), dtype=np.float32)
    bg = rng.random((h, w, 3), dtype=np.float32)
    return fg, alpha, bg


def test_composite_matches_formula() -> None:
    fg, alpha, bg = _inputs()
    out = composite(fg, alpha, bg)
    expected = fg * alpha[..., None] + bg * (1 - alpha[..., None])
    assert out.dtype == np.float32
    assert out.shape == fg.shape
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_composite_alpha_extremes_select_foreground_or_background() -> None:
    fg, _, bg = _inputs()
    np.testing.assert_allclose(composite(fg, np.ones(fg.shape[:2], np.float32), bg), fg, atol=1e-7)
    np.testing.assert_allclose(composite(fg, np.zeros(fg.shape[:2], np.float32), bg), bg, atol=1e-7)


def test_composite_colour_background_broadcasts() -> None:
    fg, alpha, _ = _inputs()
    red = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    out = composite(fg, alpha, red)
    full = composite(fg, alpha, np.broadcast_to(red, fg.shape).copy())
    np.testing.assert_allclose(out, full, atol=1e-7)
    # A tuple of floats is a colour too.
    np.testing.assert_allclose(composite(fg, alpha, (1.0, 0.0, 0.0)), full, atol=1e-7)


def test_composite_half_alpha_green_over_red() -> None:
    fg = np.zeros((2, 2, 3), np.float32)
    fg[..., 1] = 1.0
    out = composite(fg, np.full((2, 2), 0.5, np.float32), np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(out, np.broadcast_to([0.5, 0.5, 0.0], (2, 2, 3)), atol=1e-7)


def test_composite_accepts_float64_and_returns_float32() -> None:
    fg, alpha, bg = _inputs()
    out = composite(fg.astype(np.float64), alpha.astype(np.float64), bg.astype(np.float64))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, composite(fg, alpha, bg), atol=1e-6)


@pytest.mark.parametrize(
    ("fg_shape", "alpha_shape", "bg_shape", "match"),
    [
        ((4, 5), (4, 5), (4, 5, 3), r"foreground must have shape \(H, W, 3\)"),
        ((4, 5, 4), (4, 5), (4, 5, 3), r"foreground must have shape \(H, W, 3\)"),
        ((4, 5, 3), (5, 4), (4, 5, 3), r"alpha must have shape"),
        ((4, 5, 3), (4, 5, 1), (4, 5, 3), r"alpha must have shape"),
        ((4, 5, 3), (4, 5), (4, 6, 3), r"background must be"),
        ((4, 5, 3), (4, 5), (4,), r"background must be"),
    ],
)
def test_composite_rejects_bad_shapes(fg_shape, alpha_shape, bg_shape, match) -> None:
    with pytest.raises(ValueError, match=match):
        composite(
            np.zeros(fg_shape, np.float32),
            np.zeros(alpha_shape, np.float32),
            np.zeros(bg_shape, np.float32),
        )


def test_composite_rejects_uint8_with_a_hint() -> None:
    fg, alpha, bg = _inputs()
    with pytest.raises(ValueError, match=r"uint8.*to_float"):
        composite((fg * 255).astype(np.uint8), alpha, bg)
    with pytest.raises(ValueError, match="background must be a float array"):
        composite(fg, alpha, (255, 0, 0))


def test_premultiply() -> None:
    fg, alpha, _ = _inputs()
    out = premultiply(fg, alpha)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, fg * alpha[..., None], atol=1e-7)
    # Premultiplied foreground is the composite over black.
    np.testing.assert_allclose(out, composite(fg, alpha, np.zeros(3, np.float32)), atol=1e-6)
    with pytest.raises(ValueError, match="alpha must have shape"):
        premultiply(fg, alpha[:-1])


def test_to_uint8_rounds_and_clips() -> None:
    x = np.array([-0.5, 0.0, 0.5 / 255, 0.49 / 255, 0.5, 1.0, 1.5, np.nan, np.inf, -np.inf])
    out = to_uint8(x)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 1, 0, 128, 255, 255, 0, 255, 0]


def test_to_uint8_keeps_shape_and_rejects_integers() -> None:
    assert to_uint8(np.zeros((3, 4, 3), np.float32)).shape == (3, 4, 3)
    with pytest.raises(ValueError, match="float"):
        to_uint8(np.zeros((2, 2), np.uint8))


def test_to_float_and_round_trip() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    f = to_float(values)
    assert f.dtype == np.float32
    assert f.shape == values.shape
    assert f[0, 0] == 0.0
    assert f[-1, -1] == 1.0
    np.testing.assert_allclose(f, values / 255.0, atol=1e-7)
    np.testing.assert_array_equal(to_uint8(f), values)
    with pytest.raises(ValueError, match="uint8"):
        to_float(np.zeros((2, 2), np.float32))
