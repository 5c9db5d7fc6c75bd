"""Serving a model without its test-time augmentation (mirror and scale averaging):
the predictor, the torch backend, ONNX exports, the service's default export and
`matting image --no-tta`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from export.onnx_export import export_onnx
from export.tensorrt import _source_model
from matting.checkpoint import save_checkpoint
from matting.cli import cli
from matting.errors import ManifestError
from matting.inference import load_predictor
from matting.models.network import build_model
from matting.runtime import load_backend
from matting.runtime.manifest import read_manifest
from tests.export.conftest import QUICK_CASES, TINY

AUGMENTED = TINY.model_copy(update={"flip_average": True, "coarse_scales": (0.75, 1.0, 1.5)})


@pytest.fixture(scope="module")
def augmented_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("tta") / "tta.safetensors"
    save_checkpoint(path, build_model(AUGMENTED).eval())
    return path


def _photo(h: int = 90, w: int = 150) -> np.ndarray:
    rng = np.random.default_rng(5)
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def test_config_drops_only_the_augmentation() -> None:
    plain = AUGMENTED.without_test_time_augmentation()
    assert AUGMENTED.test_time_augmentation and not plain.test_time_augmentation
    assert not plain.flip_average and plain.coarse_scales == (1.0,)
    assert plain.model_copy(update={"flip_average": True, "coarse_scales": (0.75, 1.0, 1.5)}) == (
        AUGMENTED
    )
    assert not TINY.test_time_augmentation
    assert TINY.model_copy(update={"flip_average": True}).test_time_augmentation


def test_predictor_without_tta_runs_one_plain_pass(augmented_checkpoint: Path) -> None:
    rgb = _photo()
    full = load_predictor(augmented_checkpoint, "cpu", "fp32")
    plain = load_predictor(augmented_checkpoint, "cpu", "fp32", tta=False)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
    with torch.inference_mode():
        one_pass = full.model(x, flip_average=False, coarse_scales=(1.0,)).alpha[0, 0].numpy()
    # 150 px at a 64 px side: the 48 and 96 px passes are kept, so averaging changes alpha.
    np.testing.assert_allclose(plain.predict(rgb).alpha, one_pass, atol=1e-6)
    assert np.abs(full.predict(rgb).alpha - one_pass).max() > 1e-3


def test_torch_backend_and_exports_follow_the_option(
    augmented_checkpoint: Path, tmp_path: Path
) -> None:
    torch_backend = load_backend(augmented_checkpoint, "torch", device="cpu", tta=False)
    assert not torch_backend.info.model.test_time_augmentation
    with_tta = tmp_path / "with"
    export_onnx(augmented_checkpoint, with_tta, precisions=("fp32",), cases=QUICK_CASES)
    assert read_manifest(with_tta).model.test_time_augmentation
    with pytest.raises(ManifestError, match="export it again with `matting export onnx --no-tta`"):
        load_backend(with_tta, "onnxruntime", device="cpu", tta=False)

    without = tmp_path / "without"
    export_onnx(augmented_checkpoint, without, precisions=("fp32",), cases=QUICK_CASES, tta=False)
    assert not read_manifest(without).model.test_time_augmentation
    # The TensorRT parity gate compares an engine with the model as it was exported.
    assert not _source_model(read_manifest(without), augmented_checkpoint).config.flip_average
    assert _source_model(read_manifest(with_tta), augmented_checkpoint).config.flip_average
    backend = load_backend(without, "onnxruntime", device="cpu", tta=False)
    rgb = _photo(96, 128)
    got = backend.infer(rgb[None]).alpha[0]
    want = load_predictor(augmented_checkpoint, "cpu", "fp32", tta=False).predict(rgb).alpha
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_cli_image_no_tta(augmented_checkpoint: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(_photo()).save(src)
    outs = {}
    for flag in ("--tta", "--no-tta"):
        out = tmp_path / f"out{flag}.png"
        args = ["image", str(src), "-o", str(out), "--checkpoint", str(augmented_checkpoint)]
        result = CliRunner().invoke(cli, [*args, "--output", "alpha", "--device", "cpu", flag])
        assert result.exit_code == 0, result.output
        outs[flag] = np.asarray(Image.open(out), dtype=np.int16)
    want = load_predictor(augmented_checkpoint, "cpu", "fp32", tta=False).predict(_photo()).alpha
    assert np.abs(outs["--no-tta"] - np.round(want * 255)).max() <= 1
    assert np.abs(outs["--tta"] - outs["--no-tta"]).max() > 0
