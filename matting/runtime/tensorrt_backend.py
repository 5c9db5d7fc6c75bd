"""The TensorRT backend: a serialized engine from an export directory, run on a GPU.

Loading refuses, each with a ManifestError that says why, an artifact that
- is not a TensorRT engine (an ONNX graph, say);
- does not match its sha256 (checked before TensorRT is even imported);
- does not deserialize (built by another TensorRT version or for another GPU);
- was built for other shapes than its manifest lists (optimisation profiles).
A missing tensorrt package or a machine without CUDA is a DeviceError.

The engine is the whole graph of `export.graph`: uint8 NHWC pixels in, alpha and
foreground out. `num_patches` is a plain value (the graph selects patches by a
bisected threshold and NonZero, not TopK, whose k TensorRT caps at 3840); the
runner still handles it as a shape tensor if a graph makes it one. `patches`
comes back through an IOutputAllocator, the documented way to receive outputs
whose shape is known only at run time.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matting.config import ModelConfig
from matting.errors import DeviceError, InputError, ManifestError, MattingError
from matting.ops.padding import coarse_scale, padded_size
from matting.runtime.base import PATCH, Backend, BackendInfo, BatchResult
from matting.runtime.manifest import (
    INPUT_BACKGROUND,
    INPUT_IMAGE,
    INPUT_NUM_PATCHES,
    OUTPUT_ALPHA,
    OUTPUT_FOREGROUND,
    OUTPUT_PATCHES,
    Artifact,
    Manifest,
    Profile,
    verified_artifact,
)

Shape3 = tuple[int, int, int]
# One optimisation profile of an engine as TensorRT reports it for the image
# input: (min, opt, max) NHWC dimensions.
EngineProfile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

NEEDS_TENSORRT = (
    "TensorRT engines need the tensorrt package and an NVIDIA GPU; "
    "install TensorRT 10 (`pip install tensorrt`) on a machine with a CUDA build of "
    "torch and a GPU, or serve the ONNX graph with the onnxruntime backend"
)

_TORCH_DTYPES: dict[str, torch.dtype] = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT8": torch.int8,
    "UINT8": torch.uint8,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "BOOL": torch.bool,
}


def import_tensorrt(error: type[MattingError] = DeviceError) -> Any:
    """The tensorrt module, or `error` saying what is missing (package or GPU)."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise error(f"{NEEDS_TENSORRT} (import tensorrt failed: {e})") from None
    if not torch.cuda.is_available():
        raise error(f"{NEEDS_TENSORRT} (torch sees no CUDA device)")
    return trt


def torch_dtype(trt_dtype_name: str) -> torch.dtype:
    """The torch dtype of a TensorRT DataType, by its enum name ("FLOAT", "HALF"...)."""
    try:
        return _TORCH_DTYPES[trt_dtype_name]
    except KeyError:
        raise ManifestError(
            f"the engine uses a tensor type torch cannot hold: {trt_dtype_name}"
        ) from None


