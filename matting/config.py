"""The frozen model configuration that travels inside every checkpoint and manifest.

Export and the service rebuild the network from this object, never from flags,
so everything that changes the weights' shapes or the forward pass lives here.
Run-time knobs that do not change weights (how many patches to refine) have
defaults here and can be overridden per call.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONFIG_VERSION = 1

BackboneName = Literal[
    "mobilenetv2", "efficientnet_lite0", "efficientnet_lite1", "resnet18", "resnet34", "resnet50"
]
RefineMode = Literal["topk", "band", "full", "none"]
# Bounds keep a hostile or mistyped config from building a network that cannot
# exist (negative widths) or would exhaust memory before the first forward.
Width = Annotated[int, Field(ge=1, le=4096)]
Rate = Annotated[int, Field(ge=1, le=64)]


class ModelConfig(BaseModel):
    """Architecture of one matting network (coarse stage + sparse refiner)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config_version: int = CONFIG_VERSION
    backbone: BackboneName = "mobilenetv2"
    # 16 dilates the last stage as DeepLabV3 and seed 002 do; 32 keeps it strided.
    output_stride: Literal[16, 32] = 16
    # Seed 002: a 6-channel stem takes the image and a background plate.
    background_input: bool = False
    # Seed 004: a 3-class unified semantic head whose map gates the coarse alpha.
    semantic_head: bool = False
    aspp_channels: Width = 256
    aspp_rates: tuple[Rate, Rate, Rate] = (3, 6, 9)
    decoder_channels: tuple[Width, Width, Width] = (128, 64, 48)
    hidden_channels: Width = 32
    # Refiner widths, seed 002: C*BR24-C*BR16 at half resolution, C*BR12-C*4 at full.
    refiner_channels: tuple[Width, Width, Width] = (24, 16, 12)
    # The coarse stage runs on the image shrunk by a power of two so that its long
    # side is at most this (HD -> 1/4, 4K -> 1/8 for 512).
    coarse_long_side: int = Field(512, ge=32, le=8192)
    # Test-time augmentation: the coarse stage also sees the mirrored image and the
    # two outputs are averaged (one more coarse pass, about 10% of an HD frame).
    # Serving only; training leaves it off, as flips are already an augmentation.
    flip_average: bool = False
    # Test-time augmentation across scales, serving only as well: the coarse stage
    # runs with its long side at each of these multiples of coarse_long_side and the
    # outputs are averaged on the finest grid before the refiner. Sides that snap to
    # the same power-of-two factor share one pass, counted once per side; a pass
    # at half of coarse_long_side or less is skipped unless it is the finest.
    coarse_scales: tuple[float, ...] = Field((1.0,), min_length=1, max_length=4)
    # Defaults for the run-time refinement; callers may override them.
    refine_mode: RefineMode = "topk"
    # Fraction of the 4x4 full-resolution patches refined in top-k mode; seed 002
    # samples 80k pixels at HD and 320k at 4K, about 4% of the patches at both.
    refine_fraction: float = Field(0.04, gt=0.0, le=1.0)
    # Transition band for band mode (seed 000): lo < alpha < hi, then dilated.
    band_low: float = Field(0.01, ge=0.0, lt=1.0)
    band_high: float = Field(0.99, gt=0.0, le=1.0)
    band_dilation: int = Field(1, ge=0, le=16)

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.config_version != CONFIG_VERSION:
            raise ValueError(
                f"config_version {self.config_version} is not supported "
                f"(this build reads version {CONFIG_VERSION})"
            )
        if self.band_low >= self.band_high:
            raise ValueError("band_low must be below band_high")
        for m in self.coarse_scales:
            if not 0.0 < m <= 4.0 or round(self.coarse_long_side * m) < 32:
                raise ValueError(
                    f"coarse_scales: {m} must be in (0, 4] and keep the coarse long side "
                    f"at 32 or more (coarse_long_side {self.coarse_long_side})"
                )
        return self

    def without_test_time_augmentation(self) -> ModelConfig:
        """The same weights served with one unmirrored coarse pass: faster, the
        model as trained (flip_average and coarse_scales are serving options)."""
        return self.model_copy(update={"flip_average": False, "coarse_scales": (1.0,)})

    @property
    def test_time_augmentation(self) -> bool:
        return self.flip_average or self.coarse_scales != (1.0,)

    def coarse_sides(self, long_side: int | None = None) -> tuple[int, ...]:
        """Long sides of the coarse passes in ascending order, for coarse_long_side
        or a caller's override of it; the first needs the largest factor, which
        therefore sets the padding."""
        base = long_side or self.coarse_long_side
        return tuple(sorted(max(1, round(base * m)) for m in self.coarse_scales))

    @property
    def coarse_channels(self) -> int:
        """Channels of the coarse output: alpha, foreground residual, error, hidden."""
        return 1 + 3 + 1 + self.hidden_channels

    @property
    def image_channels(self) -> int:
        return 6 if self.background_input else 3


# Named variants. "realtime" is the small MobileNetV2 model, "lite0" and "lite1" the
# EfficientNet-Lite ones (ImageNet weights can start their training), "quality" the ResNet-50 one.
PRESETS: dict[str, ModelConfig] = {
    "realtime": ModelConfig(backbone="mobilenetv2"),
    "lite0": ModelConfig(backbone="efficientnet_lite0"),
    "lite1": ModelConfig(backbone="efficientnet_lite1"),
    "resnet18": ModelConfig(backbone="resnet18"),
    "resnet34": ModelConfig(backbone="resnet34"),
    "quality": ModelConfig(backbone="resnet50"),
    "realtime-bgm": ModelConfig(backbone="mobilenetv2", background_input=True),
    "quality-bgm": ModelConfig(backbone="resnet50", background_input=True),
}


def preset(name: str) -> ModelConfig:
    """Return a named variant, with an error that lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown model preset {name!r}; known presets: {known}") from None
