"""The training configuration, read from a TOML file (`matting train --config FILE`).

One file describes one stage: which model, which data, which trainer
(supervised or Matte Label Blending), how long, and where the run lives.
Relative paths in the file are resolved against the file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from matting.config import ModelConfig, preset
from matting.errors import InputError
from training.losses import LossWeights

SourceKind = Literal["image_alpha", "foreground", "segmentation", "video", "synthetic"]
Positive = Annotated[float, Field(gt=0.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSource(_Strict):
    """One folder of training data (layouts in README "Training data")."""

    kind: SourceKind
    path: Path | None = None  # not used by "synthetic"
    # Folder of background photos for "foreground", "video" and "synthetic".
    backgrounds: Path | None = None
    # Stems (one per line) never used as backgrounds: a held-out split stays unseen.
    backgrounds_exclude: Path | None = None
    # Share of samples drawn from this source.
    weight: Positive = 1.0
    # Optional lists of file stems (one per line): keep only / leave out these.
    include: Path | None = None
    exclude: Path | None = None
    # "synthetic" only: share of generated (not photographic) backgrounds.
    generated_backgrounds: float = Field(0.5, ge=0.0, le=1.0)
    # "segmentation" only: share of draws whose person is pasted over another scene.
    paste: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check(self) -> DataSource:
        if self.kind != "synthetic" and self.path is None:
            raise ValueError(f"a {self.kind!r} source needs a path")
        if self.kind in ("foreground", "video") and self.backgrounds is None:
            raise ValueError(f"a {self.kind!r} source needs a backgrounds folder")
        if self.paste > 0 and self.kind != "segmentation":
            raise ValueError("paste applies to 'segmentation' sources only")
        return self


class MLBConfig(_Strict):
    """Matte Label Blending (seed 003): the teacher and how it is updated."""

    teacher: Path  # checkpoint of the teacher fine-tuned on matte data
    # EMA of the student into the teacher (only when architectures match); 1 = frozen.
    ema_decay: float = Field(0.999, gt=0.0, le=1.0)
    # Share of each batch that stays supervised matte data (0 = segmentation only).
    matte_share: float = Field(0.0, ge=0.0, lt=1.0)


class TrainConfig(_Strict):
    model_preset: str = "realtime"
    # Overrides of the preset's fields, e.g. {semantic_head = true}.
    model: dict[str, Any] = Field(default_factory=dict)
    # Start from these weights (ignored when resuming a run in progress).
    init: Path | None = None
    # Without init: "imagenet" starts the backbone from ImageNet weights that a
    # package ships (training.pretrained; EfficientNet-Lite0 and -Lite1 only), else
    # from scratch.
    backbone_weights: Literal["imagenet"] | None = None
    trainer: Literal["supervised", "mlb"] = "supervised"
    mlb: MLBConfig | None = None
    data: list[DataSource] = Field(min_length=1)
    # Train on square crops of this size; the coarse stage sees them shrunk so that
    # the long side is at most coarse_long_side (the model's own value when None).
    crop: int = Field(320, ge=32, le=2048)
    coarse_long_side: int | None = Field(None, ge=32)
    # Images are resized so that their long side is crop * U(scale_min, scale_max).
    scale_min: float = Field(0.75, gt=0.0)
    scale_max: float = Field(1.5, gt=0.0)
    batch_size: int = Field(8, ge=1, le=1024)
    steps: int = Field(1000, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    # The backbone's learning rate is lr times this: below 1, pretrained features
    # are adapted gently while the new layers learn at the full rate.
    backbone_lr_scale: float = Field(1.0, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(100, ge=0)
    refine_fraction: float = Field(0.05, gt=0.0, le=1.0)
    # Width in pixels of the transition class around segmentation-mask edges.
    seg_band: int = Field(3, ge=0, le=64)
    # Radius of the unknown band of trimaps made from alpha.
    trimap_radius: int = Field(2, ge=0, le=64)
    loss: LossWeights = LossWeights()
    seed: int = 0
    device: str = "auto"
    # Processes that draw and augment batches ahead of the step (0: the training
    # process does it between steps). A hardware setting: results do not depend on it.
    workers: int = Field(0, ge=0, le=64)
    amp: bool = True  # bfloat16/float16 autocast on CUDA only
    log_every: int = Field(10, ge=1)
    save_every: int = Field(200, ge=1)
    output: Path = Path("runs/default")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.trainer == "mlb" and self.mlb is None:
            raise ValueError("trainer 'mlb' needs an [mlb] table with the teacher checkpoint")
        if self.backbone_weights is not None and self.init is not None:
            raise ValueError("backbone_weights starts a fresh model; it cannot go with init")
        if self.scale_min > self.scale_max:
            raise ValueError("scale_min must not exceed scale_max")
        return self

    def model_config_(self) -> ModelConfig:
        """The preset with the overrides applied (validated again)."""
        base = preset(self.model_preset).model_dump()
        return ModelConfig(**{**base, **self.model})


def _resolve(value: Any, root: Path) -> Any:
    if isinstance(value, Path) and not value.is_absolute():
        return root / value
    return value


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a TOML training config; errors name the file and the field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid TOML: {e}") from None
    try:
        cfg = TrainConfig.model_validate(raw)
        cfg.model_config_()
    except (ValidationError, ValueError) as e:
        raise InputError(f"{path}: invalid training config: {_first_error(e)}") from None
    return _with_root(cfg, path.parent)


def _with_root(cfg: TrainConfig, root: Path) -> TrainConfig:
    data = [
        src.model_copy(
            update={
                k: _resolve(getattr(src, k), root)
                for k in ("path", "backgrounds", "backgrounds_exclude", "include", "exclude")
            }
        )
        for src in cfg.data
    ]
    update: dict[str, Any] = {
        "data": data,
        "init": _resolve(cfg.init, root),
        "output": _resolve(cfg.output, root),
    }
    if cfg.mlb is not None:
        update["mlb"] = cfg.mlb.model_copy(update={"teacher": _resolve(cfg.mlb.teacher, root)})
    return cfg.model_copy(update=update)


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "config"
        return f"{where}: {err['msg']}"
    return str(e)
