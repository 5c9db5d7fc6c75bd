"""Tests for training.synth: procedural foregrounds (three AIM types) and backgrounds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from training.synth import KINDS, Foreground, generate_background, generate_foreground
from training.synth.draw import Strands, from_half, grid, half_grid, over, splat_strands

ODD_SIZES = [(97, 131), (131, 97)]
SEEDS = range(10)
# Characters are checked on a size where a few pixels of soft edge are a small share.
CHAR_SIZE = (128, 128)


def _fg(seed: int, kind: str | None, size: tuple[int, int] = CHAR_SIZE) -> Foreground:
    return generate_foreground(np.random.default_rng(seed), size, kind)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", ODD_SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_foreground_shapes_dtypes_and_ranges(kind: str, size: tuple[int, int]) -> None:
    for seed in range(4):
        fg = _fg(seed, kind, size)
        assert fg.kind == kind
        assert fg.rgb.shape == (*size, 3) and fg.rgb.dtype == np.float32
        assert fg.alpha.shape == size and fg.alpha.dtype == np.float32
        assert fg.rgb.flags.c_contiguous
        # F must be a real colour everywhere, including where alpha is 0.
        assert np.isfinite(fg.rgb).all() and np.isfinite(fg.alpha).all()
        assert fg.rgb.min() >= 0.0 and fg.rgb.max() <= 1.0
        assert fg.alpha.min() >= 0.0 and fg.alpha.max() <= 1.0
        assert fg.alpha.max() > 0.0


def test_random_kind_draws_every_kind_mostly_opaque() -> None:
    kinds = [_fg(seed, None, (48, 48)).kind for seed in range(60)]
    assert set(kinds) == set(KINDS)
    assert kinds.count("opaque") > kinds.count("transparent") > 0
    assert kinds.count("opaque") > kinds.count("nonsalient") > 0


def test_bad_arguments_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="kind"):
        generate_foreground(rng, (64, 64), "glass")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16x16"):
        generate_foreground(rng, (8, 64))
    with pytest.raises(ValueError, match="height, width"):
        generate_background(rng, (64, 64, 3))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
def test_foreground_is_deterministic_per_seed(kind: str) -> None:
    a, b, c = _fg(7, kind, (97, 131)), _fg(7, kind, (97, 131)), _fg(8, kind, (97, 131))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.alpha, b.alpha)
    assert not np.array_equal(a.alpha, c.alpha)


def test_background_is_deterministic_per_seed() -> None:
    a = generate_background(np.random.default_rng(3), (97, 131))
    b = generate_background(np.random.default_rng(3), (97, 131))
    c = generate_background(np.random.default_rng(4), (97, 131))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_opaque_has_solid_interior_and_soft_edge() -> None:
    for seed in SEEDS:
        alpha = _fg(seed, "opaque").alpha
        assert (alpha == 1).mean() > 0.08, seed
        assert 0.01 < (alpha > 0).mean() < 0.95, seed
        assert ((alpha > 0) & (alpha < 1)).sum() > 50, seed


def test_opaque_has_strands_beyond_the_body() -> None:
    """Hair or fur: partial alpha more than 3 px from the solid body, in most subjects."""
    with_strands = 0
    for seed in SEEDS:
        alpha = _fg(seed, "opaque").alpha
        distance = ndimage.distance_transform_edt(alpha < 1)
        stray = (alpha > 0.02) & (alpha < 1) & (distance > 3)
        with_strands += int(stray.sum() >= 30)
    assert with_strands >= 7


def test_transparent_has_coverage_but_no_opaque_interior() -> None:
    opaque_cores = [_solid_core(_fg(seed, "opaque").alpha) for seed in SEEDS]
    for seed in SEEDS:
        alpha = _fg(seed, "transparent").alpha
        assert (alpha > 0.05).mean() > 0.01, seed
        assert _solid_core(alpha) < 0.002, seed
    assert min(opaque_cores) > 0.02


def test_nonsalient_is_partial_over_most_of_the_frame() -> None:
    for seed in SEEDS:
        alpha = _fg(seed, "nonsalient").alpha
        assert (alpha > 0).mean() > 0.5, seed
        assert alpha.mean() < 0.6, seed
        assert (alpha == 1).mean() < 0.01, seed


@pytest.mark.parametrize("kind", KINDS)
def test_composite_over_any_background_stays_in_range(kind: str) -> None:
    size = (97, 131)
    for seed in range(3):
        fg = _fg(seed, kind, size)
        backgrounds = [
            generate_background(np.random.default_rng(100 + seed), size),
            np.zeros((*size, 3), np.float32),
            np.ones((*size, 3), np.float32),
        ]
        a = fg.alpha[..., None]
        for bg in backgrounds:
            image = a * fg.rgb + (1 - a) * bg
            assert image.min() >= -1e-6 and image.max() <= 1 + 1e-6


def test_background_shapes_ranges_and_variety() -> None:
    means = []
    for seed in range(12):
        bg = generate_background(np.random.default_rng(seed), (97, 131))
        assert bg.shape == (97, 131, 3) and bg.dtype == np.float32
        assert np.isfinite(bg).all() and bg.min() >= 0.0 and bg.max() <= 1.0
        means.append(bg.mean(axis=(0, 1)))
    # Not one look: mean colours spread out across seeds.
    assert np.std(np.array(means), axis=0).min() > 0.05


def test_over_equals_compositing_layers_one_by_one() -> None:
    rng = np.random.default_rng(0)
    shape = (3, 6, 7)
    layers = [(rng.random(shape, dtype=np.float32), rng.random(shape[1:], dtype=np.float32))]
    layers.append((rng.random(shape, dtype=np.float32), rng.random(shape[1:], dtype=np.float32)))
    opaque = np.zeros(shape[1:], np.float32)
    opaque[2, 3] = 1.0  # one opaque pixel must give exactly alpha 1
    layers.insert(1, (rng.random(shape, dtype=np.float32), opaque))
    rgb, alpha = over(layers)
    background = rng.random(shape, dtype=np.float32)
    expected = background.copy()
    for layer_rgb, layer_alpha in layers:
        expected = layer_alpha * layer_rgb + (1 - layer_alpha) * expected
    np.testing.assert_allclose(alpha * rgb + (1 - alpha) * background, expected, atol=1e-5)
    assert alpha[2, 3] == 1.0


def test_over_keeps_bottom_colour_where_nothing_is_drawn() -> None:
    bottom = np.full((3, 4, 4), 0.25, np.float32)
    top = np.full((3, 4, 4), 0.75, np.float32)
    rgb, alpha = over([(bottom, np.zeros((4, 4), np.float32)), (top, np.zeros((4, 4), np.float32))])
    np.testing.assert_array_equal(alpha, 0.0)
    np.testing.assert_array_equal(rgb, bottom)


def test_thin_strand_has_partial_coverage_and_its_area() -> None:
    """A 0.5 px wide, 20 px long strand covers 10 px^2 in total, never a full pixel."""
    p0, p2 = np.array([[10.0, 5.0]]), np.array([[10.0, 25.0]])
    strands = Strands(p0, 0.5 * (p0 + p2), p2, np.array([0.5]), np.array([0.8]), fade=0.0)
    coverage, value = splat_strands(strands, (21, 31))
    assert coverage.sum() == pytest.approx(10.0, rel=1e-3)
    assert 0.3 < coverage.max() < 0.6
    np.testing.assert_allclose(value, 0.8, rtol=1e-5)


def test_from_half_reproduces_linear_fields_exactly() -> None:
    size = (97, 131)
    y, x = half_grid(size)
    full = from_half(3 * y - 2 * x + 1, size)
    yy, xx = grid(size)
    np.testing.assert_allclose(full, 3 * yy - 2 * xx + 1, atol=1e-3)


def _solid_core(alpha: np.ndarray) -> float:
    """Share of the frame that is alpha == 1 even after a 2 px erosion (an opaque interior)."""
    return float(ndimage.binary_erosion(alpha == 1, iterations=2).mean())
