"""Data sources: each draws one Sample at the crop size from its own rng.

Draws are pure functions of the rng, so a sample is fixed by (seed, step, slot)
and a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from matting.errors import InputError
from matting.imageio import read_image
from training.data.folders import clips, image_files, paired, read_names
from training.data.sample import KIND_CODES, Sample, scale_and_crop, to_tensor
from training.synth import generate_background, generate_foreground
from training.targets import semantic_classes, transition_band, unified_target


def _rgb(path: Path) -> np.ndarray:
    return read_image(path).rgb


def _grey(path: Path) -> np.ndarray:
    """A label image as float32 (H, W) in [0, 1]."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except OSError as e:
        raise InputError(f"{path}: cannot read label image: {e}") from None


def _same_size(a: np.ndarray, b: np.ndarray, what: Path) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise InputError(
            f"{what}: label is {b.shape[1]}x{b.shape[0]}, image {a.shape[1]}x{a.shape[0]}"
        )


def guess_kind(alpha: np.ndarray) -> str:
    """An alpha with next to no opaque pixels is transparent or meticulous (seed 004)."""
    covered = float((alpha > 0.01).sum())
    if covered == 0:
        return "nonsalient"
    opaque = float((alpha > 0.99).sum())
    return "opaque" if opaque > 0.05 * covered else "transparent"


def matte_semantic(alpha: torch.Tensor, kind: str, radius: int) -> torch.Tensor:
    u = unified_target(alpha[0].numpy(), kind, radius)  # type: ignore[arg-type]
    return torch.from_numpy(semantic_classes(u))


def mask_semantic(mask: torch.Tensor, band: int) -> torch.Tensor:
    """Binary-mask classes with the mask edge marked as transition: its exact
    position there is not known, so neither side is claimed."""
    binary = mask[0].numpy() >= 0.5
    classes = np.where(binary, 2, 0).astype(np.int64)
    if band > 0:
        classes[transition_band(binary, band)] = 1
    return torch.from_numpy(classes)


def epoch_pick(seed: int, salt: int, ordinal: int, n: int) -> int:
    """Index of the `ordinal`-th draw from n items: a fresh permutation per pass,
    so every item is seen once per epoch (sampling without replacement)."""
    epoch, i = divmod(ordinal, n)
    return int(np.random.default_rng([seed, salt, epoch]).permutation(n)[i])


@dataclass
class DrawParams:
    seed: int
    crop: int
    scale_min: float
    scale_max: float
    seg_band: int
    trimap_radius: int

    def long_side(self, rng: np.random.Generator) -> float:
        return self.crop * float(rng.uniform(self.scale_min, self.scale_max))


class Backgrounds:
    """Background photos; with a segmentation layout (images/ + masks/) crops
    are taken where the mask is empty, so no second person sneaks in unlabelled."""

    def __init__(self, folder: Path | None) -> None:
        self.files: list[Path] = []
        self.masks: dict[str, Path] = {}
        if folder is None:
            return
        if (folder / "images").is_dir() and (folder / "masks").is_dir():
            self.files = list(image_files(folder / "images").values())
            self.masks = {k: v for k, v in image_files(folder / "masks").items()}
        else:
            self.files = list(image_files(folder).values())
        if not self.files:
            raise InputError(f"{folder}: no background images found")

    def __len__(self) -> int:
        return len(self.files)

    def draw(self, rng: np.random.Generator, crop: int, index: int) -> torch.Tensor | None:
        """A (3, crop, crop) crop of background `index`, or None when no clean
        crop was found."""
        path = self.files[index]
        rgb = to_tensor(_rgb(path))
        h, w = rgb.shape[-2:]
        mask = self.masks.get(path.stem)
        m = to_tensor(_grey(mask)) if mask is not None else None
        best, best_cover = None, 1.0
        for _ in range(6):
            side = int(min(h, w) * rng.uniform(0.3, 0.7))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            cover = 0.0 if m is None else float(m[:, top : top + side, left : left + side].mean())
            if cover < best_cover:
                best, best_cover = (top, left, side), cover
            if cover < 0.01:
                break
        if best is None or best_cover > 0.02:
            return None
        top, left, side = best
        window = rgb[:, top : top + side, left : left + side]
        return scale_and_crop([window], crop, crop, rng)[0]


class SegmentationSource:
    """images/NAME.jpg + masks/NAME.png (binary person masks)."""

    exact = False

    def __init__(self, root: Path, include: Path | None, exclude: Path | None) -> None:
        self.items = paired(root, ("images",), ("masks",), read_names(include), read_names(exclude))

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, rng: np.random.Generator, p: DrawParams, ordinal: int) -> Sample:
        _, img_path, mask_path = self.items[epoch_pick(p.seed, 1, ordinal, len(self.items))]
        rgb, mask = _rgb(img_path), _grey(mask_path)
        _same_size(rgb, mask, mask_path)
        img, m = scale_and_crop([to_tensor(rgb), to_tensor(mask)], p.crop, p.long_side(rng), rng)
        m = (m >= 0.5).float()
        return Sample(img, img, m, mask_semantic(m, p.seg_band), False, False, KIND_CODES["opaque"])


