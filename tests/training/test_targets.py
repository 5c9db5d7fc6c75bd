"""Training targets against maps drawn by hand.

Every expected array below is a literal worked out in the comment above it;
none is computed by calling the code under test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from training.targets import (
    semantic_classes,
    transition_band,
    trimap_from_alpha,
    unified_target,
)

# index:            0    1      2    3    4    5      6    7    8
ROW = np.array([[0.0, 0.005, 0.0, 0.5, 1.0, 0.995, 1.0, 1.0, 1.0]])
# Only index 3 is semi-transparent (0.01 <= a <= 0.99); 0.005 is background, 0.995 foreground.


# --------------------------------------------------------------------------
# Trimap
# --------------------------------------------------------------------------


def test_trimap_radius_0_marks_only_semi_transparent_pixels() -> None:
    trimap = trimap_from_alpha(ROW, 0)
    assert trimap.dtype == np.float32
    assert trimap.shape == (1, 9)
    np.testing.assert_array_equal(trimap, [[0, 0, 0, 0.5, 1, 1, 1, 1, 1]])


def test_trimap_radius_1_and_2_dilate_the_unknown_band() -> None:
    # A single row: the disk's vertical taps fall off the image, so radius r widens index 3
    # to indices 3-r .. 3+r.
    np.testing.assert_array_equal(trimap_from_alpha(ROW, 1), [[0, 0, 0.5, 0.5, 0.5, 1, 1, 1, 1]])
    np.testing.assert_array_equal(
        trimap_from_alpha(ROW, 2), [[0, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 1]]
    )


def test_trimap_thresholds_are_inclusive() -> None:
    # 0.01 and 0.99 are unknown; 0.0099 is background and 0.9901 foreground.
    row = np.array([[0.0099, 0.01, 0.0, 0.99, 0.9901]])
    np.testing.assert_array_equal(trimap_from_alpha(row, 0), [[0, 0.5, 0, 0.5, 1]])
    # Same in float32: the thresholds are compared in the input's precision.
    np.testing.assert_array_equal(
        trimap_from_alpha(row.astype(np.float32), 0), [[0, 0.5, 0, 0.5, 1]]
    )


def test_trimap_dilation_uses_a_disk() -> None:
    alpha = np.ones((5, 5))
    alpha[2, 2] = 0.5
    # radius 1: dy^2 + dx^2 <= 1 is the 4-neighbour cross, 5 pixels.
    expected_r1 = np.array(
        [
            [1, 1, 1, 1, 1],
            [1, 1, 0.5, 1, 1],
            [1, 0.5, 0.5, 0.5, 1],
            [1, 1, 0.5, 1, 1],
            [1, 1, 1, 1, 1],
        ]
    )
    np.testing.assert_array_equal(trimap_from_alpha(alpha, 1), expected_r1)
    # radius 2: dy^2 + dx^2 <= 4 leaves out only the (+-2, +-1), (+-1, +-2) and (+-2, +-2)
    # offsets: 25 - 12 = 13 unknown pixels.
    expected_r2 = np.array(
        [
            [1, 1, 0.5, 1, 1],
            [1, 0.5, 0.5, 0.5, 1],
            [0.5, 0.5, 0.5, 0.5, 0.5],
            [1, 0.5, 0.5, 0.5, 1],
            [1, 1, 0.5, 1, 1],
        ]
    )
    np.testing.assert_array_equal(trimap_from_alpha(alpha, 2), expected_r2)
    assert int((trimap_from_alpha(alpha, 2) == 0.5).sum()) == 13


def test_trimap_without_unknown_pixels_is_the_binary_mask() -> None:
    alpha = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(trimap_from_alpha(alpha, 3), [[0, 1], [1, 0]])


# --------------------------------------------------------------------------
# Unified representation (seed 004, section 3.2)
# --------------------------------------------------------------------------


def test_unified_opaque_is_the_trimap() -> None:
    np.testing.assert_array_equal(
        unified_target(ROW, "opaque", 1), [[0, 0, 0.5, 0.5, 0.5, 1, 1, 1, 1]]
    )


def test_unified_transparent_is_a_duomap() -> None:
    # T > 0 (transition or foreground) becomes transition: only background stays 0.
    np.testing.assert_array_equal(
        unified_target(ROW, "transparent", 0), [[0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]
    )
    np.testing.assert_array_equal(
        unified_target(ROW, "transparent", 1), [[0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]
    )


def test_unified_nonsalient_is_a_unimap() -> None:
    unimap = unified_target(ROW, "nonsalient", 1)
    assert unimap.dtype == np.float32
    np.testing.assert_array_equal(unimap, np.full((1, 9), 0.5))


# --------------------------------------------------------------------------
# Class map
# --------------------------------------------------------------------------


def test_semantic_classes_mapping() -> None:
    classes = semantic_classes(np.array([[0.0, 0.5, 1.0], [1.0, 0.5, 0.0]], dtype=np.float32))
    assert classes.dtype == np.int64
    np.testing.assert_array_equal(classes, [[0, 1, 2], [2, 1, 0]])


def test_semantic_classes_of_a_duomap_row() -> None:
    # duomap of ROW with radius 0 (see above): 3 background pixels then 6 transition.
    duomap = np.array([[0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(semantic_classes(duomap), [[0, 0, 0, 1, 1, 1, 1, 1, 1]])


def test_semantic_classes_rejects_other_values() -> None:
    with pytest.raises(ValueError, match=r"\{0, 0\.5, 1\}"):
        semantic_classes(np.array([[0.0, 0.3]]))


# --------------------------------------------------------------------------
# Transition band around a binary mask
# --------------------------------------------------------------------------

SQUARE = np.zeros((7, 7), dtype=bool)
SQUARE[2:5, 2:5] = True  # 3x3 square in a 7x7 image


def test_transition_band_width_1() -> None:
    # Inside: the 8 border pixels of the square touch the outside (distance 1); the centre is
    # at distance 2. Outside: the 12 pixels 4-adjacent to the square's sides are at distance 1;
    # the diagonal corners are at sqrt(2) > 1. 8 + 12 = 20.
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 0, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    band = transition_band(SQUARE, 1)
    assert band.dtype == np.bool_
    np.testing.assert_array_equal(band, expected)
    assert int(band.sum()) == 20


def test_transition_band_width_2() -> None:
    # Inside: all 9 (centre at distance 2). Outside, by offsets (dy, dx) from the square:
    # (0,1) (0,2) (1,0) (2,0) give 6 pixels each, (1,1) the 4 diagonal corners (sqrt 2);
    # (1,2) (2,1) (2,2) are at sqrt 5 or sqrt 8 > 2. 9 + 24 + 4 = 37 = 49 - 12.
    expected = np.array(
        [
            [0, 0, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1, 1, 1],
            [0, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 0, 0],
        ],
        dtype=bool,
    )
    band = transition_band(SQUARE, 2)
    np.testing.assert_array_equal(band, expected)
    assert int(band.sum()) == 37


def test_transition_band_width_0_and_uniform_masks_are_empty() -> None:
    assert not transition_band(SQUARE, 0).any()
    assert not transition_band(np.ones((4, 4), dtype=bool), 2).any()
    assert not transition_band(np.zeros((4, 4)), 2).any()


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: trimap_from_alpha(np.zeros(9), 0), "2-D"),
        (lambda: trimap_from_alpha(np.zeros((1, 1, 9)), 0), "2-D"),
        (lambda: trimap_from_alpha(np.zeros((1, 9)), -1), ">= 0"),
        (lambda: trimap_from_alpha(np.full((1, 2), 1.5), 0), r"\[0, 1\]"),
        (lambda: trimap_from_alpha(np.full((1, 2), np.nan), 0), r"\[0, 1\]"),
        (lambda: unified_target(np.zeros((1, 9)), "glass", 0), "kind"),  # type: ignore[arg-type]
        (lambda: unified_target(np.zeros((1, 9)), "opaque", -2), ">= 0"),
        (lambda: transition_band(np.zeros(9, dtype=bool), 1), "2-D"),
        (lambda: transition_band(np.zeros((3, 3), dtype=bool), -1), ">= 0"),
    ],
)
def test_invalid_inputs_raise(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
