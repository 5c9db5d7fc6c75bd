"""Matting losses against values worked out by hand on tiny tensors.

Every expected number below is a literal derived in the comment above it;
none is computed by calling the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from training.losses import (
    LossWeights,
    composition_loss,
    error_map_loss,
    foreground_loss,
    gradient_loss,
    l1_loss,
    laplacian_loss,
    mse_loss,
    semantic_loss,
)


def t(rows: list[list[float]]) -> torch.Tensor:
    """(1, 1, H, W) float32 tensor from nested lists."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


# |PRED - GT| = [[0.25, 0.5], [0.5, 0.0]]  (exact binary fractions)
PRED = t([[0.0, 0.5], [1.0, 0.25]])
GT = t([[0.25, 1.0], [0.5, 0.25]])
TOP_ROW = t([[1.0, 1.0], [0.0, 0.0]])


# --------------------------------------------------------------------------
# L1 / MSE
# --------------------------------------------------------------------------


def test_l1_and_mse_whole_image() -> None:
    # L1: (0.25 + 0.5 + 0.5 + 0) / 4
    assert l1_loss(PRED, GT).item() == pytest.approx(0.3125)
    # MSE: (0.0625 + 0.25 + 0.25 + 0) / 4
    assert mse_loss(PRED, GT).item() == pytest.approx(0.140625)


def test_l1_and_mse_zero_on_identical_inputs() -> None:
    assert l1_loss(PRED, PRED).item() == 0.0
    assert mse_loss(PRED, PRED).item() == 0.0


def test_l1_and_mse_with_binary_mask() -> None:
    # top row only: |d| = 0.25, 0.5
    assert l1_loss(PRED, GT, TOP_ROW).item() == pytest.approx(0.375)  # 0.75 / 2
    assert mse_loss(PRED, GT, TOP_ROW).item() == pytest.approx(0.15625)  # 0.3125 / 2


def test_l1_with_weights() -> None:
    # w = [[2, 0], [1, 1]]: sum(w |d|) = 0.5 + 0 + 0.5 + 0 = 1; sum(w) = 4 -> 0.25
    weights = t([[2.0, 0.0], [1.0, 1.0]])
    assert l1_loss(PRED, GT, weights).item() == pytest.approx(0.25)


def test_one_channel_mask_counts_every_channel() -> None:
    # channel 0: |d| as above; channel 1: |1 - 0| = 1 everywhere.
    pred = torch.cat([PRED, torch.ones_like(PRED)], dim=1)
    target = torch.cat([GT, torch.zeros_like(GT)], dim=1)
    # top row: (0.25 + 0.5) + (1 + 1) = 2.75 over sum(w) * C = 2 * 2 = 4
    assert l1_loss(pred, target, TOP_ROW).item() == pytest.approx(0.6875)
    # unmasked: (1.25 + 4) / 8
    assert l1_loss(pred, target).item() == pytest.approx(0.65625)


def test_empty_mask_gives_zero() -> None:
    assert l1_loss(PRED, GT, torch.zeros_like(PRED)).item() == 0.0


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        l1_loss(PRED, torch.zeros(1, 1, 2, 3))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        l1_loss(PRED[0], GT[0])
    with pytest.raises(ValueError, match="mask"):
        l1_loss(PRED, GT, torch.ones(1, 1, 3, 3))


# --------------------------------------------------------------------------
# Laplacian pyramid
# --------------------------------------------------------------------------


def test_laplacian_zero_on_identical_inputs() -> None:
    x = torch.rand(2, 3, 9, 13)
    assert laplacian_loss(x, x).item() == 0.0


def test_laplacian_one_level_is_plain_l1() -> None:
    # levels=1: the only band is the image itself, weight 2**0 = 1.
    assert laplacian_loss(PRED, GT, levels=1).item() == pytest.approx(0.3125)


