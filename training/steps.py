"""One optimisation step's worth of work: batch preparation and the losses.

Pure functions of (model, batch, generator); the loop in training.trainer owns
the optimiser, the schedule, checkpoints and logging.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from matting.models.network import MattingNet, MattingOutput
from training import augment
from training.data.mixture import Batch
from training.losses import (
    LossWeights,
    composition_loss,
    error_map_loss,
    foreground_loss,
    gradient_loss,
    l1_loss,
    laplacian_loss,
    semantic_loss,
)
from training.mlb import blend_labels, blended_classes, boundary_map


@dataclass
class Prepared:
    """A batch after augmentation: what the network sees and what it must give."""

    image: Tensor  # (B, 3, S, S) network input
    fg: Tensor  # (B, 3, S, S) true foreground colour (layered samples)
    bg: Tensor  # (B, 3, S, S)
    alpha: Tensor  # (B, 1, S, S) target alpha (matte, mask or blended label)
    semantic: Tensor  # (B, S, S) int64
    exact: Tensor  # (B,) bool
    layers: Tensor  # (B,) bool
    weight: Tensor  # (B, 1, S, S) per-pixel weight of the alpha L1 loss


def prepare(batch: Batch, gen: torch.Generator, strong: bool, seg_band: int) -> Prepared:
    """Geometry for all; layered samples get independent colour on fg and bg and a
    shadow, then I = alpha F + (1 - alpha) B; strong adds photometric changes."""
    n = batch.fg.shape[0]
    theta = augment.affine_matrices(gen, n)
    fg, bg = augment.warp(batch.fg, theta), augment.warp(batch.bg, theta)
    alpha = augment.warp(batch.alpha, theta).clamp(0.0, 1.0)
    semantic = augment.warp_classes(batch.semantic, theta)
    layered = batch.layers.view(n, 1, 1, 1)
    fg_j = augment.color_jitter(fg, gen, 0.5)
    bg_j = augment.color_jitter(bg, gen, 0.5)
    fg = torch.where(layered, fg_j, fg)
    bg = torch.where(layered, augment.cast_shadow(bg_j, alpha, gen), fg)
    # Photographs: fg and bg are the same picture, so this gives it back.
    image = alpha * fg + (1.0 - alpha) * bg
    image = torch.where(layered, image, fg)
    if strong:
        image = augment.degrade(augment.color_jitter(image, gen), gen)
    # A segmentation mask's edge is a guess: its transition class gets no alpha loss.
    weight = torch.ones_like(alpha)
    if seg_band > 0:
        weak = (~batch.exact).view(n, 1, 1)
        weight = torch.where((weak & (semantic == 1))[:, None], 0.0, 1.0)
    return Prepared(image, fg, bg, alpha, semantic, batch.exact, batch.layers, weight)


def area_resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="area")


def matting_losses(
    out: MattingOutput, p: Prepared, w: LossWeights
) -> tuple[Tensor, dict[str, float]]:
    """Weighted sum of the seed 002/004 losses, and each term for the log.

    Every sample gets masked L1 on the fine and coarse alpha and the semantic
    cross entropy; true mattes add the Laplacian and gradient terms; layered
    samples add the foreground and composition terms."""
    terms: dict[str, Tensor] = {}
    ch, cw = out.coarse_alpha.shape[-2:]
    coarse_size = (int(ch), int(cw))
    coarse_target = area_resize(p.alpha, coarse_size)
    terms["l1"] = l1_loss(out.alpha, p.alpha, p.weight) + l1_loss(
        out.coarse_alpha, coarse_target, area_resize(p.weight, coarse_size)
    )
    exact = p.exact.nonzero().flatten()
    if exact.numel():
        terms["laplacian"] = laplacian_loss(out.alpha[exact], p.alpha[exact]) + laplacian_loss(
            out.coarse_alpha[exact], coarse_target[exact]
        )
        terms["gradient"] = gradient_loss(out.alpha[exact], p.alpha[exact])
    layered = p.layers.nonzero().flatten()
    if layered.numel():
        terms["foreground"] = foreground_loss(
            out.foreground[layered], p.fg[layered], p.alpha[layered]
        )
        terms["composition"] = composition_loss(
            out.alpha[layered], p.fg[layered], p.bg[layered], p.image[layered]
        )
    photos = (~p.layers).nonzero().flatten()
    if photos.numel():
        # A photo with no layers still pins the foreground where it is opaque:
        # there I = F, so the colour head cannot drift on segmentation data.
        opaque = (p.alpha[photos] >= 0.99).to(p.alpha.dtype) * p.weight[photos]
        fg_photo = l1_loss(out.foreground[photos], p.image[photos], opaque)
        terms["foreground"] = terms.get("foreground", torch.zeros(())) + fg_photo
    terms["error"] = error_map_loss(out.coarse_error, out.coarse_alpha, coarse_target)
    if out.coarse_semantic is not None:
        terms["semantic"] = semantic_loss(out.coarse_semantic, p.semantic)
    total = sum((getattr(w, k) * v for k, v in terms.items()), start=torch.zeros(()))
    return total, {k: float(v.detach()) for k, v in terms.items()}


def forward(
    model: MattingNet, image: Tensor, refine_fraction: float, coarse_long_side: int | None
) -> MattingOutput:
    # Mirror averaging is a serving choice: training (teacher labels included)
    # gives the same weights whether a config turns it on or not.
    return model(
        image,
        refine_fraction=refine_fraction,
        coarse_long_side=coarse_long_side,
        flip_average=False,
    )


@torch.no_grad()
def teacher_labels(
    teacher: MattingNet, weak: Prepared, refine_fraction: float, coarse_long_side: int | None
) -> Prepared:
    """Seed 003 step 2: the teacher sees the weakly augmented photo; its alpha is
    kept inside its predicted boundary and the segmentation mask elsewhere."""
    out = forward(teacher, weak.image, refine_fraction, coarse_long_side)
    if out.coarse_semantic is None:
        raise ValueError("the MLB teacher needs a semantic head (model.semantic_head = true)")
    h, w = weak.alpha.shape[-2:]
    boundary = boundary_map(out.coarse_semantic, (int(h), int(w)))
    seg = (weak.alpha >= 0.5).to(weak.alpha.dtype)
    blended = blend_labels(out.alpha.float(), boundary.float(), seg)
    semantic = blended_classes(seg, boundary)
    return Prepared(
        weak.image,
        weak.fg,
        weak.bg,
        blended,
        semantic,
        torch.ones_like(weak.exact),  # the blended label counts as a matte
        weak.layers,
        torch.ones_like(weak.alpha),
    )
