"""`matting export tensorrt`: an exported ONNX graph -> a TensorRT engine, gated.

1. check that tensorrt imports and torch sees a CUDA GPU, before anything else;
2. read the manifest, pick the float32 sparse ONNX artifact (or the named one)
   and verify its sha256;
3. parse it with the TensorRT 10 ONNX parser and build one optimisation profile
   per served size range (`default_profiles`), in fp16 or fp32, with an optional
   timing cache that later builds reuse;
4. run the parity gate (`export.parity`) on the GPU against the PyTorch model of
   the source checkpoint;
5. write `model.<precision>.engine` and its Artifact (profiles, GPU, parity) into
   the manifest of the output directory. Nothing is written when a gate fails.

TensorRT limits that bear on this graph
- TopK takes k <= 3840 ("k must obey k<=d, k<=3840", TensorRT operator reference,
  TopK; "Currently only values up to 3840 are supported", ITopKLayer::setK),
  while a 4K frame at the default refine fraction needs 20736 patches. So the
  exported graph selects without TopK: it bisects a score threshold per image
  and takes the cells above it with NonZero (matting.ops.selection.
  select_by_threshold), which has no limit on k. `num_patches` is then an
  ordinary input (a value, not a shape); where a graph still uses it as a shape
  tensor, every profile gives its min/opt/max value (`set_shape_input`).
- `patches` (B*k, 3) is sized by a value, not by input shapes; the runner
  receives every output through an IOutputAllocator, which TensorRT 10 documents
  for outputs whose size is known only at run time.
- NonZero and CumSum have data-dependent or scan semantics that TensorRT 10
  supports (INonZeroLayer, ICumulativeLayer).
- TensorRT builds fp32 layers with TF32 by default; fp32 engines clear that flag
  so that they meet the same float32 gate as the ONNX graph.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.graph import output_names
from export.parity import Gate, ParityCase, default_cases, parity_failures, run_parity
from matting.config import ModelConfig
from matting.errors import ExportError
from matting.fileio import write_bytes_atomic
from matting.models.network import MattingNet
from matting.runtime.base import default_num_patches
from matting.runtime.manifest import (
    INPUT_BACKGROUND,
    INPUT_IMAGE,
    INPUT_NUM_PATCHES,
    MANIFEST_NAME,
    Artifact,
    Manifest,
    Precision,
    Profile,
    TensorSpec,
    read_manifest,
    verified_artifact,
    write_manifest,
)
from matting.runtime.tensorrt_backend import (
    EngineRunner,
    check_engine_profiles,
    engine_profiles,
    import_tensorrt,
    patch_grid_cells,
)

# Smallest image side the default profiles take; smaller images go to another backend.
MIN_SIDE = 32
# The parity gate against PyTorch float32 on the same patches; the same bounds
# as the ONNX export (export.onnx_export.GATES). float32 is held to 1e-3 on every
# pixel (TF32 is off for that). float16 is held to its mean alpha error and the
# share of pixels off by more than 0.05, since a steep coarse edge may flip a few
# pixels under half-precision rounding; its max error is recorded, not gated.
GATES: dict[Precision, Gate] = {
    "fp32": Gate(max_alpha=1e-3, mean_alpha=1e-4, outliers=0.0, max_foreground=2e-3, score=1e-3),
    "fp16": Gate(max_alpha=1.0, mean_alpha=3e-3, outliers=5e-3, max_foreground=1.0, score=3e-2),
}
DEFAULT_WORKSPACE_GIB = 8.0

_SPEC_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_PROFILE_HELP = "NAME:BxHxW-BxHxW-BxHxW (min-opt-max), e.g. hd:1x32x32-1x1080x1920-8x1920x1920"

Shape3 = tuple[int, int, int]


def default_profiles(max_batch: int = 8) -> tuple[Profile, ...]:
    """Profiles for the sizes served, tuned (opt) at batch 1 and the nominal size:
    "512" up to 1024 a side, "hd" up to 1920 a side (1920x1080 either way up),
    "4k" up to 3840 a side (3840x2160 either way up). A request takes the first
    profile that accepts it, so small images run on the kernels tuned for 512."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    lo = (1, MIN_SIDE, MIN_SIDE)
    return (
        Profile(name="512", min=lo, opt=(1, 512, 512), max=(max_batch, 1024, 1024)),
        Profile(name="hd", min=lo, opt=(1, 1080, 1920), max=(max_batch, 1920, 1920)),
        Profile(name="4k", min=lo, opt=(1, 2160, 3840), max=(max_batch, 3840, 3840)),
    )


