"""Which backend the service runs, and the one-time ONNX export of the default model.

With no model named, a machine without a GPU serves the shipped checkpoint on
ONNX Runtime: it is exported (and parity-gated) once into the cache directory,
keyed by the checkpoint's sha256, and loaded from there on later starts. With a
GPU it runs on torch in FP16 until an engine is named.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from matting.errors import ManifestError
from matting.runtime import Backend, load_backend
from matting.runtime.manifest import sha256_file
from service.settings import Settings

Log = Callable[[str], None]


def _wants_gpu(settings: Settings) -> bool:
    if settings.device.startswith("cuda"):
        return True
    if settings.device != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def default_onnx_dir(cache_dir: Path, log: Log, tta: bool = True) -> Path:
    """The default model's ONNX export in the cache, made if missing (one per
    tta setting, since the augmentation is in the graphs)."""
    from matting.inference import default_checkpoint

    checkpoint = default_checkpoint()
    plain = "" if tta else "-no-tta"
    target = cache_dir / f"default-onnx-{sha256_file(checkpoint)[:16]}{plain}"
    if (target / "manifest.json").is_file():
        return target
    from export.onnx_export import export_onnx

    cache_dir.mkdir(parents=True, exist_ok=True)
    log(f"exporting the default model to ONNX in {target} (first start only)")
    # Export beside the target and rename: a crash or a second process never
    # leaves (or loads) a half-written directory.
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir))
    try:
        export_onnx(checkpoint, tmp, precisions=("fp32",), log=log, tta=tta)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "manifest.json").is_file():  # not a concurrent winner
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_service_backend(settings: Settings, log: Log = lambda _m: None) -> Backend:
    """The backend the settings name (see the module docstring for the defaults)."""
    on_cpu_default = settings.model is None and (
        settings.backend == "onnxruntime"
        or (settings.backend == "auto" and not _wants_gpu(settings))
    )
    if not on_cpu_default:
        return load_backend(
            settings.model,
            settings.backend,
            device=settings.device,
            precision=settings.precision,
            threads=settings.threads,
            tta=settings.tta,
        )
    export_dir = default_onnx_dir(settings.cache_dir, log, settings.tta)
    try:
        return load_backend(export_dir, "onnxruntime", device="cpu", threads=settings.threads)
    except ManifestError as e:  # a damaged cache: export again, once
        log(f"the cached export is unusable ({e}); exporting again")
        shutil.rmtree(export_dir, ignore_errors=True)
        export_dir = default_onnx_dir(settings.cache_dir, log, settings.tta)
        return load_backend(export_dir, "onnxruntime", device="cpu", threads=settings.threads)
