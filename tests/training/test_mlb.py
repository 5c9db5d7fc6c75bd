"""Matte Label Blending: the blended label, the boundary map, the EMA update."""

from __future__ import annotations

import math

import pytest
import torch

from matting.config import ModelConfig
from matting.models import build_model
from training.mlb import blend_labels, blended_classes, boundary_map, ema_update


def test_blend_keeps_teacher_in_boundary_and_mask_elsewhere() -> None:
    teacher = torch.tensor([[[[0.9, 0.3, 0.6, 0.2]]]])
    boundary = torch.tensor([[[[0.0, 1.0, 0.5, 0.25]]]])
    seg = torch.tensor([[[[0.0, 1.0, 1.0, 0.0]]]])
    got = blend_labels(teacher, boundary, seg)
    # By hand: 0*0.9 + 1*0 = 0; 1*0.3 + 0*1 = 0.3; 0.5*0.6 + 0.5*1 = 0.8; 0.25*0.2 + 0.75*0 = 0.05
    assert torch.allclose(got, torch.tensor([[[[0.0, 0.3, 0.8, 0.05]]]]))


def test_boundary_map_is_transition_probability() -> None:
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 1, 0, 1] = math.log(2.0)  # softmax (1, 2, 1) / 4 -> transition 0.5
    got = boundary_map(logits, (1, 2))
    assert torch.allclose(got, torch.tensor([[[[1 / 3, 0.5]]]]))
    with pytest.raises(ValueError, match="3 semantic classes"):
        boundary_map(torch.zeros(1, 2, 1, 1), (1, 1))


def test_blended_classes() -> None:
    seg = torch.tensor([[[[0.0, 1.0, 1.0, 0.0]]]])
    boundary = torch.tensor([[[[0.1, 0.7, 0.2, 0.5]]]])
    assert blended_classes(seg, boundary).tolist() == [[[0, 1, 2, 1]]]


def test_ema_update_moves_teacher_towards_student() -> None:
    cfg = ModelConfig(aspp_channels=8, decoder_channels=(8, 8, 8), hidden_channels=4)
    teacher, student = build_model(cfg), build_model(cfg)
    t0 = {k: v.clone() for k, v in teacher.state_dict().items()}
    s = student.state_dict()
    ema_update(teacher, student, 0.9)
    for name, t in teacher.state_dict().items():
        if t.is_floating_point():
            assert torch.allclose(t, 0.9 * t0[name] + 0.1 * s[name], atol=1e-6), name
        else:
            assert torch.equal(t, s[name]), name
    ema_update(teacher, student, 1.0)  # decay 1 leaves the floating weights alone
    other = build_model(cfg.model_copy(update={"hidden_channels": 5}))
    with pytest.raises(ValueError, match="same architecture"):
        ema_update(teacher, other, 0.9)


def test_photos_pin_the_foreground_where_opaque() -> None:
    from matting.models.network import MattingOutput
    from training.losses import LossWeights
    from training.steps import Prepared, matting_losses

    image = torch.rand(1, 3, 4, 4)
    alpha = torch.zeros(1, 1, 4, 4)
    alpha[..., :2, :] = 1.0  # top half opaque: there F = I
    fg_pred = image.clone()
    fg_pred[..., :2, :] += 0.25  # wrong by 0.25 where it is pinned
    fg_pred[..., 2:, :] += 0.5  # free where the photo says nothing
    out = MattingOutput(
        alpha=alpha,
        foreground=fg_pred,
        coarse_alpha=alpha,
        coarse_foreground=fg_pred,
        coarse_error=torch.zeros(1, 1, 4, 4),
        coarse_hidden=torch.zeros(1, 1, 4, 4),
        patches=torch.zeros(0, 3, dtype=torch.int64),
    )
    p = Prepared(
        image=image,
        fg=image,
        bg=image,
        alpha=alpha,
        semantic=torch.zeros(1, 4, 4).long(),
        exact=torch.tensor([False]),
        layers=torch.tensor([False]),
        weight=torch.ones(1, 1, 4, 4),
    )
    _, terms = matting_losses(out, p, LossWeights())
    assert abs(terms["foreground"] - 0.25) < 1e-6
