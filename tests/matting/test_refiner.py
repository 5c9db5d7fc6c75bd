"""The sparse refiner: all patches equal dense refinement; k patches change
exactly those patches."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from matting.config import preset
from matting.models.refiner import PATCH, PatchRefiner
from matting.ops import PatchIndex, scatter_patches, select_all, select_topk


def _refiner(name: str, dtype: torch.dtype = torch.float32) -> PatchRefiner:
    refiner = PatchRefiner(preset(name)).eval().to(dtype)
    # Give BatchNorm non-trivial statistics so eval mode is not the identity.
    g = torch.Generator().manual_seed(1)
    for m in refiner.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return refiner


def _inputs(name: str, b: int, h: int, w: int, scale: int, dtype: torch.dtype):
    cfg = preset(name)
    image = torch.rand(b, cfg.image_channels, h, w, dtype=dtype)
    coarse = torch.rand(b, cfg.hidden_channels + 4, h // scale, w // scale, dtype=dtype)
    return image, coarse


@pytest.mark.parametrize("name", ["realtime", "realtime-bgm"])
@pytest.mark.parametrize(("h", "w", "scale"), [(64, 96, 4), (40, 36, 1), (48, 32, 2), (32, 64, 8)])
def test_all_patches_equal_dense(name: str, h: int, w: int, scale: int) -> None:
    refiner = _refiner(name)
    image, coarse = _inputs(name, 2, h, w, scale, torch.float32)
    index = select_all(2, h // PATCH, w // PATCH, image.device)
    with torch.no_grad():
        dense = refiner.dense(image, coarse)
        sparse = refiner.sparse(image, coarse, index, chunk=37)  # several uneven chunks
    assert dense.shape == (2, 4, h, w)
    assert float(dense.abs().max()) > 0.1  # the comparison is not between zeros
    rebuilt = scatter_patches(torch.full_like(dense, float("nan")), sparse, index)
    assert float((rebuilt - dense).abs().max()) <= 1e-5


def test_all_patches_equal_dense_float64() -> None:
    refiner = _refiner("realtime", torch.float64)
    image, coarse = _inputs("realtime", 1, 48, 64, 4, torch.float64)
    index = select_all(1, 12, 16, image.device)
    with torch.no_grad():
        dense = refiner.dense(image, coarse)
        rebuilt = scatter_patches(
            torch.zeros_like(dense), refiner.sparse(image, coarse, index), index
        )
    assert float((rebuilt - dense).abs().max()) <= 1e-10


def _cell_changed(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) pair -> (B, H/4, W/4) bool: did any value of the cell change."""
    diff = (before != after).any(dim=1, keepdim=True).to(torch.float32)
    return F.max_pool2d(diff, PATCH)[:, 0] > 0


def test_k_patches_change_exactly_those_patches() -> None:
    refiner = _refiner("realtime")
    image, coarse = _inputs("realtime", 2, 64, 96, 4, torch.float32)
    base = F.interpolate(coarse[:, -4:], size=(64, 96), mode="bilinear", align_corners=False)
    score = torch.rand(2, 1, 16, 24)
    index = select_topk(score, 9)
    with torch.no_grad():
        out = scatter_patches(base, refiner.sparse(image, coarse, index), index)
    selected = torch.zeros(2, 16, 24, dtype=torch.bool)
    selected[index.batch, index.row, index.col] = True
    assert int(selected.sum()) == 18
    assert torch.equal(_cell_changed(base, out), selected)


def test_sparse_refinement_of_one_patch_matches_dense_there() -> None:
    """The refined values of a patch do not depend on which other patches run."""
    refiner = _refiner("realtime")
    image, coarse = _inputs("realtime", 1, 32, 32, 2, torch.float32)
    with torch.no_grad():
        dense = refiner.dense(image, coarse)
        one = refiner.sparse(image, coarse, PatchIndex(*(torch.tensor([v]) for v in (0, 3, 5))))
    torch.testing.assert_close(one[0], dense[0, :, 12:16, 20:24], rtol=0, atol=1e-5)


def test_model_changes_only_selected_patches() -> None:
    from matting.models import build_model

    model = build_model(preset("realtime")).eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        plain = model(image, refine_mode="none")
        refined = model(image, num_patches=5)
    selected = torch.zeros(1, 16, 16, dtype=torch.bool)
    p = refined.patches
    selected[p[:, 0], p[:, 1], p[:, 2]] = True
    both = (
        torch.cat([plain.alpha, plain.foreground], 1),
        torch.cat([refined.alpha, refined.foreground], 1),
    )
    changed = _cell_changed(*both)
    assert bool((changed & ~selected).sum() == 0)
    assert bool(changed.any())


def test_bfloat16_sparse_follows_float32_dense() -> None:
    """Low precision changes rounding, not which pixels each patch reads."""
    ref = _refiner("realtime")
    low = copy.deepcopy(ref).to(torch.bfloat16)
    image, coarse = _inputs("realtime", 1, 32, 48, 4, torch.float32)
    index = select_all(1, 8, 12, image.device)
    with torch.no_grad():
        dense = ref.dense(image, coarse)
        sparse = low.sparse(image.bfloat16(), coarse.bfloat16(), index).float()
    rebuilt = scatter_patches(torch.zeros_like(dense), sparse, index)
    err = float((rebuilt - dense).abs().max())
    assert err <= 0.05 * float(dense.abs().max()), err
