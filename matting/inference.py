"""Running a loaded model on decoded images: device, precision, pre/post-processing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from matting.config import RefineMode
from matting.errors import CheckpointError, DeviceError
from matting.models.network import MattingNet

Precision = Literal["auto", "fp32", "fp16", "bf16"]
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Where a trained default model is looked for when no checkpoint is named.
DEFAULT_CHECKPOINT = Path(__file__).parent / "assets" / "default.safetensors"


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N', checked against this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but no CUDA GPU is available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """'auto' is fp16 on CUDA and fp32 on the CPU; fp16 on the CPU is refused
    because its CPU kernels are slow and some are missing."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in _DTYPES:
        raise DeviceError(f"unknown precision {name!r}; use auto, fp32, fp16 or bf16")
    if name == "fp16" and device.type != "cuda":
        raise DeviceError("fp16 needs a CUDA device; on the CPU use fp32 or bf16")
    return _DTYPES[name]


def default_checkpoint() -> Path:
    """The shipped default model, or MATTING_CHECKPOINT when set."""
    env = os.environ.get("MATTING_CHECKPOINT")
    path = Path(env) if env else DEFAULT_CHECKPOINT
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint given and no default model at {path}; pass --checkpoint FILE "
            "(`matting checkpoint init` makes an untrained one)"
        )
    return path


@dataclass(frozen=True)
class Prediction:
    alpha: np.ndarray  # (H, W) float32 in [0, 1]
    foreground: np.ndarray  # (H, W, 3) float32 in [0, 1]


class Predictor:
    """A model on a device at a precision, fed with uint8 RGB arrays."""

    def __init__(self, model: MattingNet, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device = device
        self.dtype = dtype

    @property
    def needs_background(self) -> bool:
        return self.model.config.background_input

    def _tensor(self, rgb: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device)
        return t.permute(2, 0, 1).unsqueeze(0).to(self.dtype).div_(255.0)

    @torch.inference_mode()
    def predict(
        self,
        rgb: np.ndarray,
        background: np.ndarray | None = None,
        refine_mode: RefineMode | None = None,
        refine_fraction: float | None = None,
    ) -> Prediction:
        """rgb, background: (H, W, 3) uint8 -> alpha (H, W), foreground (H, W, 3)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        bg = None if background is None else self._tensor(background)
        out = self.model(
            self._tensor(rgb), bg, refine_mode=refine_mode, refine_fraction=refine_fraction
        )
        alpha = out.alpha[0, 0].float().cpu().numpy()
        fg = out.foreground[0].float().permute(1, 2, 0).cpu().numpy()
        return Prediction(np.ascontiguousarray(alpha), np.ascontiguousarray(fg))


def load_predictor(
    checkpoint: str | os.PathLike[str] | None,
    device: str = "auto",
    precision: str = "auto",
    tta: bool = True,
) -> Predictor:
    """Load a checkpoint (or the default model) onto a device at a precision;
    tta=False serves it without its test-time augmentation (mirror and scale
    averaging of the coarse stage), if it has any."""
    from matting.checkpoint import load_checkpoint

    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    model, _ = load_checkpoint(path)
    if not tta:
        model.config = model.config.without_test_time_augmentation()
    return Predictor(model, dev, dtype)
