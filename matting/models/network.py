"""The whole model: `MattingNet(config)(image[, background])`.

1. Pad the full-resolution image (edge replication) to a multiple of the patch
   size and of the coarse scale f, a power of two (HD -> 4, 4K -> 8).
2. Average-pool by f and run the coarse stage there; when serving, optionally
   on the mirror image too and at several scales, averaged on the finest grid.
3. Upsample coarse alpha and foreground residual bilinearly to full resolution,
   select patches (top-k error, transition band, all, or none), refine them and
   scatter them back; or refine densely ("full").
4. Crop the padding off and clamp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matting.config import ModelConfig, RefineMode
from matting.models.coarse import CoarseNet, CoarseOutput
from matting.models.layers import clamp01
from matting.models.refiner import PATCH, PatchRefiner, exporting
from matting.ops.padding import box_downsample, coarse_scale, pad_to_multiple
from matting.ops.patches import PatchIndex, scatter_patches
from matting.ops.selection import select_band, select_topk


class MattingOutput(NamedTuple):
    alpha: Tensor  # (B, 1, H, W) in [0, 1]
    foreground: Tensor  # (B, 3, H, W) in [0, 1]
    coarse_alpha: Tensor  # (B, 1, ceil(H/f), ceil(W/f))
    coarse_foreground: Tensor  # (B, 3, ceil(H/f), ceil(W/f))
    coarse_error: Tensor  # (B, 1, ceil(H/f), ceil(W/f))
    coarse_hidden: Tensor  # (B, hidden, ceil(H/f), ceil(W/f))
    patches: Tensor  # (N, 3) int64 [batch, row, col] of sparsely refined 4x4 patches
    coarse_semantic: Tensor | None = None  # (B, 3, ceil(H/f), ceil(W/f)) logits, if any
    # (B, 1, Hp/4, Wp/4) what top-k ranked (the error map on the patch grid of the
    # padded image, -1 on padding cells); None in other modes
    patch_scores: Tensor | None = None


def _upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def flip_averaged(coarse: CoarseNet, x: Tensor) -> CoarseOutput:
    """Run the coarse stage on x and on its mirror image in one batch, and average
    each output with the mirrored-back output of the mirror (logits included)."""
    b = x.shape[0]
    both = coarse(torch.cat([x, x.flip(-1)]))
    return CoarseOutput(*(None if t is None else 0.5 * (t[:b] + t[b:].flip(-1)) for t in both))


Weight = int | Tensor


def fuse_levels(levels: Sequence[tuple[CoarseOutput, Weight]]) -> CoarseOutput:
    """Weighted mean of coarse outputs at several scales, each resampled bilinearly
    to the grid of the last (finest) one; logits are averaged like the rest."""
    if len(levels) == 1:
        return levels[0][0]
    target = levels[-1][0].alpha.shape[-2:]
    total = sum(w for _, w in levels)
    trace = exporting()  # traced sizes are symbolic: resample every level

    def mean(i: int) -> Tensor | None:
        parts = [out[i] for out, _ in levels]
        if parts[0] is None:
            return None
        acc = torch.zeros_like(parts[-1])
        for t, (_, w) in zip(parts, levels, strict=True):
            if trace or t.shape[-2:] != target:
                t = _upsample(t, target)
            acc = acc + t * (w / total)
        return acc

    return CoarseOutput(*(mean(i) for i in range(len(CoarseOutput._fields))))


def coarse_levels(
    factors: Sequence[int | Tensor], long_side: int | Tensor, floor: int
) -> list[tuple[int | Tensor, Weight]]:
    """(factor, weight) of the coarse passes, coarsest first, finest last.

    factors: of each coarse side, in ascending order of side. A pass whose long
    side (long_side / factor) would be `floor` or less is dropped unless it is the
    finest: the single-scale path never shrinks below half its side, and lower
    passes lost whole figures. Equal factors merge into one pass weighted by their
    count. Traced factors are symbolic, so every pass runs there with a 0/1 weight.
    """
    last = factors[-1]
    if any(isinstance(f, Tensor) for f in (*factors, long_side)):
        keep = [(torch.as_tensor(long_side) > f * floor) | (f == last) for f in factors]
        return [(f, k.to(torch.float32)) for f, k in zip(factors, keep, strict=True)]
    counts: dict[int, int] = {}
    for f in factors:
        if long_side > int(f) * floor or f == last:
            counts[int(f)] = counts.get(int(f), 0) + 1
    return sorted(counts.items(), reverse=True)


def patch_budget(fraction: float, grid_cells: int) -> int:
    """Number of patches for a fraction of the grid: at least 1, at most all."""
    return max(1, min(grid_cells, math.ceil(fraction * grid_cells)))


def _mask_padding(score: Tensor, height: int, width: int) -> Tensor:
    """Score -1 (below any error in [0, 1]) for grid cells wholly in the padding,
    so the top-k budget is not spent on pixels that are cropped away."""
    gh, gw = score.shape[-2:]
    rows = torch.arange(gh, device=score.device).view(gh, 1) * PATCH < height
    cols = torch.arange(gw, device=score.device).view(1, gw) * PATCH < width
    return torch.where(rows & cols, score, score.new_full((), -1.0))


def _keep_active(
    index: PatchIndex, active: Tensor, batch: int, grid: tuple[int, int]
) -> PatchIndex:
    """The patches of index whose cell is True in active (B, Hq, Wq) bool."""
    if active.shape != (batch, *grid) or active.dtype != torch.bool:
        got = f"{tuple(active.shape)} {active.dtype}"
        raise ValueError(f"active must be ({batch}, {grid[0]}, {grid[1]}) bool, got {got}")
    keep = active[index.batch, index.row, index.col]
    return PatchIndex(index.batch[keep], index.row[keep], index.col[keep])


def _patch_index(patches: Tensor, batch: int, grid: tuple[int, int]) -> PatchIndex:
    """Validate caller-given patches (N, 3) against the batch and the patch grid."""
    if patches.dim() != 2 or patches.shape[1] != 3 or patches.dtype != torch.int64:
        got = f"{tuple(patches.shape)} {patches.dtype}"
        raise ValueError(f"patches must be (N, 3) int64, got {got}")
    if patches.numel() and not exporting():
        lo = patches.min(dim=0).values
        hi = patches.max(dim=0).values
        if bool((lo < 0).any()) or hi[0] >= batch or hi[1] >= grid[0] or hi[2] >= grid[1]:
            raise ValueError(f"patches fall outside a batch of {batch} and a {grid} patch grid")
        if torch.unique(patches, dim=0).shape[0] != patches.shape[0]:
            raise ValueError("patches must not repeat")
    return PatchIndex(patches[:, 0], patches[:, 1], patches[:, 2])


class MattingNet(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.coarse = CoarseNet(config)
        self.refiner = PatchRefiner(config)

    def forward(
        self,
        image: Tensor,
        background: Tensor | None = None,
        *,
        refine_mode: RefineMode | None = None,
        refine_fraction: float | None = None,
        num_patches: int | Tensor | None = None,
        coarse_long_side: int | None = None,
        flip_average: bool | None = None,
        coarse_scales: Sequence[float] | None = None,
        patches: Tensor | None = None,
        active: Tensor | None = None,
    ) -> MattingOutput:
        """image, background: (B, 3, H, W) in [0, 1], any H and W.

        refine_mode, refine_fraction, coarse_long_side, flip_average and
        coarse_scales default to the config (the last two only outside
        training mode, which runs one unmirrored pass);
        num_patches, when given, is the top-k budget per image and overrides the
        fraction (a 0-dim int64 tensor while exporting, so k stays a graph
        input). Training passes a small coarse_long_side so that crops see the
        same coarse/full split that whole images see when served.
        patches, (N, 3) int64 [batch, row, col] on the 4x4 patch grid of the
        padded image, replaces the selection: exactly those patches are refined
        (export parity checks use it).
        active, (B, Hq, Wq) bool on that patch grid, limits refinement to its
        True cells: the selection is made as without it and its inactive cells
        are dropped, so an active cell is refined exactly when it would be
        anyway (video temporal sparsity: seed 000 refines the spatially
        selected cells that also changed; a worker carries the previous alpha
        of the others over). Eager only.
        """
        cfg = self.config
        self._check_inputs(image, background)
        h, w = image.shape[-2:]
        if flip_average is None:
            flip_average = cfg.flip_average and not self.training
        if coarse_scales is None:
            coarse_scales = (1.0,) if self.training else cfg.coarse_scales
        base = coarse_long_side or cfg.coarse_long_side
        sides = sorted(max(1, round(base * m)) for m in coarse_scales)
        factors = [coarse_scale(h, w, s) for s in sides]
        # Pad for the largest factor even where its pass is dropped, as a traced
        # graph (which cannot drop it) does.
        f0 = factors[0]
        levels = coarse_levels(
            factors, torch.maximum(h, w) if isinstance(h, Tensor) else max(h, w), base // 2
        )
        x = image if background is None else torch.cat([image, background], dim=1)
        align = torch.clamp(f0, min=PATCH) if isinstance(f0, Tensor) else max(PATCH, f0)
        x = pad_to_multiple(x, align)
        outs = []
        for f, weight in levels:
            small = box_downsample(x, f)
            out = flip_averaged(self.coarse, small) if flip_average else self.coarse(small)
            outs.append((out, weight))
        f = levels[-1][0]  # small and f now belong to the finest level
        coarse = fuse_levels(outs)
        feats = torch.cat([coarse.hidden, coarse.alpha, coarse.foreground_residual], dim=1)

        mode = refine_mode or cfg.refine_mode
        index = PatchIndex(*(torch.zeros(0, dtype=torch.int64, device=x.device),) * 3)
        score = None
        if mode == "full":
            out = self.refiner.dense(x, feats)
            alpha, residual = out[:, :1], out[:, 1:4]
        else:
            hp, wp = x.shape[-2:]
            # Alpha and the foreground residual stay apart to the end: splitting
            # a joint 4-channel map would cost full-resolution copies at 4K.
            alpha = _upsample(coarse.alpha, (hp, wp))
            residual = _upsample(coarse.foreground_residual, (hp, wp))
            grid = (hp // PATCH, wp // PATCH)
            topk_score = None
            if mode == "topk":
                score = F.interpolate(coarse.error, size=grid, mode="bilinear", align_corners=False)
                score = topk_score = _mask_padding(score, h, w)
            if patches is not None:
                index = _patch_index(patches, x.shape[0], grid)
            elif mode == "topk":
                k = num_patches
                if k is None:
                    k = patch_budget(refine_fraction or cfg.refine_fraction, grid[0] * grid[1])
                assert topk_score is not None  # set above for mode "topk"
                index = select_topk(topk_score, k)
            elif mode == "band":
                a = F.interpolate(coarse.alpha, size=grid, mode="bilinear", align_corners=False)
                index = select_band(a, cfg.band_low, cfg.band_high, cfg.band_dilation)
            elif mode != "none":
                raise ValueError(f"unknown refine mode {mode!r}; use topk, band, full or none")
            if active is not None and patches is None:
                index = _keep_active(index, active, x.shape[0], grid)
            if exporting() or index.num_patches:
                refined = self.refiner.sparse(x, feats, index)
                alpha = scatter_patches(alpha, refined[:, :1], index)
                residual = scatter_patches(residual, refined[:, 1:4], index)

        ch, cw = (h + f - 1) // f, (w + f - 1) // f
        crop = (slice(None), slice(None), slice(0, ch), slice(0, cw))
        return MattingOutput(
            alpha=clamp01(alpha[:, :, :h, :w], self.training),
            foreground=clamp01(residual[:, :, :h, :w] + image, self.training),
            coarse_alpha=coarse.alpha[crop],
            coarse_foreground=(coarse.foreground_residual + small[:, :3])[crop].clamp(0.0, 1.0),
            coarse_error=coarse.error[crop],
            coarse_hidden=coarse.hidden[crop],
            patches=index.stack(),
            coarse_semantic=None if coarse.semantic is None else coarse.semantic[crop],
            patch_scores=score,
        )

    def _check_inputs(self, image: Tensor, background: Tensor | None) -> None:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ValueError(f"image must be a float tensor in [0, 1], got {image.dtype}")
        if self.config.background_input:
            if background is None:
                raise ValueError("this model takes a background plate; pass background=")
            if background.shape != image.shape:
                raise ValueError(
                    f"background {tuple(background.shape)} must match image {tuple(image.shape)}"
                )
        elif background is not None:
            raise ValueError("this model was built without a background input")


def build_model(config: ModelConfig) -> MattingNet:
    """A freshly initialised network for a config."""
    return MattingNet(config)