class ImageAlphaSource:
    """image/NAME + alpha/NAME: photographs (or composites) with a true matte."""

    def __init__(self, root: Path, include: Path | None, exclude: Path | None) -> None:
        self.items = paired(
            root, ("image", "images"), ("alpha", "alphas"), read_names(include), read_names(exclude)
        )

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, rng: np.random.Generator, p: DrawParams, ordinal: int) -> Sample:
        _, img_path, alpha_path = self.items[epoch_pick(p.seed, 1, ordinal, len(self.items))]
        rgb, alpha = _rgb(img_path), _grey(alpha_path)
        _same_size(rgb, alpha, alpha_path)
        img, a = scale_and_crop([to_tensor(rgb), to_tensor(alpha)], p.crop, p.long_side(rng), rng)
        kind = guess_kind(a[0].numpy())
        sem = matte_semantic(a, kind, p.trimap_radius)
        return Sample(img, img, a, sem, True, False, KIND_CODES[kind])


class _LayeredSource:
    """Foreground + alpha pasted over a background photo (or a generated one).

    Seed 002's "zip" pairing: each pass shuffles the foregrounds and the
    backgrounds separately and pairs them position by position, so every
    foreground meets a new background each epoch.
    """

    items: list[tuple[str, Path, Path]]

    def __init__(self, backgrounds: Path | None) -> None:
        self.backgrounds = Backgrounds(backgrounds)

    def __len__(self) -> int:
        return len(self.items)

    def background(
        self, rng: np.random.Generator, p: DrawParams, ordinal: int
    ) -> torch.Tensor | None:
        n = len(self.backgrounds)
        if n == 0:
            return None
        return self.backgrounds.draw(rng, p.crop, epoch_pick(p.seed, 2, ordinal, n))

    def draw(self, rng: np.random.Generator, p: DrawParams, ordinal: int) -> Sample:
        _, fg_path, alpha_path = self.items[epoch_pick(p.seed, 1, ordinal, len(self.items))]
        rgb, alpha = _rgb(fg_path), _grey(alpha_path)
        _same_size(rgb, alpha, alpha_path)
        fg, a = scale_and_crop([to_tensor(rgb), to_tensor(alpha)], p.crop, p.long_side(rng), rng)
        kind = guess_kind(a[0].numpy())
        sem = matte_semantic(a, kind, p.trimap_radius)
        bg = self.background(rng, p, ordinal)
        if bg is None:
            bg = to_tensor(generate_background(rng, (p.crop, p.crop)))
        return Sample(fg, bg, a, sem, True, True, KIND_CODES[kind])


class ForegroundSource(_LayeredSource):
    """fg/NAME + alpha/NAME (Distinctions-646, AM-2k style) over backgrounds."""

    def __init__(
        self, root: Path, backgrounds: Path | None, include: Path | None, exclude: Path | None
    ) -> None:
        super().__init__(backgrounds)
        self.items = paired(
            root,
            ("fg", "foreground"),
            ("alpha", "alphas"),
            read_names(include),
            read_names(exclude),
        )


class VideoSource(_LayeredSource):
    """VideoMatte240K frames: fgr/CLIP/N.jpg + pha/CLIP/N.jpg over backgrounds."""

    def __init__(self, root: Path, backgrounds: Path | None) -> None:
        super().__init__(backgrounds)
        self.items = clips(root)


class SyntheticSource(_LayeredSource):
    """Procedural foregrounds with exact alpha (training.synth) over photos or
    generated backgrounds."""

    def __init__(self, backgrounds: Path | None, generated_share: float) -> None:
        super().__init__(backgrounds)
        self.generated_share = generated_share if len(self.backgrounds) else 1.0

    def __len__(self) -> int:
        return 1 << 30  # unbounded: every draw is a new foreground

    def draw(self, rng: np.random.Generator, p: DrawParams, ordinal: int) -> Sample:
        fgd = generate_foreground(rng, (p.crop, p.crop))
        fg, a = to_tensor(fgd.rgb), to_tensor(fgd.alpha)
        bg = None
        if rng.random() >= self.generated_share:
            bg = self.background(rng, p, ordinal)
        if bg is None:
            bg = to_tensor(generate_background(rng, (p.crop, p.crop)))
        sem = matte_semantic(a, fgd.kind, p.trimap_radius)
        return Sample(fg, bg, a, sem, True, True, KIND_CODES[fgd.kind])
