"""A training step's CPU-side inputs, made ahead of the step in worker processes.

A step's inputs (the drawn batch, its augmentation, and for MLB the strong view
and the matte share) are a pure function of the step number: the mixture seeds
every draw by (seed, step, slot) and the augmentation generator by (seed, step).
Worker processes can therefore make them ahead of time and the run stays
bit-identical to one made in the training process, resume included. On a GPU the
drawing and augmenting, not the network, bound the step without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from matting.errors import MattingError
from training import augment
from training.data.mixture import Mixture
from training.steps import Prepared, prepare


@dataclass
class StepInputs:
    # Supervised: the strongly augmented batch. MLB: the weak view the teacher labels.
    prepared: Prepared
    # MLB only: the strong view of the same photos, which the student sees.
    strong: Tensor | None = None
    # MLB only: the supervised matte share of the batch, strongly augmented.
    extra: Prepared | None = None


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class InputMaker:
    """Makes the inputs of any step; picklable, so workers can run it."""

    def __init__(
        self,
        mixture: Mixture,
        matte_mixture: Mixture | None,
        seed: int,
        seg_band: int,
        mlb: bool,
    ) -> None:
        self.mixture = mixture
        self.matte_mixture = matte_mixture
        self.seed = seed
        self.seg_band = seg_band
        self.mlb = mlb

    def __call__(self, step: int) -> StepInputs:
        gen = step_generator(self.seed, step)
        batch = self.mixture.batch(step)
        if not self.mlb:
            return StepInputs(prepare(batch, gen, strong=True, seg_band=self.seg_band))
        # The generator is used in this order (weak, strong, matte share) whoever runs it.
        weak = prepare(batch, gen, strong=False, seg_band=self.seg_band)
        strong = augment.degrade(augment.color_jitter(weak.image, gen), gen)
        extra = None
        if self.matte_mixture is not None:
            extra = prepare(self.matte_mixture.batch(step), gen, True, self.seg_band)
        return StepInputs(weak, strong, extra)


@dataclass
class _Failed:
    error: MattingError


class _Steps(Dataset["StepInputs | _Failed"]):
    def __init__(self, make: InputMaker, start: int, stop: int) -> None:
        self.make, self.start, self.stop = make, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, i: int) -> StepInputs | _Failed:
        try:
            return self.make(self.start + i)
        except MattingError as e:
            # Sent back as it is, so the user reads the same one-line error as
            # without workers, not a worker's traceback wrapped around it.
            return _Failed(e)


def _raising(items: Iterator[StepInputs | _Failed]) -> Iterator[StepInputs]:
    for item in items:
        if isinstance(item, _Failed):
            raise item.error
        yield item


@contextmanager
def step_inputs(
    make: InputMaker, start: int, stop: int, workers: int
) -> Iterator[Iterator[StepInputs]]:
    """The inputs of steps start..stop-1 in order; with workers > 0 that many
    processes make them, each up to two steps ahead."""
    if workers == 0:
        yield (make(step) for step in range(start, stop))
        return
    loader = DataLoader(
        _Steps(make, start, stop),
        batch_size=None,  # an item is already a whole batch
        shuffle=False,
        num_workers=workers,
        prefetch_factor=2,
    )
    it = iter(loader)
    try:
        yield _raising(it)
    finally:
        # Stop the workers now, not when the iterator is collected: a run that
        # raised (or a test that stopped it) must not leave processes behind.
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
