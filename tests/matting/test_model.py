"""The whole model: input checks, refinement modes, coarse scale, presets."""

from __future__ import annotations

import pytest
import torch

from matting.config import ModelConfig, preset
from matting.models import build_model
from matting.ops import coarse_scale


@pytest.mark.parametrize(
    ("h", "w", "f"),
    [(512, 512, 1), (1080, 1920, 4), (2160, 3840, 8), (4320, 7680, 16), (750, 1000, 2), (1, 1, 1)],
)
def test_coarse_scale(h: int, w: int, f: int) -> None:
    assert coarse_scale(h, w, 512) == f


def test_coarse_scale_rejects_empty() -> None:
    with pytest.raises(ValueError):
        coarse_scale(0, 10, 512)


def test_model_rejects_bad_inputs() -> None:
    model = build_model(preset("realtime")).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="without a background"):
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown refine mode"):
        model(torch.rand(1, 3, 32, 32), refine_mode="bogus")  # type: ignore[arg-type]


def test_background_model_needs_plate() -> None:
    model = build_model(preset("realtime-bgm")).eval()
    with pytest.raises(ValueError, match="background plate"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="must match"):
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 36))


def test_topk_budget_and_modes() -> None:
    model = build_model(preset("realtime")).eval()
    image = torch.rand(2, 3, 64, 96)  # grid of 16 x 24 = 384 cells per image
    with torch.no_grad():
        assert model(image, num_patches=7).patches.shape == (14, 3)
        # 4% of 384 cells, rounded up.
        assert model(image).patches.shape == (2 * 16, 3)
        assert model(image, refine_fraction=1.0).patches.shape == (2 * 384, 3)
        assert model(image, refine_mode="none").patches.shape == (0, 3)
        assert model(image, refine_mode="full").patches.shape == (0, 3)
        band = model(image, refine_mode="band").patches
    assert band.shape[1] == 3 and band.dtype == torch.int64


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="config_version"):
        ModelConfig(config_version=99)
    with pytest.raises(ValueError):
        ModelConfig(backbone="vgg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="band_low"):
        ModelConfig(band_low=0.9, band_high=0.5)
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("huge")
    cfg = preset("quality")
    assert ModelConfig.model_validate_json(cfg.model_dump_json()) == cfg
