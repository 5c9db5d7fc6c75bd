"""Runtime backends behind one interface: torch, onnxruntime and tensorrt.

`load_backend` picks one from what it is given: a checkpoint runs on torch; an
export directory (or its manifest.json) runs its TensorRT engine when TensorRT
and a GPU are present, else its ONNX graph on ONNX Runtime. Every artifact is
checked against the manifest (sha256, I/O, shapes) before it is loaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from matting.errors import ManifestError
from matting.runtime.base import Backend, BackendInfo, BatchResult, default_num_patches
from matting.runtime.manifest import Artifact, Manifest, Precision, Variant, read_manifest

BackendName = Literal["auto", "torch", "onnxruntime", "tensorrt"]

__all__ = [
    "Backend",
    "BackendInfo",
    "BackendName",
    "BatchResult",
    "default_num_patches",
    "load_backend",
]


def _tensorrt_usable() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _pick(
    manifest: Manifest, fmt: Literal["onnx", "tensorrt"], precision: str, variant: Variant
) -> Artifact:
    wanted: Precision | None = None if precision == "auto" else precision  # type: ignore[assignment]
    found = None
    if wanted is None:  # prefer fp16 engines on a GPU, fp32 graphs on a CPU
        order: tuple[Precision, ...] = ("fp16", "fp32") if fmt == "tensorrt" else ("fp32", "fp16")
        found = next((a for p in order if (a := manifest.find(fmt, p, variant))), None)
    else:
        found = manifest.find(fmt, wanted, variant)
    if found is None:
        have = ", ".join(
            f"{a.file} ({a.format} {a.precision} {a.variant})" for a in manifest.artifacts
        )
        raise ManifestError(
            f"the manifest lists no {fmt} {precision} {variant} artifact (it has: {have or 'none'})"
        )
    return found


def load_backend(
    source: str | os.PathLike[str] | None = None,
    backend: BackendName = "auto",
    *,
    device: str = "auto",
    precision: str = "auto",
    variant: Variant = "sparse",
    threads: int | None = None,
    tta: bool = True,
) -> Backend:
    """Load a backend from a checkpoint (.safetensors) or an export directory.

    None means the shipped default model on torch. tta=False drops a checkpoint's
    test-time augmentation; an export has it in its graphs, so there it must have
    been exported without (`matting export onnx --no-tta`).
    """
    if source is None or Path(source).suffix == ".safetensors":
        if backend not in ("auto", "torch"):
            raise ManifestError(
                f"a checkpoint runs on torch; for {backend}, export it first "
                "(`matting export onnx --checkpoint C --out DIR`) and load DIR"
            )
        from matting.inference import default_checkpoint
        from matting.runtime.torch_backend import TorchBackend

        path = Path(source) if source is not None else default_checkpoint()
        return TorchBackend(path, device=device, precision=precision, variant=variant, tta=tta)
    manifest = read_manifest(source)
    if not tta and manifest.model.test_time_augmentation:
        raise ManifestError(
            f"{source} was exported with test-time augmentation in its graphs; export it "
            "again with `matting export onnx --no-tta`, or serve it with tta on"
        )
    root = Path(source) if Path(source).is_dir() else Path(source).parent
    if backend == "torch":
        raise ManifestError("an export directory runs on onnxruntime or tensorrt, not torch")
    use_trt = backend == "tensorrt" or (
        backend == "auto"
        and device != "cpu"
        and manifest.find("tensorrt", None, variant) is not None
        and _tensorrt_usable()
    )
    if use_trt:
        from matting.runtime.tensorrt_backend import TensorRTBackend

        artifact = _pick(manifest, "tensorrt", precision, variant)
        return TensorRTBackend(root, manifest, artifact)
    from matting.runtime.onnxruntime_backend import OnnxRuntimeBackend

    artifact = _pick(manifest, "onnx", precision, variant)
    return OnnxRuntimeBackend(root, manifest, artifact, device=device, threads=threads)
