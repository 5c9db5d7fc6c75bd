"""The ONNX Runtime backend: an exported graph, checked against its manifest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from matting.errors import DeviceError, ManifestError
from matting.runtime.base import Backend, BackendInfo, BatchResult
from matting.runtime.manifest import (
    INPUT_BACKGROUND,
    INPUT_IMAGE,
    INPUT_NUM_PATCHES,
    OUTPUT_ALPHA,
    OUTPUT_FOREGROUND,
    OUTPUT_PATCHES,
    Artifact,
    Manifest,
    verified_artifact,
)

_NUMPY_TYPES = {"tensor(uint8)": "uint8", "tensor(int64)": "int64"}


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise DeviceError(
            "device cuda was requested but this onnxruntime has no CUDA provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or use --device cpu"
        )
    return ["CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    def __init__(
        self,
        export_dir: str | os.PathLike[str],
        manifest: Manifest,
        artifact: Artifact,
        device: str = "auto",
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        if artifact.format != "onnx":
            raise ManifestError(f"{artifact.file} is a {artifact.format} artifact, not ONNX")
        path = verified_artifact(export_dir, artifact)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=_providers(device))
        except Exception as e:  # ORT's Fail, InvalidProtobuf, ... share no narrower base
            raise ManifestError(f"{path}: ONNX Runtime cannot load it: {e}") from None
        self._check_io(path, artifact)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.sparse = artifact.variant == "sparse"
        used = self.session.get_providers()[0]
        self.info = BackendInfo(
            name="onnxruntime",
            device="cuda" if used == "CUDAExecutionProvider" else "cpu",
            precision=artifact.precision,
            model=manifest.model,
            variant=artifact.variant,
            source=str(path),
            extra={"provider": used},
        )

    def _check_io(self, path: Path, artifact: Artifact) -> None:
        """The graph must have the inputs and outputs the manifest promises."""
        got_in = [(i.name, i.type) for i in self.session.get_inputs()]
        got_out = [o.name for o in self.session.get_outputs()]
        want_in = [s.name for s in artifact.inputs]
        want_out = [s.name for s in artifact.outputs]
        if [n for n, _ in got_in] != want_in or got_out != want_out:
            raise ManifestError(
                f"{path}: graph I/O {[n for n, _ in got_in]} -> {got_out} does not match the "
                f"manifest's {want_in} -> {want_out}"
            )
        for (name, kind), spec in zip(got_in, artifact.inputs, strict=True):
            if _NUMPY_TYPES.get(kind) != spec.dtype:
                raise ManifestError(f"{path}: input {name} is {kind}, manifest says {spec.dtype}")

    def _infer(
        self, images: np.ndarray, backgrounds: np.ndarray | None, num_patches: int
    ) -> BatchResult:
        feed: dict[str, np.ndarray] = {INPUT_IMAGE: np.ascontiguousarray(images)}
        if backgrounds is not None:
            feed[INPUT_BACKGROUND] = np.ascontiguousarray(backgrounds)
        if self.sparse:
            feed[INPUT_NUM_PATCHES] = np.array(num_patches, dtype=np.int64)
        else:
            num_patches = 0
        names = [OUTPUT_ALPHA, OUTPUT_FOREGROUND] + ([OUTPUT_PATCHES] if self.sparse else [])
        outs = self.session.run(names, feed)
        alpha = outs[0][:, 0].astype(np.float32, copy=False)
        fg = np.ascontiguousarray(outs[1].transpose(0, 2, 3, 1), dtype=np.float32)
        patches = np.zeros((0, 3), np.int64)
        if self.sparse:
            patches = outs[2].astype(np.int64, copy=False)
        return BatchResult(alpha, fg, num_patches, patches)