def _parse_shape(text: str, which: str, spec: str) -> Shape3:
    parts = text.strip().lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(
            f"profile {spec!r}: the {which} shape {text!r} is not BATCHxHEIGHTxWIDTH "
            f"with whole numbers; use {_PROFILE_HELP}"
        )
    b, h, w = (int(p) for p in parts)
    return b, h, w


def check_profile(profile: Profile) -> None:
    """ValueError unless every dimension is >= 1 and min <= opt <= max."""
    dims = {"min": profile.min, "opt": profile.opt, "max": profile.max}
    for which, shape in dims.items():
        if any(v < 1 for v in shape):
            raise ValueError(f"profile {profile.name!r}: {which} {shape} has a dimension below 1")
    axes = ("batch", "height", "width")
    for axis, lo, opt, hi in zip(axes, profile.min, profile.opt, profile.max, strict=True):
        if not lo <= opt <= hi:
            raise ValueError(
                f"profile {profile.name!r}: {axis} must satisfy min <= opt <= max, "
                f"got {lo}, {opt}, {hi}"
            )


def parse_profile(text: str) -> Profile:
    """A profile from a command-line spec NAME:BxHxW-BxHxW-BxHxW (min-opt-max)."""
    name, sep, spec = text.strip().partition(":")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"profile {text!r} has no name; use {_PROFILE_HELP}")
    if not _NAME.match(name):
        raise ValueError(f"profile name {name!r} may hold only letters, digits, '_', '.' and '-'")
    parts = spec.split("-")
    if len(parts) != 3:
        raise ValueError(
            f"profile {text!r} needs three shapes, min-opt-max, got {len(parts)}; "
            f"use {_PROFILE_HELP}"
        )
    lo, opt, hi = (
        _parse_shape(part, which, text)
        for part, which in zip(parts, ("min", "opt", "max"), strict=True)
    )
    profile = Profile(name=name, min=lo, opt=opt, max=hi)
    check_profile(profile)
    return profile


def check_profiles(profiles: Sequence[Profile]) -> None:
    """ValueError for no profiles, a repeated name or an invalid range."""
    if not profiles:
        raise ValueError("an engine needs at least one profile")
    names = [p.name for p in profiles]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"profile names must differ; repeated: {', '.join(repeated)}")
    for p in profiles:
        check_profile(p)


def patch_range(profile: Profile, config: ModelConfig) -> Shape3:
    """(min, opt, max) values of num_patches in a profile: any k up to every cell of
    the largest size, tuned for the default budget at the profile's opt size."""
    _, h, w = profile.opt
    _, hm, wm = profile.max
    most = patch_grid_cells(hm, wm, config)
    return 0, min(default_num_patches(h, w, config), most), most


def profile_shapes(profile: Profile) -> tuple[tuple[int, int, int, int], ...]:
    """(min, opt, max) NHWC shapes of the pixel inputs of a profile."""
    return tuple((b, h, w, 3) for b, h, w in (profile.min, profile.opt, profile.max))


def case_fits(case: ParityCase, profiles: Sequence[Profile]) -> str:
    """Why a parity case cannot run on the engine ("" when it can)."""
    if not any(p.accepts(case.batch, case.height, case.width) for p in profiles):
        return f"{case.name}: {case.height}x{case.width} x{case.batch} is outside the profiles"
    return ""


def engine_name(variant: str, precision: Precision) -> str:
    return f"model.{precision}.engine" if variant == "sparse" else f"model.dense.{precision}.engine"


def find_onnx(manifest: Manifest, onnx_file: str | None) -> Artifact:
    """The ONNX artifact to build from: the named file, else float32 sparse."""
    if onnx_file is None:
        found = manifest.find("onnx", "fp32", "sparse")
        if found is None:
            raise ExportError(
                "the manifest lists no float32 sparse ONNX graph; run `matting export onnx` "
                "first, or name the graph to build from"
            )
        return found
    named = next((a for a in manifest.artifacts if a.file == onnx_file), None)
    if named is None or named.format != "onnx":
        listed = ", ".join(a.file for a in manifest.artifacts if a.format == "onnx") or "none"
        raise ExportError(f"{onnx_file!r} is not an ONNX graph of the manifest (listed: {listed})")
    return named


