"""The training loop for both trainers (supervised teacher, MLB student).

Resumes from OUTPUT/state.pt when present, logs every step's losses to
OUTPUT/log.csv, shows a progress bar with loss and throughput, and writes
OUTPUT/model.safetensors (a normal matting checkpoint) at every save.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from matting.checkpoint import load_checkpoint, save_checkpoint
from matting.config import ModelConfig
from matting.errors import CheckpointError, InputError
from matting.inference import resolve_device
from matting.models.network import MattingNet, build_model
from training.config import TrainConfig
from training.data.mixture import Mixture, build_mixture
from training.inputs import InputMaker, StepInputs, step_inputs
from training.mlb import ema_update
from training.state import load_state, lr_factor, save_state
from training.steps import forward, matting_losses, teacher_labels

LOG_FILE = "log.csv"
MODEL_FILE = "model.safetensors"
LOG_FIELDS = (
    "step",
    "lr",
    "loss",
    "l1",
    "laplacian",
    "gradient",
    "foreground",
    "composition",
    "error",
    "semantic",
    "samples_per_s",
)


class Run:
    """Everything one training run holds; `train()` drives it."""

    def __init__(self, cfg: TrainConfig, progress: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = self._initial_model().to(self.device)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, cfg.backbone_lr_scale),
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
        )
        self.teacher: MattingNet | None = None
        self.matte_mixture: Mixture | None = None
        if cfg.trainer == "mlb":
            self._setup_mlb()
        self.mixture = build_mixture(cfg, self._student_sources(), self._student_batch())
        self.make_inputs = InputMaker(
            self.mixture, self.matte_mixture, cfg.seed, cfg.seg_band, mlb=self.teacher is not None
        )
        self.step = 0
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    # -- setup ---------------------------------------------------------------

    def _initial_model(self) -> MattingNet:
        config = self.cfg.model_config_()
        if self.cfg.init is None:
            model = build_model(config)
            if self.cfg.backbone_weights == "imagenet":
                from training.pretrained import load_imagenet_backbone

                load_imagenet_backbone(model)
            return model
        model, _ = load_checkpoint(self.cfg.init)
        if _architecture(model.config) != _architecture(config):
            raise CheckpointError(
                f"{self.cfg.init}: its architecture differs from the configured model"
            )
        fresh = build_model(config)
        fresh.load_state_dict(model.state_dict())
        return fresh

    def _setup_mlb(self) -> None:
        assert self.cfg.mlb is not None
        teacher, _ = load_checkpoint(self.cfg.mlb.teacher)
        if not teacher.config.semantic_head:
            raise CheckpointError(f"{self.cfg.mlb.teacher}: the MLB teacher has no semantic head")
        self.teacher = teacher.to(self.device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        matte = [s for s in self.cfg.data if s.kind != "segmentation"]
        if self.cfg.mlb.matte_share > 0 and matte:
            n = max(1, round(self.cfg.batch_size * self.cfg.mlb.matte_share))
            self.matte_mixture = build_mixture(self.cfg, matte, n)

    def _student_sources(self) -> list[Any]:
        if self.cfg.trainer != "mlb":
            return list(self.cfg.data)
        seg = [s for s in self.cfg.data if s.kind == "segmentation"]
        if not seg:
            raise InputError("the MLB trainer needs a segmentation source in [[data]]")
        return seg

    def _student_batch(self) -> int:
        if self.matte_mixture is None:
            return self.cfg.batch_size
        return max(1, self.cfg.batch_size - len(self.matte_mixture.slots))

    def _amp_dtype(self) -> torch.dtype | None:
        if not (self.cfg.amp and self.device.type == "cuda"):
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    # -- state ---------------------------------------------------------------

    def resume(self) -> bool:
        state = load_state(self.cfg.output)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.teacher is not None and state.get("teacher") is not None:
            self.teacher.load_state_dict(state["teacher"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        _truncate_log(self.cfg.output / LOG_FILE, self.step)
        return True

    def save(self) -> None:
        out = self.cfg.output
        out.mkdir(parents=True, exist_ok=True)
        save_state(
            out,
            {
                "step": self.step,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "teacher": None if self.teacher is None else self.teacher.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "config": self.cfg.model_dump(mode="json"),
            },
        )
        meta = {
            "training": {
                "trainer": self.cfg.trainer,
                "step": self.step,
                "steps": self.cfg.steps,
                "data": [s.model_dump(mode="json") for s in self.cfg.data],
                "crop": self.cfg.crop,
            }
        }
        save_checkpoint(out / MODEL_FILE, self.model, meta)

    # -- one step -------------------------------------------------------------

    def train_step(self, inputs: StepInputs | None = None) -> dict[str, float]:
        """One optimiser step; `inputs` are this step's, made here when not given."""
        cfg = self.cfg
        factor = lr_factor(self.step, cfg.warmup_steps, cfg.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * group.get("lr_scale", 1.0) * factor
        if inputs is None:
            inputs = self.make_inputs(self.step)
        self.model.train()
        if self.teacher is None:
            p = inputs.prepared
        else:
            # Augmentation ran on the CPU; the teacher labels the weak view on the
            # training device, and the student sees the strong one.
            weak = _to(inputs.prepared, self.device)
            with self._autocast():
                p = teacher_labels(self.teacher, weak, cfg.refine_fraction, cfg.coarse_long_side)
            assert inputs.strong is not None
            p.image = inputs.strong.to(self.device)
            if inputs.extra is not None:
                p = _concat(p, inputs.extra)
        p = _to(p, self.device)
        with self._autocast():
            out = forward(self.model, p.image, cfg.refine_fraction, cfg.coarse_long_side)
            loss, terms = matting_losses(_float_out(out), p, cfg.loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.teacher is not None and self.cfg.mlb is not None and self.cfg.mlb.ema_decay < 1:
            ema_update(self.teacher, self.model, self.cfg.mlb.ema_decay)
        self.step += 1
        return {"loss": float(loss.detach()), **terms}

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.amp_dtype)

    # -- loop ----------------------------------------------------------------

    def train(self, on_step: Callable[[int, dict[str, float]], None] | None = None) -> Path:
        cfg = self.cfg
        cfg.output.mkdir(parents=True, exist_ok=True)
        (cfg.output / "config.json").write_text(
            json.dumps(cfg.model_dump(mode="json"), indent=2), encoding="utf-8"
        )
        bar = tqdm(
            total=cfg.steps,
            initial=self.step,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
        )
        try:
            with step_inputs(self.make_inputs, self.step, cfg.steps, cfg.workers) as inputs:
                self._loop(inputs, bar, on_step)
        finally:
            bar.close()
        return cfg.output / MODEL_FILE

    def _loop(
        self,
        inputs: Any,
        bar: Any,
        on_step: Callable[[int, dict[str, float]], None] | None,
    ) -> None:
        cfg = self.cfg
        while self.step < cfg.steps:
            t0 = time.perf_counter()  # the wait for the inputs counts in the rate
            row = self.train_step(next(inputs))
            rate = cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
            row = {
                "step": self.step,
                "lr": self.optimizer.param_groups[-1]["lr"],
                **row,
                "samples_per_s": rate,
            }
            _append_log(cfg.output / LOG_FILE, row)
            if on_step is not None:
                on_step(self.step, row)
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                bar.set_postfix(loss=f"{row['loss']:.4f}", img_s=f"{rate:.1f}")
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self.save()


def train(cfg: TrainConfig, progress: bool = True, resume: bool = True) -> Path:
    run = Run(cfg, progress)
    if resume:
        run.resume()
    if run.step >= cfg.steps:
        if not (cfg.output / MODEL_FILE).exists():
            run.save()
        return cfg.output / MODEL_FILE
    return run.train()


def param_groups(model: MattingNet, backbone_lr_scale: float) -> list[dict[str, Any]]:
    """Optimizer groups: the backbone at lr x backbone_lr_scale, the rest at lr (one
    group when the scale is 1, so optimizer states of earlier runs still load)."""
    if backbone_lr_scale == 1.0:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]
    backbone = list(model.coarse.backbone.parameters())
    ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return [
        {"params": backbone, "lr_scale": backbone_lr_scale},
        {"params": rest, "lr_scale": 1.0},
    ]


def _architecture(config: ModelConfig) -> dict[str, Any]:
    """The config fields that shape the weights (run-time and serving knobs left out)."""
    knobs = {"coarse_long_side", "refine_mode", "refine_fraction", "flip_average", "coarse_scales"}
    return config.model_dump(exclude=knobs)


def _to(p: Any, device: torch.device) -> Any:
    for f in p.__dataclass_fields__:
        setattr(p, f, getattr(p, f).to(device))
    return p


def _concat(a: Any, b: Any) -> Any:
    b = _to(b, a.image.device)
    return type(a)(*(torch.cat([getattr(a, f), getattr(b, f)]) for f in a.__dataclass_fields__))


def _float_out(out: Any) -> Any:
    return type(out)(*(x.float() if x is not None and x.is_floating_point() else x for x in out))


def _append_log(path: Path, row: dict[str, float]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in LOG_FIELDS})


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows after the resumed step: those steps will run again."""
    if not path.exists():
        return
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)