@pytest.mark.parametrize("size", [(5, 7), (4, 4), (1, 1), (9, 2)])
def test_laplacian_constant_offset_survives_only_in_residual(size: tuple[int, int]) -> None:
    # A constant c is preserved by the normalised blur (reflect padding) and by subsampling,
    # so every Gaussian level is c. Expanding a constant gives the same constant: on the
    # zero-inserted canvas every output pixel gathers taps summing to 1/2 per axis
    # (1 + 6 + 1 or 4 + 4, over 16), times 4 = 1. Hence every band but the last is 0 and
    # the residual is c: loss = 2**(levels - 1) * |c|.
    # levels=5, c=0.25: 16 * 0.25 = 4;  levels=3: 4 * 0.25 = 1.
    target = torch.rand(2, 3, *size)
    pred = target + 0.25
    assert laplacian_loss(pred, target).item() == pytest.approx(4.0, rel=1e-5)
    assert laplacian_loss(pred, target, levels=3).item() == pytest.approx(1.0, rel=1e-5)


def test_laplacian_impulse_on_odd_size() -> None:
    # 3x3 impulse at the centre vs zeros. Blur with reflect padding: output (0, 0) sees rows
    # (-2..2) -> (2, 1, 0, 1, 2), so the impulse at row 1 gets taps 4 + 4 = 8/16 = 0.5 per
    # axis, 0.25 in 2-D; same at (0, 2), (2, 0), (2, 2). g1 = 0.25 everywhere (2x2) and its
    # expansion is 0.25 everywhere (3x3), so
    #   L0 = impulse - 0.25: 0.75 at the centre, -0.25 at 8 pixels -> mean |L0| = 2.75 / 9
    #   levels=2: L1 = g1 = 0.25                      -> 2.75/9 + 2 * 0.25  = 0.805555...
    #   levels=3: L1 = g1 - expand(g2) = 0, L2 = 0.25 -> 2.75/9 + 4 * 0.25  = 1.305555...
    impulse = t([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    zeros = torch.zeros_like(impulse)
    assert laplacian_loss(impulse, zeros, levels=2).item() == pytest.approx(2.75 / 9 + 0.5)
    assert laplacian_loss(impulse, zeros, levels=3).item() == pytest.approx(2.75 / 9 + 1.0)


def test_laplacian_rejects_bad_levels() -> None:
    with pytest.raises(ValueError, match="levels"):
        laplacian_loss(PRED, GT, levels=0)


# --------------------------------------------------------------------------
# Sobel gradient
# --------------------------------------------------------------------------


def test_gradient_loss_on_vertical_step_edge() -> None:
    # Columns [0, 0, 1] in every row. The image is constant down each column, so the Sobel
    # x response is (1 + 2 + 1) * (x[j+1] - x[j-1]) with replicate padding:
    #   col 0: 4 * (0 - 0) = 0;  col 1: 4 * (1 - 0) = 4;  col 2: 4 * (1 - 0) = 4.
    # mean |sx| = (0 + 4 + 4) * 3 / 9 = 8/3; sy = 0.
    step = t([[0.0, 0.0, 1.0]] * 3)
    zeros = torch.zeros_like(step)
    assert gradient_loss(step, zeros).item() == pytest.approx(8.0 / 3.0)
    # Transposed step: the same value, now from the y kernel.
    assert gradient_loss(step.transpose(2, 3), zeros).item() == pytest.approx(8.0 / 3.0)


def test_gradient_loss_on_4x4_step() -> None:
    # Columns [0, 0, 1, 1]: sx per column = 4 * [0 - 0, 1 - 0, 1 - 0, 1 - 1] = [0, 4, 4, 0];
    # mean = 8 * 4 / 16 = 2.
    step = t([[0.0, 0.0, 1.0, 1.0]] * 4)
    assert gradient_loss(step, torch.zeros_like(step)).item() == pytest.approx(2.0)


def test_gradient_loss_ignores_constant_offset() -> None:
    x = torch.rand(1, 2, 5, 6)
    assert gradient_loss(x, x).item() == 0.0
    assert gradient_loss(x + 0.5, x).item() == pytest.approx(0.0, abs=1e-5)


# --------------------------------------------------------------------------
# Composition and foreground
# --------------------------------------------------------------------------


def test_composition_loss() -> None:
    # F = 1, B = 0, so the composite is alpha = [[1, 0], [0.5, 0.25]]; the image is
    # [[1, 0], [0, 0]]: |d| = [[0, 0], [0.5, 0.25]], the same in all 3 channels.
    alpha = t([[1.0, 0.0], [0.5, 0.25]])
    fg = torch.ones(1, 3, 2, 2)
    bg = torch.zeros(1, 3, 2, 2)
    image = t([[1.0, 0.0], [0.0, 0.0]]).expand(1, 3, 2, 2)
    assert composition_loss(alpha, fg, bg, image).item() == pytest.approx(0.1875)  # 0.75 / 4
    bottom_row = 1.0 - TOP_ROW
    # (0.5 + 0.25) * 3 / (2 * 3)
    assert composition_loss(alpha, fg, bg, image, bottom_row).item() == pytest.approx(0.375)
    composite = alpha * fg + (1 - alpha) * bg
    assert composition_loss(alpha, fg, bg, composite).item() == 0.0


def test_foreground_loss_only_where_alpha_positive() -> None:
    # alpha_true > 0 at (0, 1) and (1, 0). There |1 - fg_true| = 0.5 and 0; the pixels with
    # alpha 0 (error 1) are left out: 0.5 / 2 = 0.25.
    alpha_true = t([[0.0, 0.5], [1.0, 0.0]])
    fg_true = t([[0.0, 0.5], [1.0, 0.0]])
    fg_pred = torch.ones_like(fg_true)
    assert foreground_loss(fg_pred, fg_true, alpha_true).item() == pytest.approx(0.25)
    # 3 channels with the same values: unchanged (numerator and denominator both x3).
    fg3, true3 = fg_pred.expand(1, 3, 2, 2), fg_true.expand(1, 3, 2, 2)
    assert foreground_loss(fg3, true3, alpha_true).item() == pytest.approx(0.25)
    # No foreground at all: 0, not NaN.
    assert foreground_loss(fg_pred, fg_true, torch.zeros_like(alpha_true)).item() == 0.0
    assert foreground_loss(fg_true, fg_true, alpha_true).item() == 0.0


# --------------------------------------------------------------------------
# Error map
# --------------------------------------------------------------------------


def test_error_map_loss_same_resolution() -> None:
    # |alpha_pred - alpha_true| = [[1, 0], [0.5, 0.5]]; error_pred = 0:
    # (1 + 0 + 0.25 + 0.25) / 4 = 0.375
    alpha_pred = t([[1.0, 0.0], [0.5, 0.5]])
    alpha_true = t([[0.0, 0.0], [0.0, 1.0]])
    assert error_map_loss(torch.zeros(1, 1, 2, 2), alpha_pred, alpha_true).item() == (
        pytest.approx(0.375)
    )
    exact = t([[1.0, 0.0], [0.5, 0.5]])
    assert error_map_loss(exact, alpha_pred, alpha_true).item() == 0.0


def test_error_map_loss_area_pools_the_target() -> None:
    # |alpha_pred - alpha_true| on 4x4, 2x2 blocks:
    #   top-left all 1 -> 1;  top-right one 1 -> 0.25;  bottom-left 0 -> 0;
    #   bottom-right two 1s -> 0.5.   target = [[1, 0.25], [0, 0.5]]
    # error_pred = [[1, 0], [0, 0]]: (0 + 0.0625 + 0 + 0.25) / 4 = 0.078125
    alpha_pred = t(
        [
            [1.0, 1.0, 1.0, 0.0],
            [1.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    alpha_true = torch.zeros_like(alpha_pred)
    error_pred = t([[1.0, 0.0], [0.0, 0.0]])
    assert error_map_loss(error_pred, alpha_pred, alpha_true).item() == pytest.approx(0.078125)
    # 1x1 error map: the target is the mean error 7/16.
    assert error_map_loss(torch.full((1, 1, 1, 1), 7 / 16), alpha_pred, alpha_true).item() == (
        pytest.approx(0.0, abs=1e-12)
    )


def test_error_map_loss_does_not_train_alpha() -> None:
    alpha_pred = torch.rand(2, 1, 8, 8, requires_grad=True)
    error_pred = torch.rand(2, 1, 4, 4, requires_grad=True)
    error_map_loss(error_pred, alpha_pred, torch.rand(2, 1, 8, 8)).backward()
    assert alpha_pred.grad is None
    assert error_pred.grad is not None
    assert torch.isfinite(error_pred.grad).all()


def test_error_map_loss_rejects_larger_error_map() -> None:
    with pytest.raises(ValueError, match="no larger"):
        error_map_loss(torch.zeros(1, 1, 4, 4), PRED, GT)


# --------------------------------------------------------------------------
# Semantic cross entropy
# --------------------------------------------------------------------------


def test_semantic_loss_hand_case() -> None:
    # pixel 0: logits (0, 0, 0), class 1 -> p = 1/3, -log p = ln 3
    # pixel 1: logits (0, ln 2, 0), class 0 -> softmax (1, 2, 1) / 4, -log(1/4) = ln 4
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)], [0.0, 0.0]])[None, :, None, :]
    classes = torch.tensor([[[1, 0]]])
    assert semantic_loss(logits, classes).item() == pytest.approx(
        (math.log(3.0) + math.log(4.0)) / 2
    )
    # Ignoring pixel 1 leaves ln 3.
    assert semantic_loss(logits, torch.tensor([[[1, -1]]])).item() == pytest.approx(math.log(3.0))
    assert semantic_loss(logits, torch.tensor([[[1, 7]]]), ignore_index=7).item() == (
        pytest.approx(math.log(3.0))
    )
    # Everything ignored: 0, not NaN.
    assert semantic_loss(logits, torch.tensor([[[-1, -1]]])).item() == 0.0


def test_semantic_loss_resizes_classes_with_nearest() -> None:
    # logits (1, 3, 1, 2); classes (1, 2, 4). Nearest 2x downsampling reads column 0 and 2 of
    # row 0: classes 0 and 2. (Columns 1, 3 and row 1 hold other classes, so reading them
    # would change the value.)
    # pixel 0: logits (ln 2, 0, 0), class 0 -> p = 2/4 -> ln 2
    # pixel 1: logits (0, 0, ln 3), class 2 -> p = 3/5 -> ln(5/3)
    logits = torch.tensor([[math.log(2.0), 0.0], [0.0, 0.0], [0.0, math.log(3.0)]])
    logits = logits[None, :, None, :]
    classes = torch.tensor([[[0, 1, 2, 0], [1, 1, 1, 1]]])
    expected = (math.log(2.0) + math.log(5.0 / 3.0)) / 2
    assert semantic_loss(logits, classes).item() == pytest.approx(expected)


def test_semantic_loss_rejects_float_classes() -> None:
    with pytest.raises(ValueError, match="integer"):
        semantic_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2))