def target_manifest(source: Manifest, source_dir: Path, out_dir: Path) -> Manifest:
    """The manifest the engine is added to: the source's itself when the engine goes
    beside the graph; elsewhere the one already there (same checkpoint only) or a
    copy of the source without artifacts, whose files are not there."""
    if out_dir.resolve() == source_dir.resolve():
        return source
    if (out_dir / MANIFEST_NAME).exists():
        there = read_manifest(out_dir)
        if there.checkpoint_sha256 != source.checkpoint_sha256:
            raise ExportError(
                f"{out_dir} holds the manifest of another checkpoint; build into an empty "
                "directory or beside its own ONNX graph"
            )
        return there
    return source.model_copy(update={"artifacts": ()})


def retyped(specs: Sequence[TensorSpec], dtypes: dict[str, str]) -> tuple[TensorSpec, ...]:
    """Specs with the engine's own dtypes (an fp16 engine may keep fp32 I/O or not)."""
    return tuple(s.model_copy(update={"dtype": dtypes.get(s.name, s.dtype)}) for s in specs)


def _source_model(manifest: Manifest, checkpoint: str | os.PathLike[str] | None) -> MattingNet:
    """The float32 PyTorch model the graph came from, checked by its weights digest,
    served as the graph was exported (with or without test-time augmentation)."""
    from matting.checkpoint import load_checkpoint, weights_digest
    from matting.inference import default_checkpoint

    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    model, _ = load_checkpoint(path)
    if weights_digest(model.state_dict()) != manifest.checkpoint_sha256:
        raise ExportError(
            f"{path} is not the checkpoint the ONNX graph was exported from (weights "
            f"digest differs from the manifest's {manifest.checkpoint_sha256[:16]}...); "
            "the parity gate needs that checkpoint: pass it with --checkpoint"
        )
    exported = manifest.model
    model.config = model.config.model_copy(
        update={"flip_average": exported.flip_average, "coarse_scales": exported.coarse_scales}
    )
    return model.float().eval()


