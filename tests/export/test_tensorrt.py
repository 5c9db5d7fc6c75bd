"""TensorRT engine building and the TensorRT backend.

Everything up to the TensorRT calls runs here without TensorRT: profiles, the
budget of patches, a graph free of TopK, manifest checks, and the order in which
build and load refuse. The real build and parity run only with tensorrt and a CUDA GPU (marked gpu).
"""

from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from export.tensorrt import (
    GATES,
    MIN_SIDE,
    build_engine,
    case_fits,
    check_profiles,
    default_profiles,
    engine_name,
    parse_profile,
    patch_range,
    profile_shapes,
    retyped,
    target_manifest,
)
from matting.config import ModelConfig
from matting.errors import DeviceError, ExportError, ManifestError
from matting.runtime.base import default_num_patches
from matting.runtime.manifest import (
    Artifact,
    Manifest,
    Profile,
    TensorSpec,
    read_manifest,
    sha256_file,
    write_manifest,
)
from matting.runtime.tensorrt_backend import (
    NEEDS_TENSORRT,
    TensorRTBackend,
    check_engine_profiles,
    check_requested_shapes,
    patch_grid_cells,
    read_buffer,
    torch_dtype,
    torch_output_allocator,
)

TINY = ModelConfig(
    backbone="mobilenetv2",
    aspp_channels=16,
    decoder_channels=(16, 8, 8),
    hidden_channels=4,
    refiner_channels=(4, 4, 4),
)
SMALL = Profile(name="small", min=(1, 32, 32), opt=(1, 256, 256), max=(2, 512, 512))
SERVED = [(1, 512, 512), (1, 1080, 1920), (1, 1920, 1080), (1, 2160, 3840), (1, 3840, 2160)]


# --- profiles ---------------------------------------------------------------------------


def test_default_profiles_are_valid_ranges() -> None:
    profiles = default_profiles()
    check_profiles(profiles)  # names differ, every range min <= opt <= max
    assert [p.name for p in profiles] == ["512", "hd", "4k"]
    for p in profiles:
        assert all(lo <= o <= hi for lo, o, hi in zip(p.min, p.opt, p.max, strict=True))
        assert p.opt[0] == 1 and p.min[0] == 1 and p.max[0] == 8
    assert [p.opt for p in profiles] == [(1, 512, 512), (1, 1080, 1920), (1, 2160, 3840)]


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("shape", SERVED)
def test_default_profiles_cover_the_served_sizes(shape: tuple[int, int, int], batch: int) -> None:
    _, h, w = shape
    assert any(p.accepts(batch, h, w) for p in default_profiles())
    check_requested_shapes(default_profiles(), [(batch, h, w)])


def test_default_profiles_route_sizes_to_their_tuned_profile() -> None:
    def first(h: int, w: int) -> str:
        return next(p.name for p in default_profiles() if p.accepts(1, h, w))

    assert first(512, 512) == "512"
    assert first(1080, 1920) == first(1920, 1080) == "hd"
    assert first(2160, 3840) == first(3840, 2160) == "4k"
    assert not any(p.accepts(1, MIN_SIDE - 1, 64) for p in default_profiles())


def test_default_profiles_batch() -> None:
    assert all(p.max[0] == 3 for p in default_profiles(max_batch=3))
    with pytest.raises(ValueError, match="max_batch"):
        default_profiles(max_batch=0)


def test_parse_profile() -> None:
    p = parse_profile("hd:1x32x32-1x1080x1920-8x1920x1920")
    assert p == Profile(name="hd", min=(1, 32, 32), opt=(1, 1080, 1920), max=(8, 1920, 1920))
    assert parse_profile(" cam_2.v1 : 1X64X64 - 2x256x256 - 4x512x512 ").max == (4, 512, 512)
    assert parse_profile("one:1x8x8-1x8x8-1x8x8").opt == (1, 8, 8)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no name"),
        ("1x32x32-1x64x64-1x128x128", "no name"),
        (":1x32x32-1x64x64-1x128x128", "no name"),
        ("h d:1x32x32-1x64x64-1x128x128", "may hold only"),
        ("hd:1x32x32-1x64x64", "three shapes"),
        ("hd:1x32x32-1x64x64-1x128x128-1x256x256", "three shapes"),
        ("hd:1x32-1x64x64-1x128x128", "min shape"),
        ("hd:1x32x32-1xbigx64-1x128x128", "opt shape"),
        ("hd:1x32x32-1x64x64-1x128x-5", "three shapes"),
        ("hd:0x32x32-1x64x64-1x128x128", "below 1"),
        ("hd:1x64x64-1x32x32-1x128x128", "height must satisfy min <= opt <= max"),
        ("hd:1x32x32-4x64x64-2x128x128", "batch must satisfy"),
    ],
)
def test_parse_profile_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_profile(text)


