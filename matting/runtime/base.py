"""One small interface over the three runtimes (torch, onnxruntime, tensorrt).

A backend is loaded once, warmed up, then fed batches of same-size uint8 RGB
images; it answers alpha and foreground as float32 arrays. It reports what it
runs on and which shapes it accepts, so the service can refuse or route a
request before it reaches the runtime.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from matting.config import ModelConfig
from matting.errors import InputError
from matting.ops.padding import coarse_scale, padded_size
from matting.runtime.manifest import Profile

PATCH = 4  # full-resolution side of a refined patch (matting.models.refiner.PATCH)


@dataclass(frozen=True)
class BackendInfo:
    name: str  # torch | onnxruntime | tensorrt
    device: str  # "cpu", or e.g. "cuda:0 NVIDIA H100 80GB HBM3"
    precision: str  # fp32 | fp16
    model: ModelConfig
    variant: str = "sparse"  # sparse | dense refinement
    # Shapes the backend accepts; empty means any batch and size.
    profiles: tuple[Profile, ...] = ()
    source: str = ""  # the checkpoint or artifact it was loaded from
    extra: dict[str, str] = field(default_factory=dict)

    def accepts(self, batch: int, height: int, width: int) -> bool:
        return not self.profiles or any(p.accepts(batch, height, width) for p in self.profiles)


@dataclass(frozen=True)
class BatchResult:
    alpha: np.ndarray  # (B, H, W) float32 in [0, 1]
    foreground: np.ndarray  # (B, H, W, 3) float32 in [0, 1]
    num_patches: int  # patches refined per image (0 for dense refinement)
    # (B*k, 3) int64 [batch, row, col] on the 4x4 patch grid of what was refined;
    # empty for dense refinement. Ties at the k-th score may break differently
    # between runtimes, so two backends can pick different but equally ranked cells.
    patches: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))


def patch_grid(height: int, width: int, config: ModelConfig) -> tuple[int, int]:
    """Rows and columns of the 4x4 patch grid of the padded image the model refines."""
    align = max(PATCH, coarse_scale(height, width, config.coarse_sides()[0]))
    return padded_size(height, align) // PATCH, padded_size(width, align) // PATCH


def default_num_patches(height: int, width: int, config: ModelConfig) -> int:
    """The top-k budget the PyTorch model picks by itself for this size: the
    config's refine fraction of the 4x4 patch grid of the padded image."""
    gh, gw = patch_grid(height, width, config)
    cells = gh * gw
    return max(1, min(cells, math.ceil(config.refine_fraction * cells)))


def check_batch(images: np.ndarray, name: str = "images") -> tuple[int, int, int]:
    """(B, H, W, 3) uint8 -> (B, H, W), or an InputError that says what is wrong."""
    if not isinstance(images, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise InputError(f"{name} must be (B, H, W, 3) uint8, got {images.shape} {images.dtype}")
    b, h, w, _ = images.shape
    if b < 1 or h < 1 or w < 1:
        raise InputError(f"{name} is empty: {images.shape}")
    return b, h, w


class Backend(ABC):
    """Load, warm up, infer a batch; `info` says where and how it runs."""

    info: BackendInfo
    # Whether infer takes `active`; exported graphs select their patches themselves.
    supports_active = False

    def infer(
        self,
        images: np.ndarray,
        backgrounds: np.ndarray | None = None,
        num_patches: int | None = None,
        active: np.ndarray | None = None,
    ) -> BatchResult:
        """images, backgrounds: (B, H, W, 3) uint8. num_patches is the top-k budget
        per image (default: the model's refine fraction of the patch grid).
        active, (B, Hq, Wq) bool on patch_grid(H, W), limits refinement to its
        True cells (video temporal sparsity; only where supports_active)."""
        b, h, w = check_batch(images)
        if self.info.model.background_input:
            if backgrounds is None:
                raise InputError("this model needs a background plate for every image")
            if check_batch(backgrounds, "backgrounds") != (b, h, w):
                raise InputError(
                    f"backgrounds {backgrounds.shape} must match images {images.shape}"
                )
        elif backgrounds is not None:
            raise InputError("this model was built without a background input")
        if not self.info.accepts(b, h, w):
            shapes = ", ".join(f"{p.name}: {p.min}..{p.max}" for p in self.info.profiles)
            raise InputError(
                f"batch {b} of {h}x{w} is outside the shapes this engine was built for "
                f"(batch, height, width: {shapes})"
            )
        if num_patches is None:
            num_patches = default_num_patches(h, w, self.info.model)
        if num_patches < 0:
            raise InputError(f"num_patches must be >= 0, got {num_patches}")
        if active is None:
            return self._infer(images, backgrounds, int(num_patches))
        if not self.supports_active:
            raise InputError(f"the {self.info.name} backend cannot limit refinement to cells")
        grid = (b, *patch_grid(h, w, self.info.model))
        if not isinstance(active, np.ndarray) or active.dtype != np.bool_ or active.shape != grid:
            got = getattr(active, "shape", type(active).__name__)
            raise InputError(f"active must be a {grid} bool array, got {got}")
        return self._infer_active(images, backgrounds, int(num_patches), active)

    @abstractmethod
    def _infer(
        self, images: np.ndarray, backgrounds: np.ndarray | None, num_patches: int
    ) -> BatchResult: ...

    def _infer_active(
        self,
        images: np.ndarray,
        backgrounds: np.ndarray | None,
        num_patches: int,
        active: np.ndarray,
    ) -> BatchResult:
        raise NotImplementedError  # only backends with supports_active

    def warmup(self, sizes: Sequence[tuple[int, int]] = ((512, 512),), batch: int = 1) -> None:
        """Run each (height, width) once so the first request pays no set-up cost
        (allocator growth, kernel selection, lazy initialisation)."""
        rng = np.random.default_rng(0)
        for h, w in sizes:
            if self.info.accepts(batch, h, w):
                images = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)
                bgs = images[:, ::-1].copy() if self.info.model.background_input else None
                self.infer(images, bgs)

    def close(self) -> None:  # noqa: B027 - optional hook; most backends free on GC
        """Release the runtime's resources."""