def patch_grid_cells(height: int, width: int, config: ModelConfig) -> int:
    """Cells of the 4x4 patch grid of the padded image: the most patches top-k can
    pick per image (the graph clamps num_patches to it)."""
    align = max(PATCH, coarse_scale(height, width, config.coarse_sides()[0]))
    return (padded_size(height, align) // PATCH) * (padded_size(width, align) // PATCH)


def _shape_text(shape: Shape3) -> str:
    return f"batch {shape[0]} of {shape[1]}x{shape[2]}"


def check_requested_shapes(profiles: Sequence[Profile], wanted: Sequence[Shape3]) -> None:
    """Refuse to serve on an engine that cannot take every (batch, height, width) in
    `wanted`; the ManifestError names each uncovered shape. No profiles means the
    backend takes any shape (BackendInfo's convention)."""
    for shape in wanted:
        if len(shape) != 3 or any(int(v) < 1 for v in shape):
            raise ValueError(f"a requested shape is (batch, height, width) >= 1, got {shape}")
    if not profiles:
        return
    missing = [s for s in wanted if not any(p.accepts(*s) for p in profiles)]
    if missing:
        built = "; ".join(f"{p.name}: {p.min}..{p.max}" for p in profiles)
        raise ManifestError(
            "the engine was not built for "
            + ", ".join(_shape_text(s) for s in missing)
            + f" (its profiles, batch x height x width: {built}); build an engine whose "
            "profiles cover these sizes (`--profile NAME:BxHxW-BxHxW-BxHxW`)"
        )


def check_engine_profiles(
    engine_profiles: Sequence[EngineProfile], profiles: Sequence[Profile]
) -> None:
    """The engine's optimisation profiles (NHWC dims of the image input, in order)
    must be the manifest's; an engine swapped under a manifest is refused."""

    def triple(dims: Sequence[int]) -> Shape3:
        b, h, w = (int(v) for v in tuple(dims)[:3])
        return (b, h, w)

    got = [tuple(triple(d) for d in p) for p in engine_profiles]
    want = [(p.min, p.opt, p.max) for p in profiles]
    channels_ok = all(len(d) == 4 and int(d[3]) == 3 for p in engine_profiles for d in p)
    if got != want or not channels_ok:
        listed = "; ".join(f"{p.name}: {p.min}/{p.opt}/{p.max}" for p in profiles) or "none"
        found = "; ".join("/".join(str(tuple(d)) for d in p) for p in engine_profiles) or "none"
        raise ManifestError(
            "engine built for other shapes than its manifest lists (manifest min/opt/max "
            f"(batch, height, width): {listed}; engine (N, H, W, C): {found}); "
            "rebuild the engine or restore the matching manifest"
        )


def torch_output_allocator(trt: Any, device: torch.device) -> Any:
    """An IOutputAllocator backed by torch: TensorRT asks for the bytes of each
    output once it knows its size, and tells its shape afterwards."""

    class TorchOutputAllocator(trt.IOutputAllocator):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IOutputAllocator.__init__(self)
            self.buffers: dict[str, torch.Tensor] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output_async(
            self, tensor_name: str, memory: int, size: int, alignment: int, stream: int
        ) -> int:
            size, alignment = max(1, int(size)), max(16, int(alignment))
            buf = self.buffers.get(tensor_name)
            if buf is None or buf.numel() < size or buf.data_ptr() % alignment:
                # Over-allocate and slice, so that the start meets any alignment;
                # the slice keeps the whole block alive.
                raw = torch.empty(size + alignment, dtype=torch.uint8, device=device)
                offset = (-raw.data_ptr()) % alignment
                buf = raw[offset : offset + size]
                self.buffers[tensor_name] = buf
            return int(buf.data_ptr())

        def reallocate_output(
            self, tensor_name: str, memory: int, size: int, alignment: int
        ) -> int:
            return self.reallocate_output_async(tensor_name, memory, size, alignment, 0)

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            self.shapes[tensor_name] = tuple(int(d) for d in shape)

    return TorchOutputAllocator()


class EngineRunner:
    """One execution context over a deserialized engine, with torch owning every
    buffer (torch already holds the CUDA context and a caching allocator, so no
    second CUDA binding is needed). Calls are serialised by a lock: a context
    runs one inference at a time."""

    def __init__(self, trt: Any, engine: Any, device: torch.device) -> None:
        self.trt = trt
        self.engine = engine
        self.device = device
        self.context = engine.create_execution_context()
        if self.context is None:
            raise DeviceError("TensorRT could not create an execution context (out of GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [n for n in names if is_input[n]]
        self.outputs = [n for n in names if not is_input[n]]
        self.dtypes = {n: torch_dtype(engine.get_tensor_dtype(n).name) for n in names}
        self.on_host = {n: engine.get_tensor_location(n) == trt.TensorLocation.HOST for n in names}
        self.allocator = torch_output_allocator(trt, device)
        for name in self.outputs:
            self.context.set_output_allocator(name, self.allocator)
        self.profile = 0
        self.lock = threading.Lock()

    def run(self, feed: Mapping[str, np.ndarray], profile: int = 0) -> dict[str, np.ndarray]:
        """Inputs by name (numpy) -> outputs by name (numpy), on optimisation profile
        `profile`."""
        missing = [n for n in self.inputs if n not in feed]
        if missing:
            raise InputError(f"the engine needs inputs {missing}")
        with self.lock, torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            if profile != self.profile:
                self.context.set_optimization_profile_async(profile, stream.cuda_stream)
                self.profile = profile
            self.allocator.shapes.clear()
            held = []  # inputs must outlive the enqueue
            for name in self.inputs:
                # np.require, unlike ascontiguousarray, keeps the 0-dim num_patches 0-dim
                array = np.require(feed[name], requirements="C")
                value = torch.from_numpy(array).to(self.dtypes[name])
                if not self.on_host[name]:
                    value = value.to(self.device, non_blocking=True)
                held.append(value)
                if not self.context.set_input_shape(name, tuple(value.shape)):
                    raise InputError(
                        f"{name} {tuple(value.shape)} is outside the engine's profile {profile}"
                    )
                self.context.set_tensor_address(name, value.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise DeviceError("TensorRT failed to run the engine (see its log above)")
            stream.synchronize()
            return {name: self._fetch(name) for name in self.outputs}

    def _fetch(self, name: str) -> np.ndarray:
        shape = self.allocator.shapes.get(name)
        if shape is None:  # not a run-time shape: the context knows it
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
        return read_buffer(self.allocator.buffers.get(name), shape, self.dtypes[name])


def read_buffer(
    buffer: torch.Tensor | None, shape: Sequence[int], dtype: torch.dtype
) -> np.ndarray:
    """The first bytes of a raw uint8 output buffer as a host array of `shape`."""
    count = math.prod(shape)
    if count == 0:
        return torch.empty(tuple(shape), dtype=dtype).numpy()
    nbytes = count * torch.empty((), dtype=dtype).element_size()
    if buffer is None or buffer.numel() < nbytes:
        raise DeviceError(f"TensorRT wrote less output than a {tuple(shape)} {dtype} tensor")
    return buffer[:nbytes].view(dtype).view(tuple(shape)).cpu().numpy()


def engine_profiles(engine: Any, input_name: str = INPUT_IMAGE) -> list[EngineProfile]:
    """(min, opt, max) dims of one input in each optimisation profile of an engine."""
    found = []
    for i in range(engine.num_optimization_profiles):
        lo, opt, hi = engine.get_tensor_profile_shape(input_name, i)
        found.append((tuple(lo), tuple(opt), tuple(hi)))
    return found


def profile_values(engine: Any, name: str, index: int) -> tuple[int, int, int] | None:
    """(min, opt, max) value of a scalar shape-tensor input in a profile, or None."""
    if not engine.is_shape_inference_io(name):
        return None
    try:  # the binding's positional order is (profile_index, name)
        values = engine.get_tensor_profile_values(index, name)
    except TypeError:
        values = engine.get_tensor_profile_values(name, index)
    lo, opt, hi = (int(v[0]) for v in values)
    return lo, opt, hi


class TensorRTBackend(Backend):
    """A TensorRT engine of an export directory, on CUDA device `device`.

    It takes only the shapes of its profiles (BackendInfo.profiles); a service
    calls `check_shapes` at startup with the sizes it means to serve."""

    def __init__(
        self,
        export_dir: str | os.PathLike[str],
        manifest: Manifest,
        artifact: Artifact,
        *,
        device: int = 0,
    ) -> None:
        if artifact.format != "tensorrt":
            raise ManifestError(
                f"{artifact.file} is a {artifact.format} artifact, not a TensorRT engine; "
                "build one with `matting export tensorrt` or serve it with onnxruntime"
            )
        path = verified_artifact(export_dir, artifact)  # before TensorRT sees the file
        trt = import_tensorrt(DeviceError)
        if device >= torch.cuda.device_count():
            raise DeviceError(
                f"no CUDA device {device}; this machine has {torch.cuda.device_count()}"
            )
        self.device = torch.device("cuda", device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self.runtime = trt.Runtime(self.logger)
            engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ManifestError(
                f"{path}: engine could not be deserialized: built with another TensorRT "
                f"version or for another GPU (this is TensorRT {trt.__version__} on "
                f"{torch.cuda.get_device_name(self.device)}); rebuild it here"
            )
        self._check_io(engine, artifact, path)
        check_engine_profiles(engine_profiles(engine), artifact.profiles)
        self.engine = engine
        self.runner = EngineRunner(trt, engine, self.device)
        self.sparse = INPUT_NUM_PATCHES in self.runner.inputs
        self.patch_limits = [
            profile_values(engine, INPUT_NUM_PATCHES, i) if self.sparse else None
            for i in range(engine.num_optimization_profiles)
        ]
        self.info = BackendInfo(
            name="tensorrt",
            device=f"cuda:{device} {torch.cuda.get_device_name(self.device)}",
            precision=artifact.precision,
            model=manifest.model,
            variant=artifact.variant,
            profiles=artifact.profiles,
            source=str(path),
            extra={"tensorrt": str(trt.__version__), "built_on": artifact.device or ""},
        )

    @staticmethod
    def _check_io(engine: Any, artifact: Artifact, path: Path) -> None:
        names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        listed = {s.name for s in (*artifact.inputs, *artifact.outputs)}
        if names != listed:
            raise ManifestError(
                f"{path}: the engine's tensors {sorted(names)} are not the manifest's "
                f"{sorted(listed)}; the engine and its manifest do not belong together"
            )

    def check_shapes(self, wanted: Sequence[Shape3]) -> None:
        """Startup check: ManifestError unless every (batch, height, width) fits."""
        check_requested_shapes(self.info.profiles, wanted)

    def _profile_index(self, batch: int, height: int, width: int) -> int:
        for i, p in enumerate(self.info.profiles):
            if p.accepts(batch, height, width):
                return i
        raise InputError(f"{_shape_text((batch, height, width))} fits no profile of this engine")

    def _infer(
        self, images: np.ndarray, backgrounds: np.ndarray | None, num_patches: int
    ) -> BatchResult:
        b, h, w = images.shape[:3]
        index = self._profile_index(b, h, w)
        feed = {INPUT_IMAGE: images}
        if backgrounds is not None:
            feed[INPUT_BACKGROUND] = backgrounds
        k = 0
        if self.sparse:
            # The graph clamps k to the grid; clamping here too keeps a request for
            # "every patch" of a small image inside the profile's range of k.
            k = min(num_patches, patch_grid_cells(h, w, self.info.model))
            limits = self.patch_limits[index]  # None unless k is a shape tensor
            if limits is not None and not limits[0] <= k <= limits[2]:
                raise InputError(
                    f"num_patches {k} is outside {limits[0]}..{limits[2]}, the range this "
                    "engine was built for"
                )
            feed[INPUT_NUM_PATCHES] = np.array(k, dtype=np.int64)
        out = self.runner.run(feed, index)
        alpha = out[OUTPUT_ALPHA][:, 0].astype(np.float32, copy=False)
        fg = out[OUTPUT_FOREGROUND].transpose(0, 2, 3, 1).astype(np.float32)
        patches = out.get(OUTPUT_PATCHES)
        return BatchResult(
            alpha=alpha,
            foreground=np.ascontiguousarray(fg),
            num_patches=k,
            patches=np.zeros((0, 3), np.int64) if patches is None else patches.astype(np.int64),
        )

    def close(self) -> None:
        for attr in ("runner", "engine", "runtime"):
            self.__dict__.pop(attr, None)
