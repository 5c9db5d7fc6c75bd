"""Matting metrics against values worked out by hand on small arrays.

Every expected number below is a literal derived in the comment above it; none
is computed by calling the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from matting.metrics import (
    connectivity_error,
    connectivity_thresholds,
    evaluate,
    gaussian_gradient,
    gaussian_gradient_kernel,
    gradient_error,
    mad,
    mse,
    sad,
    transition_region,
    trimap_unknown,
)

# --------------------------------------------------------------------------
# SAD, MSE, MAD
# --------------------------------------------------------------------------

# |pred - gt| = [[0.25, 0.5], [0.5, 0.0]]  (all exact binary fractions)
PRED = np.array([[0.0, 0.5], [1.0, 0.25]])
GT = np.array([[0.25, 1.0], [0.5, 0.25]])


def test_sad_mse_mad_whole_image() -> None:
    # SAD: (0.25 + 0.5 + 0.5 + 0) / 1000 = 1.25 / 1000
    assert sad(PRED, GT) == pytest.approx(0.00125, abs=1e-15)
    # MSE: (0.0625 + 0.25 + 0.25 + 0) / 4 = 0.5625 / 4
    assert mse(PRED, GT) == pytest.approx(0.140625, abs=1e-15)
    # MAD: 1.25 / 4
    assert mad(PRED, GT) == pytest.approx(0.3125, abs=1e-15)


def test_sad_mse_mad_with_region() -> None:
    top_row = np.array([[True, True], [False, False]])
    # region = top row, |diff| = 0.25, 0.5
    assert sad(PRED, GT, top_row) == pytest.approx(0.00075, abs=1e-15)  # 0.75 / 1000
    assert mse(PRED, GT, top_row) == pytest.approx(0.15625, abs=1e-15)  # 0.3125 / 2
    assert mad(PRED, GT, top_row) == pytest.approx(0.375, abs=1e-15)  # 0.75 / 2


def test_uint8_inputs_are_divided_by_255() -> None:
    pred = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    gt = np.array([[255, 255], [0, 0]], dtype=np.uint8)
    # |diff| / 255 = [[1, 0], [0.2, 0.4]]
    assert sad(pred, gt) == pytest.approx(0.0016, rel=1e-12)  # 1.6 / 1000
    assert mse(pred, gt) == pytest.approx(0.3, rel=1e-12)  # (1 + 0.04 + 0.16) / 4
    assert mad(pred, gt) == pytest.approx(0.4, rel=1e-12)  # 1.6 / 4
    # uint8 and float mattes mix: 102 / 255 = 0.4 against 0.4
    assert sad(pred, np.array([[0.0, 1.0], [0.2, 0.4]])) == pytest.approx(0.0, abs=1e-15)


def test_empty_region_gives_zero() -> None:
    empty = np.zeros((2, 2), dtype=bool)
    assert sad(PRED, GT, empty) == 0.0
    assert mse(PRED, GT, empty) == 0.0
    assert mad(PRED, GT, empty) == 0.0


def test_trimap_unknown_and_transition_region() -> None:
    trimap = np.array([[0, 128], [128, 255]], dtype=np.uint8)
    unknown = trimap_unknown(trimap)
    assert unknown.tolist() == [[False, True], [True, False]]
    # region = (0, 1) and (1, 0): |diff| = 0.5 + 0.5
    assert sad(PRED, GT, unknown) == pytest.approx(0.001, abs=1e-15)

    alpha = np.array([[0.0, 0.05, 0.5], [0.95, 0.96, 1.0]])
    # strict bounds: 0.05 and 0.95 themselves are outside
    assert transition_region(alpha).tolist() == [[False, False, True], [False, False, False]]
    assert transition_region(alpha, low=0.0, high=0.97).tolist() == [
        [False, True, True],
        [True, True, False],
    ]


# --------------------------------------------------------------------------
# Gradient: the derivative-of-Gaussian kernel
# --------------------------------------------------------------------------
#
# Hand derivation for sigma = 1.4 (2 sigma^2 = 3.92, sigma^2 = 1.96):
#   half size = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01)))
#             = ceil(1.4 * sqrt(-2 ln 0.0350928)) = ceil(1.4 * sqrt(6.699519))
#             = ceil(1.4 * 2.588343) = ceil(3.623680) = 4  -> 9 x 9
#   gauss(u) dgauss(v) = C e(u) e(v) (-v)   with e(x) = exp(-x^2 / 3.92) and
#   C = 1 / (2 pi sigma^4); C cancels in the unit-norm scaling, so
#   hx(u, v) = -v e(u) e(v) / sqrt(A B) with
#   A = sum_u e(u)^2 = 1 + 2 (0.6003730 + 0.1299226 + 0.0101342 + 0.0002849)
#     = 2.4814296                     (e(x)^2 = exp(-x^2 / 1.96))
#   B = sum_v v^2 e(v)^2 = 2 (0.6003730 + 4 * 0.1299226 + 9 * 0.0101342
#                             + 16 * 0.0002849) = 2.4316608
#   sqrt(A B) = sqrt(6.0339952) = 2.4564192
#   e(1) = 0.7748374, e(2) = 0.3604478, e(3) = 0.1006689, e(4) = 0.0168799


def test_kernel_size_from_the_epsilon_formula() -> None:
    hx, hy = gaussian_gradient_kernel(1.4)
    assert hx.shape == (9, 9)
    assert hy.shape == (9, 9)
    # sigma 1: ceil(sqrt(-2 ln(sqrt(2 pi) * 0.01))) = ceil(sqrt(7.372461)) = ceil(2.715229) = 3
    assert gaussian_gradient_kernel(1.0)[0].shape == (7, 7)


def test_kernel_structure() -> None:
    hx, hy = gaussian_gradient_kernel()
    # -v e(u) e(v) is odd in the column offset v, so exactly antisymmetric
    np.testing.assert_array_equal(hx[:, ::-1], -hx)
    np.testing.assert_array_equal(hx[:, 4], np.zeros(9))
    assert hx.sum() == pytest.approx(0.0, abs=1e-15)
    assert np.sqrt((hx**2).sum()) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(hy, hx.T)
    # left half positive, right half negative (dgauss(v) < 0 for v > 0)
    assert (hx[:, :4] > 0).all()
    assert (hx[:, 5:] < 0).all()


def test_kernel_entries_by_hand() -> None:
    hx, _ = gaussian_gradient_kernel(1.4)
    # row offset 0, column offset +1: -1 * e(0) e(1) / sqrt(AB) = -0.7748374 / 2.4564192
    assert hx[4, 5] == pytest.approx(-0.3154337, rel=1e-6)
    # row offset +1, column offset -2: 2 e(1) e(2) / sqrt(AB) = 0.5585749 / 2.4564192
    assert hx[5, 2] == pytest.approx(0.2273948, rel=1e-6)
    # row offset -4, column offset +4: -4 e(4) e(4) / sqrt(AB) = -0.0011397 / 2.4564192
    assert hx[0, 8] == pytest.approx(-4.6398e-4, rel=1e-3)


# --------------------------------------------------------------------------
# Gradient: filtering and the metric
# --------------------------------------------------------------------------
#
# Response to a ramp f(x) = c x seen by the whole 9-wide kernel.
# MATLAB imfilter(..., 'conv') is a true convolution:
#   gx = sum_{u,v} hx(u, v) f(x - v) = -c sum_{u,v} v hx(u, v)
#      = c * [sum_u e(u)] * [sum_v v^2 e(v)] / sqrt(AB)
#   sum_u e(u)     = 1 + 2 (0.7748374 + 0.3604478 + 0.1006689 + 0.0168799) = 3.5056680
#   sum_v v^2 e(v) = 2 (0.7748374 + 4 * 0.3604478 + 9 * 0.1006689 + 16 * 0.0168799)
#                  = 6.7854537
#   K = 3.5056680 * 6.7854537 / 2.4564192 = 9.6838308
# so gx = +9.6838308 c: positive for an image brightening to the right
# (a correlation would give the opposite sign).
K_RAMP = 9.6838308


def _ramp(rows: int, cols: int, scale: float, offset: float = 0.0) -> np.ndarray:
    return offset + scale * np.tile(np.arange(cols, dtype=np.float64), (rows, 1))


def test_gradient_sign_and_ramp_response() -> None:
    # 2 x 9 ramp, c = 1/8: column 4 sees the full ramp through the 9-wide kernel
    gt = _ramp(2, 9, 1 / 8)
    gx, gy = gaussian_gradient(gt)
    # 9.6838308 / 8 = 1.2104789, positive
    np.testing.assert_allclose(gx[:, 4], [1.2104789, 1.2104789], rtol=1e-6)
    # gt is constant down each column and hy is odd in the row offset
    np.testing.assert_allclose(gy, np.zeros_like(gy), atol=1e-12)
    # decreasing ramp: negative
    gx_down, _ = gaussian_gradient(gt[:, ::-1])
    np.testing.assert_allclose(gx_down[:, 4], [-1.2104789, -1.2104789], rtol=1e-6)


def test_gradient_error_constant_vs_ramp_interior() -> None:
    pred = np.full((2, 9), 0.5)  # gradient 0 everywhere
    gt = _ramp(2, 9, 1 / 8)  # spans [0, 1], so the mat2gray rescale leaves it alone
    interior = np.zeros((2, 9), dtype=bool)
    interior[:, 4] = True
    # per pixel (0 - 1.2104789)^2 = 1.4652590; two pixels -> 2.9305181; / 1000
    assert gradient_error(pred, gt, interior) == pytest.approx(0.0029305181, rel=1e-6)


def test_gradient_error_normalize_like_mat2gray() -> None:
    pred = np.full((2, 9), 0.5)
    gt = _ramp(2, 9, 1 / 16, offset=0.25)  # spans [0.25, 0.75]
    interior = np.zeros((2, 9), dtype=bool)
    interior[:, 4] = True
    # mat2gray stretches it to the c = 1/8 ramp above: 2.9305181 / 1000
    assert gradient_error(pred, gt, interior) == pytest.approx(0.0029305181, rel=1e-6)
    # without the rescale c = 1/16: 2 * (9.6838308 / 16)^2 = 0.7326295; / 1000
    assert gradient_error(pred, gt, interior, normalize=False) == pytest.approx(
        0.0007326295, rel=1e-6
    )


def test_gradient_error_replicate_border_on_5x5() -> None:
    # 5 x 5 ramp f(x) = x / 4, centre pixel x = 2. The kernel reaches x = -2..6,
    # which replicate padding clamps to 0..4:
    #   gx = [sum_u e(u)] / sqrt(AB) * sum_{v>0} v e(v) (f(2 + v) - f(2 - v))
    #   v = 1: 1 * 0.7748374 * (0.75 - 0.25) = 0.3874187
    #   v = 2: 2 * 0.3604478 * (1 - 0)       = 0.7208956
    #   v = 3: 3 * 0.1006689 * (1 - 0)       = 0.3020067   (clamped)
    #   v = 4: 4 * 0.0168799 * (1 - 0)       = 0.0675196   (clamped)
    #   sum = 1.4778406; gx = 3.5056680 * 1.4778406 / 2.4564192 = 2.1090937
    # error = 2.1090937^2 = 4.4482763; / 1000
    pred = np.full((5, 5), 0.5)
    gt = _ramp(5, 5, 1 / 4)
    centre = np.zeros((5, 5), dtype=bool)
    centre[2, 2] = True
    assert gaussian_gradient(gt)[0][2, 2] == pytest.approx(2.1090937, rel=1e-6)
    assert gradient_error(pred, gt, centre) == pytest.approx(0.0044482763, rel=1e-6)


def test_gradient_error_identical_inputs_is_zero() -> None:
    alpha = np.random.default_rng(0).random((5, 5))
    assert gradient_error(alpha, alpha) == 0.0


# --------------------------------------------------------------------------
# Connectivity
# --------------------------------------------------------------------------


def test_connectivity_thresholds_are_exact() -> None:
    assert connectivity_thresholds().tolist() == [
        0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    ]  # fmt: skip
    assert connectivity_thresholds(0.25).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_connectivity_identical_is_zero() -> None:
    alpha = np.array([[0.0, 0.3, 1.0], [0.7, 0.0, 0.5], [1.0, 0.2, 0.9]])
    assert connectivity_error(alpha, alpha) == 0.0


# gt 1 1 0      pred 1 1 0       blob at (1, 2): only diagonal to the
#    1 0 .8          1 0 .7      L-shaped body, so 4-disconnected
#    0 0 0           0 0 0
GT_BLOB = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.8], [0.0, 0.0, 0.0]])
PRED_BLOB = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.7], [0.0, 0.0, 0.0]])


def test_connectivity_disconnected_blob() -> None:
    # min(pred, gt) = body 1 (3 px) + blob 0.7 (1 px).
    # t = 0.1: components {body: 3, blob: 1} -> omega = body; blob and the
    #          zeros leave, l = t_0 = 0.
    # t = 0.2 .. 1.0: omega = body; nobody else left to set.
    # end: body never left -> l = 1.
    # body: d = 0 -> phi 1 for both.  zeros: d = 0 -> phi 1.
    # blob: pred d = 0.7 -> phi 0.3; gt d = 0.8 -> phi 0.2; |0.3 - 0.2| = 0.1
    # loss = 0.1 / 1000  (8-connectivity would join the blob and give 0)
    assert connectivity_error(PRED_BLOB, GT_BLOB) == pytest.approx(1e-4, rel=1e-9)


def test_connectivity_connected_blob() -> None:
    # Same values with the blob moved to (1, 1), 4-adjacent to the body.
    # t = 0.1 .. 0.7: omega = body + blob (4 px); zeros leave at 0.1, l = 0.
    # t = 0.8: min at the blob is 0.7 < 0.8 -> blob leaves, l = t_7 = 0.7.
    # t = 0.9, 1.0: omega = body. end: body l = 1.
    # blob: pred d = 0.7 - 0.7 = 0 -> phi 1; gt d = 0.8 - 0.7 = 0.1 < 0.15 -> phi 1
    # loss = 0
    gt = np.array([[1.0, 1.0, 0.0], [1.0, 0.8, 0.0], [0.0, 0.0, 0.0]])
    pred = np.array([[1.0, 1.0, 0.0], [1.0, 0.7, 0.0], [0.0, 0.0, 0.0]])
    assert connectivity_error(pred, gt) == pytest.approx(0.0, abs=1e-15)
    # theta = 0.05: gt d = 0.1 now counts -> gt phi = 0.9, |1 - 0.9| = 0.1
    assert connectivity_error(pred, gt, theta=0.05) == pytest.approx(1e-4, rel=1e-9)


# gt .8 .8 0     pred .8 .7 0     top blob A (2 px, high alpha),
#     0  0 0           0  0 0     bottom blob B (3 px, low alpha)
#    .3 .3 .3         .3 .3 .6
GT_SWAP = np.array([[0.8, 0.8, 0.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])
PRED_SWAP = np.array([[0.8, 0.7, 0.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.6]])


def test_connectivity_largest_component_changes_with_threshold() -> None:
    # min(pred, gt) = [[.8 .7 0] [0 0 0] [.3 .3 .3]]
    # t = 0.1: A (2 px) and B (3 px) -> omega = B; A and the zeros leave, l = 0.
    # t = 0.2: omega = B.
    # t = 0.3: omega = B (0.3 >= 0.3; with drifting thresholds 3 * 0.1 =
    #          0.30000000000000004 B would leave here and the answer be 0.5).
    # t = 0.4: only A passes -> omega = A; B leaves, l = t_3 = 0.3.
    # t = 0.5 .. 1.0: everyone already has a level.
    # phi = 1 - d (d >= 0.15), d = alpha - l:
    #   (0,0): pred 0.8 -> 0.2, gt 0.8 -> 0.2                  diff 0
    #   (0,1): pred 0.7 -> 0.3, gt 0.8 -> 0.2                  diff 0.1
    #   (2,0), (2,1): d = 0 for both -> phi 1                  diff 0
    #   (2,2): pred d = 0.6 - 0.3 = 0.3 -> 0.7, gt d = 0 -> 1  diff 0.3
    #   zeros: phi 1                                           diff 0
    # whole image 0.4, top row 0.1, bottom row 0.3; all / 1000
    assert connectivity_error(PRED_SWAP, GT_SWAP) == pytest.approx(4e-4, rel=1e-9)
    top = np.zeros((3, 3), dtype=bool)
    top[0] = True
    bottom = np.zeros((3, 3), dtype=bool)
    bottom[2] = True
    assert connectivity_error(PRED_SWAP, GT_SWAP, top) == pytest.approx(1e-4, rel=1e-9)
    assert connectivity_error(PRED_SWAP, GT_SWAP, bottom) == pytest.approx(3e-4, rel=1e-9)


def test_connectivity_tie_goes_to_first_component_in_column_major_order() -> None:
    # Two 1-px components with min(pred, gt) = 0.5 at (0, 2) and (2, 0).
    # bwconncomp numbers components down the columns and max() keeps the
    # first, so MATLAB picks (2, 0) (column 0) over (0, 2) (column 2).
    # t = 0.1: omega = {(2, 0)}; (0, 2) and the zeros leave, l = 0.
    # t = 0.2 .. 0.5: omega = {(2, 0)}.
    # t = 0.6: nothing passes -> omega empty; (2, 0) leaves, l = 0.5.
    # (2, 0): pred d = 0 -> 1; gt d = 0.1 < 0.15 -> 1      diff 0
    # (0, 2): pred d = 0.5 -> 0.5; gt d = 0.6 -> 0.4       diff 0.1
    pred = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    gt = np.array([[0.0, 0.0, 0.6], [0.0, 0.0, 0.0], [0.6, 0.0, 0.0]])
    at_20 = np.zeros((3, 3), dtype=bool)
    at_20[2, 0] = True
    at_02 = np.zeros((3, 3), dtype=bool)
    at_02[0, 2] = True
    assert connectivity_error(pred, gt) == pytest.approx(1e-4, rel=1e-9)
    assert connectivity_error(pred, gt, at_20) == pytest.approx(0.0, abs=1e-15)
    assert connectivity_error(pred, gt, at_02) == pytest.approx(1e-4, rel=1e-9)


def test_connectivity_uint8_matches_float() -> None:
    # The disconnected-blob case in bytes: body 255, blob gt 204 (0.8), pred 153 (0.6).
    # The blob is never in omega -> l = 0 from t = 0.1 on.
    # blob: pred d = 0.6 -> phi 0.4; gt d = 0.8 -> phi 0.2; diff 0.2 -> 0.2 / 1000
    gt = np.array([[255, 255, 0], [255, 0, 204], [0, 0, 0]], dtype=np.uint8)
    pred = np.array([[255, 255, 0], [255, 0, 153], [0, 0, 0]], dtype=np.uint8)
    assert connectivity_error(pred, gt) == pytest.approx(2e-4, rel=1e-9)


# --------------------------------------------------------------------------
# evaluate and input errors
# --------------------------------------------------------------------------


def test_evaluate_returns_all_five() -> None:
    result = evaluate(PRED_SWAP, GT_SWAP)
    assert set(result) == {"sad", "mse", "mad", "grad", "conn"}
    # |diff| = 0.1 at (0,1) and 0.3 at (2,2): SAD 0.4 / 1000, MSE 0.1 / 9, MAD 0.4 / 9
    assert result["sad"] == pytest.approx(4e-4, rel=1e-9)
    assert result["mse"] == pytest.approx(0.1 / 9, rel=1e-9)
    assert result["mad"] == pytest.approx(0.4 / 9, rel=1e-9)
    assert result["conn"] == pytest.approx(4e-4, rel=1e-9)
    assert result["grad"] == gradient_error(PRED_SWAP, GT_SWAP)
    assert all(isinstance(v, float) for v in result.values())


METRICS = [sad, mse, mad, gradient_error, connectivity_error, evaluate]


@pytest.mark.parametrize("metric", METRICS)
def test_shape_mismatch_raises(metric) -> None:
    with pytest.raises(ValueError, match="same shape"):
        metric(np.zeros((2, 2)), np.zeros((2, 3)))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_out_of_range_raises(metric, bad: float) -> None:
    pred = np.array([[0.0, bad], [0.5, 1.0]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric(pred, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metric(np.zeros((2, 2)), pred)


@pytest.mark.parametrize("metric", METRICS)
def test_bad_inputs_raise(metric) -> None:
    with pytest.raises(ValueError, match="2-D"):
        metric(np.zeros((2, 2, 1)), np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match="mask shape"):
        metric(PRED, GT, np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="bool"):
        metric(PRED, GT, np.array([[0, 128], [128, 255]], dtype=np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        metric(np.zeros((2, 2), dtype=np.int64), GT)


def test_helpers_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        trimap_unknown(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError):
        transition_region(PRED, low=0.9, high=0.1)
    with pytest.raises(ValueError):
        gaussian_gradient_kernel(0.0)
    with pytest.raises(ValueError):
        connectivity_thresholds(0.0)
