"""The feature contract, checked for every backbone and model variant."""

from __future__ import annotations

import math

import pytest
import torch

from matting.config import PRESETS
from matting.models import build_backbone, build_model

BACKBONES = ["mobilenetv2", "efficientnet_lite0", "resnet18", "resnet34", "resnet50"]
# Square, wide, and sizes that are not multiples of 32 (or even of 2).
SIZES = [(64, 64), (96, 160), (100, 75), (33, 47)]


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("output_stride", [16, 32])
def test_backbone_feature_contract(name: str, output_stride: int) -> None:
    net = build_backbone(name, in_channels=3, output_stride=output_stride).eval()
    info = net.feature_info
    assert [f.stride for f in info] == [2, 4, 8, 16, output_stride]
    for h, w in SIZES:
        with torch.no_grad():
            feats = net(torch.rand(1, 3, h, w))
        assert len(feats) == len(info)
        for f, meta in zip(feats, info, strict=True):
            expected = (1, meta.channels, math.ceil(h / meta.stride), math.ceil(w / meta.stride))
            assert tuple(f.shape) == expected, (name, h, w, meta)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_six_channel_stem(name: str) -> None:
    net = build_backbone(name, in_channels=6).eval()
    with torch.no_grad():
        feats = net(torch.rand(2, 6, 64, 96))
    assert feats[-1].shape[0] == 2
    with pytest.raises(RuntimeError):
        net(torch.rand(1, 3, 64, 96))


def test_unknown_backbone_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg16")


@pytest.mark.parametrize("preset_name", sorted(PRESETS))
def test_model_variant_shapes(preset_name: str) -> None:
    """Every variant returns full-resolution outputs at any size, and coarse
    outputs at ceil(size / f) for its power-of-two coarse scale f."""
    config = PRESETS[preset_name]
    model = build_model(config).eval()
    for b, h, w, f in [(1, 64, 64, 1), (2, 97, 130, 1), (1, 600, 250, 2)]:
        image = torch.rand(b, 3, h, w)
        background = torch.rand(b, 3, h, w) if config.background_input else None
        with torch.no_grad():
            out = model(image, background)
        assert out.alpha.shape == (b, 1, h, w)
        assert out.foreground.shape == (b, 3, h, w)
        ch, cw = math.ceil(h / f), math.ceil(w / f)
        assert out.coarse_alpha.shape == (b, 1, ch, cw)
        assert out.coarse_foreground.shape == (b, 3, ch, cw)
        assert out.coarse_error.shape == (b, 1, ch, cw)
        assert out.coarse_hidden.shape == (b, config.hidden_channels, ch, cw)
        for t in (out.alpha, out.foreground, out.coarse_alpha, out.coarse_error):
            assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
        assert float(out.coarse_hidden.min()) >= 0.0


def test_padding_is_cropped_back() -> None:
    """An odd-sized image gives the same outputs as its edge-padded copy, cropped."""
    model = build_model(PRESETS["realtime"]).eval()
    image = torch.rand(1, 3, 45, 71)
    padded = torch.nn.functional.pad(image, (0, 96 - 71, 0, 64 - 45), mode="replicate")
    with torch.no_grad():
        a = model(image, refine_mode="none")
        b = model(padded, refine_mode="none")
    torch.testing.assert_close(a.alpha, b.alpha[..., :45, :71], rtol=0, atol=1e-6)
    torch.testing.assert_close(a.coarse_hidden, b.coarse_hidden[..., :45, :71], rtol=0, atol=1e-5)
