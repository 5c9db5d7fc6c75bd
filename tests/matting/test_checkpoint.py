"""Checkpoints round-trip, and every broken file gets one clear CheckpointError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from matting.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
    weights_digest,
)
from matting.config import preset
from matting.errors import CheckpointError
from matting.models import build_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "model.safetensors"
    save_checkpoint(path, build_model(preset("realtime")), {"data": "unit-test"})
    return path


def test_round_trip(saved: Path) -> None:
    model, info = load_checkpoint(saved)
    assert info.config == preset("realtime")
    assert info.format_version == FORMAT_VERSION
    assert info.metadata["data"] == "unit-test" and "matting_version" in info.metadata
    assert not model.training
    fresh = build_model(preset("realtime"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = model(x).alpha
    model2, _ = load_checkpoint(saved)
    with torch.no_grad():
        assert torch.equal(a, model2(x).alpha)
    assert set(model.state_dict()) == set(fresh.state_dict())


def test_round_trip_keeps_every_tensor(tmp_path: Path) -> None:
    original = build_model(preset("resnet18"))
    for m in original.modules():  # make buffers differ from a fresh model's
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.num_batches_tracked.fill_(7)
    save_checkpoint(tmp_path / "r.safetensors", original)
    loaded, _ = load_checkpoint(tmp_path / "r.safetensors")
    want, got = original.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k


def test_header_only_read(saved: Path) -> None:
    assert read_checkpoint_info(saved).config.backbone == "mobilenetv2"


def _expect(path: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_missing_empty_and_folder(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.safetensors", "no such checkpoint")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    _expect(tmp_path / "empty.safetensors", "empty")
    _expect(tmp_path, "not a file")


def test_truncated_and_garbage(saved: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    _expect(tmp_path / "cut.safetensors", "corrupt, truncated")
    (tmp_path / "text.safetensors").write_text("hello, I am not a checkpoint\n" * 10)
    _expect(tmp_path / "text.safetensors", "corrupt, truncated or of another format")


def test_flipped_bits_are_caught(saved: Path, tmp_path: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[-100] ^= 0xFF  # inside the last tensor's bytes
    (tmp_path / "flip.safetensors").write_bytes(bytes(data))
    _expect(tmp_path / "flip.safetensors", "checksum")


def test_plain_safetensors_of_another_model(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"fc.weight": torch.zeros(10, 4), "fc.bias": torch.zeros(10)}, str(path))
    _expect(path, "not a matting checkpoint")


def _rewrite(src: Path, dst: Path, tensors: dict | None = None, **header: str) -> None:
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
        found = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors = found if tensors is None else tensors
    meta["matting.weights_sha256"] = weights_digest(tensors)
    meta.update(header)
    save_file(tensors, str(dst), metadata=meta)


def test_weights_of_another_architecture(saved: Path, tmp_path: Path) -> None:
    """A header that says MobileNetV2 over ResNet-18 weights."""
    other = {k: v.contiguous() for k, v in build_model(preset("resnet18")).state_dict().items()}
    path = tmp_path / "mixed.safetensors"
    _rewrite(saved, path, other)
    _expect(path, r"another architecture.*backbone=mobilenetv2.*missing")


def test_newer_format_and_bad_config(saved: Path, tmp_path: Path) -> None:
    _rewrite(saved, tmp_path / "v9.safetensors", **{"matting.format_version": "9"})
    _expect(tmp_path / "v9.safetensors", "format 9.*upgrade")
    bad = json.loads(preset("realtime").model_dump_json())
    bad["backbone"] = "vgg19"
    _rewrite(saved, tmp_path / "cfg.safetensors", **{"matting.config": json.dumps(bad)})
    _expect(tmp_path / "cfg.safetensors", "config is invalid.*backbone")
    bad = json.loads(preset("realtime").model_dump_json())
    bad["refiner_channels"] = [-1, 16, 12]
    _rewrite(saved, tmp_path / "neg.safetensors", **{"matting.config": json.dumps(bad)})
    _expect(tmp_path / "neg.safetensors", "config is invalid.*refiner_channels")
    _rewrite(saved, tmp_path / "v0.safetensors", **{"matting.format_version": "-3"})
    _expect(tmp_path / "v0.safetensors", "invalid")
    _rewrite(saved, tmp_path / "meta.safetensors", **{"matting.metadata": "[1, 2]"})
    _expect(tmp_path / "meta.safetensors", "JSON object")
