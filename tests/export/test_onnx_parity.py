"""ONNX Runtime on the CPU against PyTorch float32: the default model at 512x512,
1920x1080 and odd sizes, with k changed at run time on one graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.onnx_export import GATES, OrtRunner
from export.parity import ParityCase, check_case, parity_failures
from matting.checkpoint import load_checkpoint
from matting.inference import default_checkpoint
from matting.runtime.manifest import read_manifest


@pytest.fixture(scope="module")
def runner(default_export: Path) -> OrtRunner:
    return OrtRunner(default_export / "model.fp32.onnx")


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_checkpoint(default_checkpoint())[0].eval()


def _check(runner: OrtRunner, model, case: ParityCase) -> None:  # type: ignore[no-untyped-def]
    record = check_case(runner, model, case, sparse=True)
    assert parity_failures([record], GATES["fp32"]) == [], record
    assert record.max_alpha_error <= 1e-3
    assert record.score_gap is not None and record.score_gap <= 1e-3


@pytest.mark.parametrize(
    ("kind", "k"), [("scene", None), ("scene", 1), ("random", 37), ("scene", 4000)]
)
def test_parity_512(runner: OrtRunner, model, kind: str, k: int | None) -> None:  # type: ignore[no-untyped-def]
    _check(runner, model, ParityCase(f"512-{kind}-{k}", 1, 512, 512, k, kind, seed=11))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "k"), [("scene", None), ("random", 5000), ("scene", 200)])
def test_parity_hd(runner: OrtRunner, model, kind: str, k: int | None) -> None:  # type: ignore[no-untyped-def]
    _check(runner, model, ParityCase(f"hd-{kind}-{k}", 1, 1080, 1920, k, kind, seed=12))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("batch", "h", "w", "k"),
    [(1, 750, 1000, None), (2, 750, 1000, 777), (1, 1000, 750, 0), (1, 333, 517, 10**9)],
)
def test_parity_odd_sizes(
    runner: OrtRunner, model, batch: int, h: int, w: int, k: int | None
) -> None:  # type: ignore[no-untyped-def]
    _check(runner, model, ParityCase(f"odd-{h}x{w}-{k}", batch, h, w, k, "scene", seed=13))


def test_k_is_a_graph_input(runner: OrtRunner) -> None:
    """One graph, several k: the patch output follows the value fed in."""
    from export.parity import case_feed

    case = ParityCase("k", 1, 256, 256, None, "scene", 3)
    feed = case_feed(case, load_checkpoint(default_checkpoint())[0].config, sparse=True)
    for k in (0, 5, 300, 4096, 10**6):
        feed["num_patches"] = np.array(k, dtype=np.int64)
        patches = runner(feed)[2]
        assert patches.shape == (min(k, 64 * 64), 3)


def test_gate_records_in_manifest(default_export: Path) -> None:
    manifest = read_manifest(default_export)
    (artifact,) = manifest.artifacts
    assert manifest.opset >= 17
    assert artifact.parity and artifact.max_alpha_error is not None
    assert artifact.max_alpha_error <= 1e-3
