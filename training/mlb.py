"""Matte Label Blending (seed 003): the blended label and the EMA teacher update."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matting.models.semantic import NUM_CLASSES

TRANSITION = 1  # class index of the transition area in the semantic head


def blend_labels(teacher_alpha: Tensor, boundary: Tensor, segmentation: Tensor) -> Tensor:
    """alpha_blend = B * alpha_T + (1 - B) * S, all (B, 1, H, W) in [0, 1].

    The teacher is trusted only where it sees a boundary; elsewhere the
    segmentation label removes its mistakes on natural images."""
    return boundary * teacher_alpha + (1.0 - boundary) * segmentation


def boundary_map(semantic_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Teacher's boundary probability: the transition class of its semantic head,
    (B, 3, h, w) logits -> (B, 1, H, W), bilinearly resized."""
    if semantic_logits.shape[1] != NUM_CLASSES:
        raise ValueError(f"expected {NUM_CLASSES} semantic classes, got {semantic_logits.shape[1]}")
    p = semantic_logits.softmax(dim=1)[:, TRANSITION : TRANSITION + 1]
    return F.interpolate(p, size=size, mode="bilinear", align_corners=False)


def blended_classes(segmentation: Tensor, boundary: Tensor) -> Tensor:
    """Semantic targets for the student: the mask's background/foreground, and
    transition where the teacher's boundary probability is at least 0.5.
    segmentation, boundary (B, 1, H, W) -> (B, H, W) int64."""
    classes = torch.where(segmentation[:, 0] >= 0.5, 2, 0)
    return torch.where(boundary[:, 0] >= 0.5, TRANSITION, classes).long()


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, for parameters and
    floating buffers (BatchNorm statistics); integer buffers are copied."""
    t_state, s_state = teacher.state_dict(), student.state_dict()
    if t_state.keys() != s_state.keys() or any(
        t.shape != s_state[k].shape for k, t in t_state.items()
    ):
        raise ValueError("EMA needs teacher and student of the same architecture")
    for name, t in t_state.items():
        s = s_state[name]
        if t.is_floating_point():
            t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
        else:
            t.copy_(s)