# --------------------------------------------------------------------------
# Gradients and weights
# --------------------------------------------------------------------------


def test_all_losses_backpropagate_finite_gradients() -> None:
    alpha = torch.rand(2, 1, 7, 9, requires_grad=True)
    fg = torch.rand(2, 3, 7, 9, requires_grad=True)
    error = torch.rand(2, 1, 4, 5, requires_grad=True)
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    alpha_true = torch.rand(2, 1, 7, 9)
    fg_true, bg, image = torch.rand(3, 2, 3, 7, 9)
    classes = torch.randint(0, 3, (2, 7, 9))
    total = (
        l1_loss(alpha, alpha_true)
        + mse_loss(alpha, alpha_true, (alpha_true > 0.5).float())
        + laplacian_loss(alpha, alpha_true)
        + gradient_loss(alpha, alpha_true)
        + composition_loss(alpha, fg, bg, image)
        + foreground_loss(fg, fg_true, alpha_true)
        + error_map_loss(error, alpha, alpha_true)
        + semantic_loss(logits, classes)
    )
    assert total.ndim == 0
    total.backward()
    for tensor in (alpha, fg, error, logits):
        assert tensor.grad is not None
        assert torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_loss_weights() -> None:
    weights = LossWeights()
    assert weights.l1 == 1.0
    assert weights.semantic == 0.5
    assert LossWeights(laplacian=0.0).laplacian == 0.0
    with pytest.raises(ValidationError):
        LossWeights(gradient=-1.0)
    with pytest.raises(ValidationError):
        LossWeights(typo=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        weights.l1 = 2.0  # type: ignore[misc]