def test_check_profiles_refuses_repeats_and_nothing() -> None:
    with pytest.raises(ValueError, match="repeated: small"):
        check_profiles([SMALL, SMALL])
    with pytest.raises(ValueError, match="at least one"):
        check_profiles([])


def test_profile_shapes_are_nhwc() -> None:
    assert profile_shapes(SMALL) == ((1, 32, 32, 3), (1, 256, 256, 3), (2, 512, 512, 3))


# --- the budget of patches -------------------------------------------------------------


def test_patch_range_reaches_every_cell_of_the_largest_size() -> None:
    config = ModelConfig()
    small, _, uhd = default_profiles()[:3]
    most = patch_grid_cells(small.max[1], small.max[2], config)
    assert patch_range(small, config) == (0, 656, most)
    # 4K at 4% needs 20736 patches: far past TensorRT's TopK limit of 3840, which
    # the exported graph no longer uses.
    lo, opt, hi = patch_range(uhd, config)
    assert (lo, opt) == (0, default_num_patches(2160, 3840, config)) and opt > 3840
    assert hi == patch_grid_cells(uhd.max[1], uhd.max[2], config)


def test_the_exported_graph_has_no_topk(tmp_path: Path) -> None:
    """TensorRT's TopK takes k <= 3840; the sparse graph must select without it."""
    import onnx

    from export.onnx_export import export_onnx
    from export.parity import ParityCase
    from matting.checkpoint import save_checkpoint
    from matting.models.network import build_model
    from tests.export.conftest import TINY

    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, build_model(TINY).eval())
    export_onnx(
        ckpt, tmp_path / "onnx", precisions=("fp32",), cases=[ParityCase("q", 1, 64, 96, 40)]
    )
    ops = {n.op_type for n in onnx.load(str(tmp_path / "onnx" / "model.fp32.onnx")).graph.node}
    assert "TopK" not in ops and {"NonZero", "CumSum"} <= ops


