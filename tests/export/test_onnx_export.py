"""Export gates, the manifest, runtime loading and its refusals, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from export.onnx_export import GATES, OrtRunner, export_onnx
from export.parity import ParityCase, check_case, parity_failures, scene_image
from matting.checkpoint import load_checkpoint, save_checkpoint
from matting.cli import cli
from matting.errors import ExportError, InputError, ManifestError
from matting.ops.padding import coarse_scale
from matting.runtime import load_backend
from matting.runtime.manifest import read_manifest, sha256_file, write_manifest
from tests.export.conftest import QUICK_CASES


def test_traced_scale_formula_matches_the_loop() -> None:
    for long_side in (64, 256, 512):
        for side in [1, 2, 63, 64, 65, 255, 256, 257, 511, 512, 513, 1920, 3840, 4097, 8192]:
            eager = coarse_scale(side, 7, long_side)
            traced = coarse_scale(torch.tensor(side), torch.tensor(7), long_side)
            assert int(traced) == eager, (side, long_side)


def test_manifest_describes_every_artifact(tiny_export: Path, tiny_checkpoint: Path) -> None:
    manifest = read_manifest(tiny_export)
    model, _ = load_checkpoint(tiny_checkpoint)
    assert manifest.model == model.config
    assert manifest.opset >= 17
    assert {"torch", "onnx", "onnxruntime", "matting"} <= set(manifest.versions)
    files = {(a.variant, a.precision): a for a in manifest.artifacts}
    assert set(files) == {(v, p) for v in ("sparse", "dense") for p in ("fp32", "fp16")}
    for a in manifest.artifacts:
        assert sha256_file(tiny_export / a.file) == a.sha256
        assert a.parity and a.parity_tolerance is not None
        image = a.inputs[0]
        assert (image.name, image.dtype, image.shape) == (
            "image",
            "uint8",
            ("batch", "height", "width", 3),
        )
    sparse = files["sparse", "fp32"]
    assert [i.name for i in sparse.inputs] == ["image", "num_patches"]
    assert [o.name for o in sparse.outputs] == ["alpha", "foreground", "patches"]
    assert sparse.outputs[0].dtype == "float32"
    assert files["sparse", "fp16"].outputs[0].dtype == "float16"
    assert files["sparse", "fp32"].max_alpha_error <= 1e-3  # type: ignore[operator]


def test_dense_graph_matches_dense_pytorch(tiny_export: Path, tiny_checkpoint: Path) -> None:
    model, _ = load_checkpoint(tiny_checkpoint)
    runner = OrtRunner(tiny_export / "model.dense.fp32.onnx")
    record = check_case(runner, model, ParityCase("dense", 2, 200, 150), sparse=False)
    assert record.max_alpha_error <= 1e-3


def test_the_gate_catches_a_graph_of_other_weights(
    tiny_export: Path, tiny_checkpoint: Path
) -> None:
    """A graph whose weights drifted from the checkpoint fails parity."""
    model, _ = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        model.refiner.stage2[-1].bias.add_(0.01)
    runner = OrtRunner(tiny_export / "model.fp32.onnx")
    record = check_case(runner, model, ParityCase("drift", 1, 96, 128, 10**6), sparse=True)
    assert parity_failures([record], GATES["fp32"])


def _outside(patches: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Mask of pixels outside the 4x4 cells listed in `patches` [batch, row, col]."""
    keep = np.ones(shape, bool)
    for b, r, c in patches:
        keep[b, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = False
    return keep


def test_backends_agree(default_export: Path) -> None:
    from matting.inference import default_checkpoint

    ort = load_backend(default_export)
    pt = load_backend(default_checkpoint())
    assert (ort.info.name, ort.info.precision, ort.info.device) == ("onnxruntime", "fp32", "cpu")
    assert pt.info.name == "torch"
    rng = np.random.default_rng(4)
    images = np.stack([scene_image(rng, 180, 240) for _ in range(2)])
    a, b = ort.infer(images, num_patches=30), pt.infer(images, num_patches=30)
    assert a.alpha.shape == (2, 180, 240) and a.foreground.shape == (2, 180, 240, 3)
    assert a.alpha.dtype == np.float32
    assert a.num_patches == b.num_patches == 30
    assert a.patches.shape == b.patches.shape == (60, 3)
    # Float rounding may reorder cells whose scores tie at the k-th place; such a
    # cell is refined by one runtime only, so it is left out of the comparison.
    # More than a couple of those per image would be a selection bug, not a tie.
    sa, sb = set(map(tuple, a.patches.tolist())), set(map(tuple, b.patches.tolist()))
    assert len(sa ^ sb) <= 4, sa ^ sb
    same = _outside(np.array(sorted(sa ^ sb), np.int64).reshape(-1, 3), a.alpha.shape)
    assert np.abs(a.alpha - b.alpha)[same].max() <= 1e-3
    assert np.abs(a.foreground - b.foreground)[same].max() <= 2e-3
    # Default budget: the same k the PyTorch model picks for itself.
    assert ort.infer(images).num_patches == pt.infer(images).num_patches
    ort.warmup(((64, 64),))


def test_dense_backends_report_no_patches(tiny_export: Path, tiny_checkpoint: Path) -> None:
    images = np.zeros((1, 40, 56, 3), np.uint8)
    dense = load_backend(tiny_export, variant="dense").infer(images, num_patches=5)
    assert dense.num_patches == 0 and dense.patches.shape == (0, 3)
    sparse = load_backend(tiny_export).infer(images, num_patches=5)
    assert sparse.patches.shape == (5, 3) and sparse.patches.dtype == np.int64


def test_backend_rejects_bad_batches(tiny_export: Path) -> None:
    backend = load_backend(tiny_export)
    with pytest.raises(InputError, match="uint8"):
        backend.infer(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(InputError, match=r"\(B, H, W, 3\)"):
        backend.infer(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="background"):
        backend.infer(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_tampered_file_is_refused(tiny_export: Path, tmp_path: Path) -> None:
    d = _copy(tiny_export, tmp_path / "x")
    with open(d / "model.fp32.onnx", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ManifestError, match="sha256"):
        load_backend(d)


def test_broken_onnx_with_matching_sha_is_refused(tiny_export: Path, tmp_path: Path) -> None:
    """A truncated graph whose manifest was rewritten to match still cannot load."""
    d = _copy(tiny_export, tmp_path / "x")
    path = d / "model.fp32.onnx"
    path.write_bytes(path.read_bytes()[:5000])
    manifest = read_manifest(d)
    fixed = tuple(
        a.model_copy(update={"sha256": sha256_file(path)}) if a.file == path.name else a
        for a in manifest.artifacts
    )
    write_manifest(d, manifest.model_copy(update={"artifacts": fixed}))
    with pytest.raises(ManifestError, match="cannot load"):
        load_backend(d)


def test_missing_or_invalid_manifest(tiny_export: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest"):
        load_backend(tmp_path)
    d = _copy(tiny_export, tmp_path / "x")
    data = json.loads((d / "manifest.json").read_text())
    data["manifest_version"] = 99
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="manifest_version"):
        load_backend(d)
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="JSON"):
        load_backend(d)
    (d / "model.fp32.onnx").unlink()
    data["manifest_version"] = 1
    (d / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="missing"):
        load_backend(d)


def test_artifact_outside_the_directory_is_refused(tiny_export: Path, tmp_path: Path) -> None:
    d = _copy(tiny_export, tmp_path / "x")
    manifest = read_manifest(d)
    moved = tuple(a.model_copy(update={"file": "../model.fp32.onnx"}) for a in manifest.artifacts)
    write_manifest(d, manifest.model_copy(update={"artifacts": moved}))
    with pytest.raises(ManifestError, match="outside"):
        load_backend(d)


def test_failed_gate_leaves_no_artifact(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A gate that cannot pass (an impossible case) stops the export and deletes
    the graph; the manifest never lists it."""
    bad = [ParityCase("empty", 1, 0, 0)]
    with pytest.raises(Exception):  # noqa: B017 - the empty image fails inside the runtime
        export_onnx(tiny_checkpoint, tmp_path, precisions=("fp32",), cases=bad)
    assert not (tmp_path / "model.fp32.onnx").exists()
    assert not (tmp_path / "manifest.json").exists()


def test_export_cli(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import export.onnx_export as mod

    monkeypatch.setattr(mod, "default_cases", lambda _cfg: QUICK_CASES)
    out = tmp_path / "cli"
    args = ["export", "onnx", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--precision", "fp32", "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / "manifest.json")
    assert [a.file for a in read_manifest(out).artifacts] == ["model.fp32.onnx"]
    missing = CliRunner().invoke(cli, ["export", "onnx", "--checkpoint", "nope.st", "--out", "o"])
    assert missing.exit_code == 1 and "error:" in missing.output
    trt = CliRunner().invoke(cli, ["export", "tensorrt", "--onnx", str(out), "--out", "e"])
    assert trt.exit_code == 1 and "TensorRT" in trt.output


def test_old_opset_is_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="opset"):
        export_onnx(tiny_checkpoint, tmp_path, precisions=("fp32",), opset=13, cases=QUICK_CASES)


def test_checkpoint_cannot_run_on_onnxruntime(tiny_checkpoint: Path) -> None:
    with pytest.raises(ManifestError, match="export it first"):
        load_backend(tiny_checkpoint, "onnxruntime")


def test_reexport_keeps_other_artifacts(tiny_checkpoint: Path, tmp_path: Path) -> None:
    export_onnx(tiny_checkpoint, tmp_path, precisions=("fp32",), cases=QUICK_CASES)
    export_onnx(tiny_checkpoint, tmp_path, precisions=("fp16",), cases=QUICK_CASES)
    assert {a.precision for a in read_manifest(tmp_path).artifacts} == {"fp32", "fp16"}
    other = tmp_path / "other.safetensors"
    model, _ = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(other, model)
    export_onnx(other, tmp_path, precisions=("fp32",), cases=QUICK_CASES)
    assert [a.precision for a in read_manifest(tmp_path).artifacts] == ["fp32"]
