"""The mixture of sources that feeds the trainer, one deterministic batch per step.

Slot j of every batch belongs to a fixed source (shares rounded from the
weights), and the sample in it is drawn from an rng seeded by (seed, step, j).
A batch is therefore a pure function of the step: resuming reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from matting.errors import InputError
from training.config import DataSource, TrainConfig
from training.data.sample import Sample
from training.data.sources import (
    DrawParams,
    ForegroundSource,
    ImageAlphaSource,
    SegmentationSource,
    SyntheticSource,
    VideoSource,
)

Source = SegmentationSource | ImageAlphaSource | ForegroundSource | VideoSource | SyntheticSource


@dataclass
class Batch:
    fg: Tensor  # (B, 3, S, S)
    bg: Tensor  # (B, 3, S, S)
    alpha: Tensor  # (B, 1, S, S)
    semantic: Tensor  # (B, S, S) int64
    exact: Tensor  # (B,) bool: alpha is a true matte
    layers: Tensor  # (B,) bool: fg and bg are separate layers
    kind: Tensor  # (B,) int64

    def to(self, device: torch.device) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def collate(samples: list[Sample]) -> Batch:
    return Batch(
        fg=torch.stack([s.fg for s in samples]),
        bg=torch.stack([s.bg for s in samples]),
        alpha=torch.stack([s.alpha for s in samples]),
        semantic=torch.stack([s.semantic for s in samples]),
        exact=torch.tensor([s.exact for s in samples]),
        layers=torch.tensor([s.layers for s in samples]),
        kind=torch.tensor([s.kind for s in samples], dtype=torch.int64),
    )


def allocate(weights: list[float], slots: int) -> list[int]:
    """Source index of each batch slot: largest-remainder shares of the weights,
    every source at least one slot when there are enough slots."""
    if slots < 1 or not weights:
        raise ValueError("need at least one slot and one source")
    total = sum(weights)
    exact = [w / total * slots for w in weights]
    counts = [int(x) for x in exact]
    if slots >= len(weights):
        counts = [max(1, c) for c in counts]
    while sum(counts) > slots:
        counts[counts.index(max(counts))] -= 1
    order = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in order[: slots - sum(counts)]:
        counts[i] += 1
    return [i for i, c in enumerate(counts) for _ in range(c)]


def open_source(src: DataSource) -> Source:
    if src.kind == "segmentation":
        assert src.path is not None
        return SegmentationSource(src.path, src.include, src.exclude, src.paste)
    if src.kind == "image_alpha":
        assert src.path is not None
        return ImageAlphaSource(src.path, src.include, src.exclude)
    if src.kind == "foreground":
        assert src.path is not None
        return ForegroundSource(
            src.path, src.backgrounds, src.include, src.exclude, src.backgrounds_exclude
        )
    if src.kind == "video":
        assert src.path is not None
        return VideoSource(src.path, src.backgrounds, src.backgrounds_exclude)
    if src.kind == "synthetic":
        return SyntheticSource(src.backgrounds, src.generated_backgrounds, src.backgrounds_exclude)
    raise InputError(f"unknown data source kind {src.kind!r}")


class Mixture:
    def __init__(
        self, sources: list[Source], weights: list[float], batch_size: int, params: DrawParams
    ) -> None:
        self.sources = sources
        self.params = params
        self.slots = allocate(weights, batch_size)
        # Rank of each slot among the slots of its source: the draw ordinal.
        self.rank = [self.slots[:j].count(s) for j, s in enumerate(self.slots)]
        self.per_step = [self.slots.count(i) for i in range(len(sources))]

    def batch(self, step: int) -> Batch:
        samples = []
        for j, (src, rank) in enumerate(zip(self.slots, self.rank, strict=True)):
            rng = np.random.default_rng([self.params.seed, step, j])
            ordinal = step * self.per_step[src] + rank
            samples.append(self.sources[src].draw(rng, self.params, ordinal))
        return collate(samples)


def build_mixture(
    cfg: TrainConfig, sources: list[DataSource] | None = None, batch_size: int | None = None
) -> Mixture:
    chosen = cfg.data if sources is None else sources
    params = DrawParams(
        seed=cfg.seed,
        crop=cfg.crop,
        scale_min=cfg.scale_min,
        scale_max=cfg.scale_max,
        seg_band=cfg.seg_band,
        trimap_radius=cfg.trimap_radius,
    )
    return Mixture(
        [open_source(s) for s in chosen],
        [s.weight for s in chosen],
        batch_size or cfg.batch_size,
        params,
    )