def test_patch_grid_cells_is_the_grid_default_num_patches_takes_a_fraction_of() -> None:
    config = ModelConfig()
    for h, w in [(512, 512), (750, 1000), (1080, 1920), (33, 47)]:
        cells = patch_grid_cells(h, w, config)
        assert default_num_patches(h, w, config) == max(1, -(-cells * 4 // 100))
    assert patch_grid_cells(1080, 1920, config) == 270 * 480


def test_case_fits_skips_cases_the_engine_cannot_take() -> None:
    from export.parity import default_cases

    config = ModelConfig()
    why = {c.name: case_fits(c, [SMALL]) for c in default_cases(config)}
    assert why["512-scene"] == "" and why["512-random-k37"] == ""
    assert "outside the profiles" in why["hd-scene"]
    one_k = Profile(name="1k", min=(1, 32, 32), opt=(1, 512, 512), max=(2, 1024, 1024))
    why = {c.name: case_fits(c, [one_k]) for c in default_cases(config)}
    assert why["odd-scene-b2-k777"] == "" and why["odd-random-k0"] == ""
    assert why["odd-portrait-all"] == ""  # every one of its 47000 cells: no TopK limit


# --- engine and manifest checks ---------------------------------------------------------


def test_check_requested_shapes_names_what_is_not_covered() -> None:
    check_requested_shapes([SMALL], [(1, 32, 32), (2, 512, 512), (1, 100, 300)])
    with pytest.raises(ManifestError, match=r"batch 1 of 1080x1920, batch 3 of 256x256"):
        check_requested_shapes([SMALL], [(1, 256, 256), (1, 1080, 1920), (3, 256, 256)])
    check_requested_shapes([], [(1, 4000, 4000)])  # no profiles: any shape
    with pytest.raises(ValueError, match="batch, height, width"):
        check_requested_shapes([SMALL], [(0, 64, 64)])


def test_check_engine_profiles() -> None:
    nhwc = [((1, 32, 32, 3), (1, 256, 256, 3), (2, 512, 512, 3))]
    check_engine_profiles(nhwc, [SMALL])
    with pytest.raises(ManifestError, match="engine built for other shapes"):
        check_engine_profiles([((1, 32, 32, 3), (1, 256, 256, 3), (4, 512, 512, 3))], [SMALL])
    with pytest.raises(ManifestError, match="engine built for other shapes"):
        check_engine_profiles(nhwc, [SMALL, default_profiles()[0]])
    with pytest.raises(ManifestError, match="engine built for other shapes"):
        check_engine_profiles([((1, 32, 32, 4), (1, 256, 256, 4), (2, 512, 512, 4))], [SMALL])


def test_torch_dtype() -> None:
    assert torch_dtype("HALF") is torch.float16 and torch_dtype("INT64") is torch.int64
    with pytest.raises(ManifestError, match="FP8"):
        torch_dtype("FP8")


def test_output_allocator_and_read_buffer() -> None:
    # The allocator's own logic, on the CPU with a stand-in for TensorRT's base class.
    class Base:
        def __init__(self) -> None:
            pass

    fake = types.SimpleNamespace(IOutputAllocator=Base)
    alloc = torch_output_allocator(fake, torch.device("cpu"))
    ptr = alloc.reallocate_output_async("patches", 0, 6 * 3 * 8, 256, 0)
    assert ptr % 256 == 0 and alloc.buffers["patches"].numel() == 6 * 3 * 8
    assert alloc.reallocate_output("patches", ptr, 16, 256) == ptr  # big enough: reused
    alloc.notify_shape("patches", [6, 3])
    picks = torch.arange(18, dtype=torch.int64)
    alloc.buffers["patches"].copy_(picks.view(torch.uint8))
    got = read_buffer(alloc.buffers["patches"], alloc.shapes["patches"], torch.int64)
    assert got.shape == (6, 3) and got.tolist() == picks.view(6, 3).tolist()
    assert read_buffer(None, (0, 3), torch.int64).shape == (0, 3)
    with pytest.raises(DeviceError, match="less output"):
        read_buffer(alloc.buffers["patches"], (7, 3), torch.int64)


def test_gates_match_the_onnx_export() -> None:
    onnx_export = pytest.importorskip("export.onnx_export")
    assert getattr(onnx_export, "GATES", GATES) == GATES


def _specs() -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    inputs = (
        TensorSpec(name="image", dtype="uint8", shape=("batch", "height", "width", 3)),
        TensorSpec(name="num_patches", dtype="int64", shape=()),
    )
    outputs = (
        TensorSpec(name="alpha", dtype="float32", shape=("batch", 1, "height", "width")),
        TensorSpec(name="foreground", dtype="float32", shape=("batch", 3, "height", "width")),
        TensorSpec(name="patches", dtype="int64", shape=("refined_patches", 3)),
    )
    return inputs, outputs


def _export_dir(
    root: Path, file: str, data: bytes, fmt: str = "tensorrt", sha: str | None = None
) -> tuple[Manifest, Artifact]:
    """A manifest listing one artifact whose file holds `data`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / file).write_bytes(data)
    inputs, outputs = _specs()
    artifact = Artifact(
        file=file,
        sha256=sha or sha256_file(root / file),
        bytes=len(data),
        format=fmt,  # type: ignore[arg-type]
        precision="fp32",
        variant="sparse",
        inputs=inputs,
        outputs=outputs,
        profiles=(SMALL,) if fmt == "tensorrt" else (),
    )
    manifest = Manifest(
        model=TINY,
        opset=17,
        checkpoint_sha256="c" * 64,
        created="2024-01-01T00:00:00+00:00",
        versions={"matting": "test"},
        artifacts=(artifact,),
    )
    write_manifest(root, manifest)
    return manifest, artifact


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import tensorrt` fails, as on this machine, also where it is installed."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)


class _UntouchableTensorRT(types.ModuleType):
    """Imports fine; any use of it raises, so a test sees how far a build got."""

    __version__ = "10.0-fake"

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"reached TensorRT (tensorrt.{name})")


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """An importable tensorrt that must not be used, and a CUDA that is 'there':
    what build_engine does before it calls TensorRT can then be seen here."""
    monkeypatch.setitem(sys.modules, "tensorrt", _UntouchableTensorRT("tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", lambda _index: contextlib.nullcontext())


def test_backend_checks_sha256_before_importing_tensorrt(tmp_path: Path, no_tensorrt: None) -> None:
    manifest, artifact = _export_dir(tmp_path, "model.fp32.engine", b"engine", sha="0" * 64)
    with pytest.raises(ManifestError, match=r"sha256 .* does not match"):
        TensorRTBackend(tmp_path, manifest, artifact)


def test_backend_refuses_a_missing_engine(tmp_path: Path, no_tensorrt: None) -> None:
    manifest, artifact = _export_dir(tmp_path, "model.fp32.engine", b"engine")
    (tmp_path / "model.fp32.engine").unlink()
    with pytest.raises(ManifestError, match="missing"):
        TensorRTBackend(tmp_path, manifest, artifact)


def test_backend_refuses_an_onnx_artifact(tmp_path: Path, no_tensorrt: None) -> None:
    manifest, artifact = _export_dir(tmp_path, "model.fp32.onnx", b"graph", fmt="onnx")
    with pytest.raises(ManifestError, match="is a onnx artifact, not a TensorRT engine"):
        TensorRTBackend(tmp_path, manifest, artifact)


def test_backend_without_tensorrt_is_a_device_error(tmp_path: Path, no_tensorrt: None) -> None:
    manifest, artifact = _export_dir(tmp_path, "model.fp32.engine", b"engine")
    with pytest.raises(DeviceError, match="need the tensorrt package and an NVIDIA GPU"):
        TensorRTBackend(tmp_path, manifest, artifact)


def test_backend_without_cuda_is_a_device_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    manifest, artifact = _export_dir(tmp_path, "model.fp32.engine", b"engine")
    with pytest.raises(DeviceError, match="no CUDA device"):
        TensorRTBackend(tmp_path, manifest, artifact)


def test_build_without_tensorrt_fails_first(tmp_path: Path, no_tensorrt: None) -> None:
    # The directory does not even exist: the TensorRT check must come first.
    with pytest.raises(ExportError) as e:
        build_engine(tmp_path / "nowhere")
    assert str(e.value).startswith(NEEDS_TENSORRT)
    assert "pip install tensorrt" in str(e.value)


def test_build_checks_the_onnx_graph(tmp_path: Path, fake_gpu: None) -> None:
    _export_dir(tmp_path, "model.fp32.onnx", b"graph", fmt="onnx", sha="0" * 64)
    with pytest.raises(ManifestError, match="does not match"):
        build_engine(tmp_path, profiles=[SMALL])
    with pytest.raises(ExportError, match="not an ONNX graph of the manifest"):
        build_engine(tmp_path, onnx_file="other.onnx", profiles=[SMALL])
    with pytest.raises(ExportError, match="repeated"):
        build_engine(tmp_path, profiles=[SMALL, SMALL])


def test_build_with_no_onnx_graph(tmp_path: Path, fake_gpu: None) -> None:
    _export_dir(tmp_path, "model.fp32.engine", b"engine")
    with pytest.raises(ExportError, match="no float32 sparse ONNX graph"):
        build_engine(tmp_path)


def test_target_manifest(tmp_path: Path) -> None:
    source, _ = _export_dir(tmp_path / "src", "model.fp32.onnx", b"graph", fmt="onnx")
    assert target_manifest(source, tmp_path / "src", tmp_path / "src") is source
    fresh = target_manifest(source, tmp_path / "src", tmp_path / "empty")
    assert fresh.artifacts == () and fresh.checkpoint_sha256 == source.checkpoint_sha256
    other = source.model_copy(update={"checkpoint_sha256": "d" * 64})
    write_manifest(tmp_path / "other", other)
    with pytest.raises(ExportError, match="another checkpoint"):
        target_manifest(source, tmp_path / "src", tmp_path / "other")
    write_manifest(tmp_path / "same", source)
    assert target_manifest(source, tmp_path / "src", tmp_path / "same") == read_manifest(
        tmp_path / "same"
    )


def test_retyped_and_names() -> None:
    inputs, _ = _specs()
    assert [s.dtype for s in retyped(inputs, {"image": "uint8", "num_patches": "int32"})] == [
        "uint8",
        "int32",
    ]
    assert engine_name("sparse", "fp16") == "model.fp16.engine"
    assert engine_name("dense", "fp32") == "model.dense.fp32.engine"


# --- a real export of a tiny model ------------------------------------------------------


@pytest.fixture(scope="module")
def trt_tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, export dir) of a tiny untrained model with its fp32 ONNX graph."""
    from export.onnx_export import export_onnx
    from export.parity import ParityCase
    from matting.checkpoint import save_checkpoint
    from matting.models.network import build_model

    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(root / "tiny.safetensors", build_model(TINY))
    cases = [ParityCase("small", 1, 96, 128, 20, "scene", 1)]
    export_onnx(checkpoint, root / "export", precisions=("fp32",), cases=cases)
    return checkpoint, root / "export"


@pytest.mark.slow
def test_build_refuses_another_checkpoint(
    trt_tiny_export: tuple[Path, Path], tmp_path: Path, fake_gpu: None
) -> None:
    from matting.checkpoint import save_checkpoint
    from matting.models.network import build_model

    _, export = trt_tiny_export
    torch.manual_seed(1)
    other = save_checkpoint(tmp_path / "other.safetensors", build_model(TINY))
    with pytest.raises(ExportError, match="not the checkpoint the ONNX graph was exported from"):
        build_engine(export, profiles=[SMALL], checkpoint=other)


@pytest.mark.slow
def test_build_reaches_tensorrt_with_a_good_export(
    trt_tiny_export: tuple[Path, Path], fake_gpu: None
) -> None:
    checkpoint, export = trt_tiny_export
    with pytest.raises(RuntimeError, match="reached TensorRT"):
        build_engine(export, profiles=[SMALL], checkpoint=checkpoint)
    assert not list(export.glob("*.engine"))


# --- on a GPU with TensorRT -------------------------------------------------------------


def _need_tensorrt() -> None:
    pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU")


@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True])
def test_build_and_serve_a_tiny_engine(
    trt_tiny_export: tuple[Path, Path], tmp_path: Path, fp16: bool
) -> None:
    _need_tensorrt()
    from export.parity import ParityCase
    from matting.checkpoint import load_checkpoint

    checkpoint, export = trt_tiny_export
    cases = [
        ParityCase("small-scene", 1, 256, 256, None, "scene", 1),
        ParityCase("odd-b2-k50", 2, 200, 330, 50, "random", 2),
        ParityCase("k0", 1, 96, 128, 0, "scene", 3),
        ParityCase("all", 1, 64, 64, 10**6, "scene", 4),
    ]
    cache = tmp_path / "timing.cache"
    out = tmp_path / "engine"
    logs: list[str] = []
    path = build_engine(
        export,
        out_dir=out,
        profiles=[SMALL],
        fp16=fp16,
        timing_cache=cache,
        checkpoint=checkpoint,
        cases=cases,
        log=logs.append,
    )
    precision = "fp16" if fp16 else "fp32"
    assert path == out / f"model.{precision}.engine" and cache.stat().st_size > 0
    manifest = read_manifest(out)
    artifact = manifest.find("tensorrt", precision)  # type: ignore[arg-type]
    assert artifact is not None and artifact.profiles == (SMALL,)
    assert artifact.sha256 == sha256_file(path) and "tensorrt" in manifest.versions
    assert [r.case for r in artifact.parity] == [c.name for c in cases]
    if not fp16:
        assert max(r.max_alpha_error for r in artifact.parity) <= 1e-3

    backend = TensorRTBackend(out, manifest, artifact)
    assert backend.info.name == "tensorrt" and backend.info.precision == precision
    backend.check_shapes([(1, 256, 256), (2, 512, 512)])
    with pytest.raises(ManifestError, match="batch 1 of 1080x1920"):
        backend.check_shapes([(1, 1080, 1920)])

    model, _ = load_checkpoint(checkpoint)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 120, 200, 3), dtype=np.uint8)
    got = backend.infer(images, num_patches=30)
    assert got.alpha.shape == (2, 120, 200) and got.foreground.shape == (2, 120, 200, 3)
    assert got.alpha.dtype == np.float32 and got.num_patches == 30
    with torch.inference_mode():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        ref = model(x, refine_mode="topk", num_patches=30)
    # A smoke test of the layouts (NHWC in, NCHW out): near-ties may pick other
    # patches than PyTorch here; the parity gate compared the arithmetic exactly.
    err = np.abs(got.alpha - ref.alpha[:, 0].numpy())
    assert float(err.mean()) < 5e-3
    backend.close()


@pytest.mark.gpu
def test_engine_swapped_under_its_manifest_is_refused(
    trt_tiny_export: tuple[Path, Path], tmp_path: Path
) -> None:
    _need_tensorrt()
    from export.parity import ParityCase

    checkpoint, export = trt_tiny_export
    out = tmp_path / "engine"
    cases = [ParityCase("small", 1, 96, 128, 20, "scene", 1)]
    build_engine(
        export, out_dir=out, profiles=[SMALL], fp16=False, checkpoint=checkpoint, cases=cases
    )
    manifest = read_manifest(out)
    artifact = manifest.find("tensorrt", "fp32")
    assert artifact is not None
    other = Profile(name="small", min=(1, 32, 32), opt=(1, 256, 256), max=(4, 512, 512))
    lying = artifact.model_copy(update={"profiles": (other,)})
    with pytest.raises(ManifestError, match="engine built for other shapes"):
        TensorRTBackend(out, manifest, lying)
    (out / artifact.file).write_bytes(b"not an engine")
    garbage = artifact.model_copy(update={"sha256": sha256_file(out / artifact.file)})
    with pytest.raises(ManifestError, match="could not be deserialized"):
        TensorRTBackend(out, manifest, garbage)
