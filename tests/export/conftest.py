"""Exports shared by the export tests: the shipped default model (real weights,
for parity at the sizes the issue names) and a tiny random model (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.parity import ParityCase
from matting.checkpoint import save_checkpoint
from matting.config import ModelConfig
from matting.models.network import build_model

TINY = ModelConfig(
    aspp_channels=16,
    decoder_channels=(16, 8, 8),
    hidden_channels=4,
    refiner_channels=(4, 4, 4),
    coarse_long_side=64,
)
# One small case keeps fixture exports quick; the parity tests run the rest.
QUICK_CASES = [ParityCase("quick", 1, 96, 128, 20, "scene", 0)]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_checkpoint(path, build_model(TINY).eval())
    return path


@pytest.fixture(scope="session")
def default_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model exported to ONNX float32 (sparse) with the quick gate."""
    from export.onnx_export import export_onnx
    from matting.inference import default_checkpoint

    out = tmp_path_factory.mktemp("default-onnx")
    export_onnx(default_checkpoint(), out, precisions=("fp32",), cases=QUICK_CASES)
    return out


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """The tiny model in every variant and precision."""
    from export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("tiny-onnx")
    export_onnx(
        tiny_checkpoint,
        out,
        precisions=("fp32", "fp16"),
        variants=("sparse", "dense"),
        cases=QUICK_CASES,
    )
    return out
