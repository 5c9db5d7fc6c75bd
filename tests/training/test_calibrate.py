from __future__ import annotations

from pathlib import Path

import pytest
import torch

from matting.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from matting.config import ModelConfig
from matting.models.network import build_model
from training.calibrate import calibrate, soften_coarse_alpha

TINY = ModelConfig(aspp_channels=16, decoder_channels=(16, 8, 8), hidden_channels=4)


def _raw_alpha(model, x):  # type: ignore[no-untyped-def]
    """The coarse head's alpha before the clamp."""
    seen = {}

    def keep(_m, _i, out):  # type: ignore[no-untyped-def]
        seen["y"] = out[:, 0]  # returns None: the output is left as it is

    handle = model.coarse.decoder.convs[-1].register_forward_hook(keep)
    model(x, refine_mode="none")
    handle.remove()
    return seen["y"]


@torch.no_grad()
def test_softening_keeps_the_threshold_and_shrinks_the_range() -> None:
    model = build_model(TINY).eval()
    with torch.no_grad():  # make it steep, like the trained model
        model.coarse.decoder.convs[-1].weight[0].mul_(1000.0)
    x = torch.rand(1, 3, 64, 64)
    before = _raw_alpha(model, x)
    soften_coarse_alpha(model, 0.001)
    after = _raw_alpha(model, x)
    torch.testing.assert_close(after, 0.5 + 0.001 * (before - 0.5), rtol=1e-4, atol=1e-5)
    assert torch.equal(after > 0.5, before > 0.5) or (before - 0.5).abs().min() < 1e-3


def test_calibrate_writes_a_checkpoint_with_provenance(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_checkpoint(src, build_model(TINY))
    calibrate(src, dst, 0.01)
    meta = read_checkpoint_info(dst).metadata
    assert meta["calibration"]["coarse_alpha_factor"] == 0.01
    a, _ = load_checkpoint(src)
    b, _ = load_checkpoint(dst)
    w = a.coarse.decoder.convs[-1].weight
    torch.testing.assert_close(b.coarse.decoder.convs[-1].weight[0], w[0] * 0.01)
    torch.testing.assert_close(b.coarse.decoder.convs[-1].weight[1:], w[1:])
    with pytest.raises(ValueError, match="factor"):
        soften_coarse_alpha(a, 0.0)