def _timing_cache(trt: Any, config: Any, path: Path | None, log: Callable[[str], None]) -> Any:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        # Made by another TensorRT or GPU: start afresh rather than mix tactics.
        log(f"timing cache {path} is from another TensorRT or GPU; starting a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _parse(trt: Any, logger: Any, builder: Any, onnx_path: Path) -> Any:
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {errors or 'no detail'}")
    return network, parser


def _build_serialized(
    trt: Any,
    onnx_path: Path,
    profiles: Sequence[Profile],
    model_config: ModelConfig,
    *,
    fp16: bool,
    workspace_gib: float,
    timing_cache: Path | None,
    log: Callable[[str], None],
) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, logger, builder, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise ExportError(
                f"TensorRT {trt.__version__} has no FP16 builder flag (it builds fp16 only "
                "from strongly typed graphs); use TensorRT 10, or build from the fp16 ONNX "
                "graph with fp16 off"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    cache = _timing_cache(trt, config, timing_cache, log)
    inputs = {network.get_input(i).name: network.get_input(i) for i in range(network.num_inputs)}
    for p in profiles:
        prof = builder.create_optimization_profile()
        for name in (INPUT_IMAGE, INPUT_BACKGROUND):
            if name in inputs:
                prof.set_shape(name, *profile_shapes(p))
        k = inputs.get(INPUT_NUM_PATCHES)
        if k is not None and getattr(k, "is_shape_tensor", True):
            prof.set_shape_input(INPUT_NUM_PATCHES, *([v] for v in patch_range(p, model_config)))
        if config.add_optimization_profile(prof) < 0:
            raise ExportError(f"TensorRT rejects profile {p.name!r}: {p.min}/{p.opt}/{p.max}")
    log(f"{onnx_path.name}: building ({'fp16' if fp16 else 'fp32'}, {len(profiles)} profiles)")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path.name}; see its log")
    if timing_cache is not None:
        write_bytes_atomic(timing_cache, memoryview(cache.serialize()).tobytes())
    return memoryview(serialized).tobytes()


def build_engine(
    export_dir: str | os.PathLike[str],
    *,
    onnx_file: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    profiles: Sequence[Profile] | None = None,
    fp16: bool = True,
    workspace_gib: float = DEFAULT_WORKSPACE_GIB,
    timing_cache: Path | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    cases: Sequence[ParityCase] | None = None,
    device: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Build, gate and record an engine; returns its path.

    `checkpoint` is the source of the ONNX graph, which the parity gate compares
    against (default: the shipped model, accepted only if its weights digest is
    the manifest's). `cases` default to `export.parity.default_cases`; cases
    outside the profiles are skipped and logged.
    """
    trt = import_tensorrt(ExportError)
    profiles = tuple(profiles) if profiles is not None else default_profiles()
    try:
        check_profiles(profiles)
    except ValueError as e:
        raise ExportError(str(e)) from None
    if not workspace_gib > 0:
        raise ExportError(f"workspace_gib must be positive, got {workspace_gib}")
    src_dir = Path(export_dir)
    out = Path(out_dir) if out_dir is not None else src_dir
    manifest = read_manifest(src_dir)
    source = find_onnx(manifest, onnx_file)
    onnx_path = verified_artifact(src_dir, source)
    config = manifest.model
    model = _source_model(manifest, checkpoint)
    precision: Precision = "fp16" if fp16 or source.precision == "fp16" else "fp32"
    name = engine_name(source.variant, precision)
    target = target_manifest(manifest, src_dir, out)  # fails before the long build

    gpu = torch.device("cuda", device)
    with torch.cuda.device(gpu):
        serialized = _build_serialized(
            trt,
            onnx_path,
            profiles,
            config,
            fp16=fp16,
            workspace_gib=workspace_gib,
            timing_cache=timing_cache,
            log=log,
        )
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(serialized)
        if engine is None:
            raise ExportError("TensorRT built an engine it cannot load; see its log")
        check_engine_profiles(engine_profiles(engine), profiles)
        runner = EngineRunner(trt, engine, gpu)
        sparse = source.variant == "sparse"
        outputs = output_names(source.variant)

        def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            b, h, w = feed[INPUT_IMAGE].shape[:3]
            index = next(i for i, p in enumerate(profiles) if p.accepts(b, h, w))
            if sparse:
                k = min(int(feed[INPUT_NUM_PATCHES]), patch_grid_cells(h, w, config))
                feed = {**feed, INPUT_NUM_PATCHES: np.array(k, dtype=np.int64)}
            got = runner.run(feed, index)
            return [got[n] for n in outputs]

        wanted = list(cases) if cases is not None else default_cases(config)
        runnable = []
        for case in wanted:
            why = case_fits(case, profiles)
            if why:
                log(f"{name}: parity skips {why}")
            else:
                runnable.append(case)
        if not runnable:
            raise ExportError(f"{name}: no parity case fits the profiles; the gate cannot run")
        records = run_parity(
            run, model, runnable, sparse=sparse, progress=lambda c: log(f"{name}: parity {c}")
        )
        dtypes = {
            engine.get_tensor_name(i): _SPEC_DTYPES.get(
                engine.get_tensor_dtype(engine.get_tensor_name(i)).name, "unknown"
            )
            for i in range(engine.num_io_tensors)
        }
        gpu_name = torch.cuda.get_device_name(gpu)
    failures = parity_failures(records, GATES[precision])
    if failures:
        raise ExportError(f"{name} fails the parity gate on {gpu_name}: " + "; ".join(failures))
    path = out / name
    write_bytes_atomic(path, serialized)
    if out.resolve() == src_dir.resolve():  # the ONNX export may have added to it meanwhile
        target = target_manifest(read_manifest(src_dir), src_dir, out)
    artifact = Artifact(
        file=name,
        sha256=hashlib.sha256(serialized).hexdigest(),
        bytes=len(serialized),
        format="tensorrt",
        precision=precision,
        variant=source.variant,
        inputs=retyped(source.inputs, dtypes),
        outputs=retyped(source.outputs, dtypes),
        profiles=profiles,
        parity=tuple(records),
        parity_tolerance=GATES[precision].max_alpha,
        device=gpu_name,
    )
    versions = {
        **target.versions,
        "tensorrt": str(trt.__version__),
        "cuda": str(torch.version.cuda),
    }
    write_manifest(out, target.model_copy(update={"versions": versions}).with_artifact(artifact))
    worst = max((r.max_alpha_error for r in records), default=0.0)
    log(f"{name}: passed, max alpha error {worst:.2e}")
    return path
