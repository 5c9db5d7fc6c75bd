"""The PyTorch backend: a checkpoint run eagerly, on the CPU or a CUDA device."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from matting.checkpoint import load_checkpoint
from matting.inference import resolve_device, resolve_precision
from matting.runtime.base import Backend, BackendInfo, BatchResult


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} {torch.cuda.get_device_name(device)}"
    return str(device)


class TorchBackend(Backend):
    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        device: str = "auto",
        precision: str = "auto",
        variant: str = "sparse",
        tta: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        model, _ = load_checkpoint(checkpoint)
        if not tta:
            model.config = model.config.without_test_time_augmentation()
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.variant = variant
        self.info = BackendInfo(
            name="torch",
            device=_device_name(self.device),
            precision="fp16" if self.dtype == torch.float16 else "fp32",
            model=model.config,
            variant=variant,
            source=str(Path(checkpoint)),
        )

    def _pixels(self, batch: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device, non_blocking=True)
        return t.permute(0, 3, 1, 2).to(self.dtype) / 255.0

    @property
    def supports_active(self) -> bool:  # type: ignore[override]
        return self.variant == "sparse"

    def _infer(
        self, images: np.ndarray, backgrounds: np.ndarray | None, num_patches: int
    ) -> BatchResult:
        return self._run(images, backgrounds, num_patches, None)

    def _infer_active(
        self,
        images: np.ndarray,
        backgrounds: np.ndarray | None,
        num_patches: int,
        active: np.ndarray,
    ) -> BatchResult:
        return self._run(images, backgrounds, num_patches, active)

    @torch.inference_mode()
    def _run(
        self,
        images: np.ndarray,
        backgrounds: np.ndarray | None,
        num_patches: int,
        active: np.ndarray | None,
    ) -> BatchResult:
        x = self._pixels(images)
        bg = None if backgrounds is None else self._pixels(backgrounds)
        if self.variant == "dense":
            out = self.model(x, bg, refine_mode="full")
            num_patches = 0
        else:
            cells = None if active is None else torch.from_numpy(active).to(self.device)
            out = self.model(x, bg, refine_mode="topk", num_patches=num_patches, active=cells)
            num_patches = int(out.patches.shape[0]) // max(1, x.shape[0])
        alpha = out.alpha[:, 0].float().cpu().numpy()
        fg = out.foreground.float().permute(0, 2, 3, 1).cpu().numpy()
        patches = (
            out.patches.cpu().numpy() if self.variant == "sparse" else np.zeros((0, 3), np.int64)
        )
        return BatchResult(alpha, np.ascontiguousarray(fg), num_patches, patches)
