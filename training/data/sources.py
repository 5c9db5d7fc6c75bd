"""Data sources: each draws one Sample at the crop size from its own rng.

Draws are pure functions of the rng, so a sample is fixed by (seed, step, slot)
and a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from matting.errors import InputError
from matting.imageio import read_image
from training.data.folders import clips, image_files, paired, read_names
from training.data.sample import KIND_CODES, Sample, scale_and_crop, to_tensor
from training.synth import generate_background, generate_foreground
from training.targets import semantic_classes, transition_band, unified_target

# Decoded files are kept: a small data set is read thousands of times, and decoding a
# JPEG costs as much as the rest of a sample's preparation. The arrays are read-only.
CACHE_FILES = 1024


@lru_cache(maxsize=CACHE_FILES)
def _decoded_rgb(path: Path) -> np.ndarray:
    rgb = read_image(path).rgb
    rgb.setflags(write=False)
    return rgb


@lru_cache(maxsize=CACHE_FILES)
def _decoded_grey(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L"))
    except OSError as e:
        raise InputError(f"{path}: cannot read label image: {e}") from None
    grey.setflags(write=False)
    return grey


def _rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8, a fresh copy."""
    return _decoded_rgb(path).copy()


def _grey(path: Path) -> np.ndarray:
    """A label image as float32 (H, W) in [0, 1]."""
    return _decoded_grey(path).astype(np.float32) / 255.0


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

    def __init__(self, files: list[Path], masks: dict[str, Path] | None = None) -> None:
        self.files, self.masks = files, masks or {}

    @classmethod
    def from_folder(cls, folder: Path | None, exclude: set[str] | None = None) -> Backgrounds:
        """The images of a folder (or of its images/ + masks/ layout); stems in `exclude`
        (a held-out split) are never used."""
        if folder is None:
            return cls([])
        leave = exclude or set()
        masks: dict[str, Path] = {}
        if (folder / "images").is_dir() and (folder / "masks").is_dir():
            files = image_files(folder / "images")
            masks = {k: v for k, v in image_files(folder / "masks").items() if k not in leave}
        else:
            files = image_files(folder)
        kept = [v for k, v in files.items() if k not in leave]
        if not kept:
            raise InputError(f"{folder}: no background images found")
        return cls(kept, masks)

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
    """images/NAME.jpg + masks/NAME.png (binary person masks).

    With `paste` > 0, that share of draws cuts the person out by its mask and pastes
    it over a person-free crop of another photo of the same split (or a generated
    background): copy-paste augmentation, new scenes for the same few people. The
    label stays the mask, a weak label like the photo's own."""

    exact = False

    def __init__(
        self, root: Path, include: Path | None, exclude: Path | None, paste: float = 0.0
    ) -> None:
        self.items = paired(root, ("images",), ("masks",), read_names(include), read_names(exclude))
        self.paste = paste
        # The split's own photos, where their masks are empty, are the new scenes.
        self.backgrounds = Backgrounds(
            [img for _, img, _ in self.items], {stem: mask for stem, _, mask in self.items}
        )

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, rng: np.random.Generator, p: DrawParams, ordinal: int) -> Sample:
        _, img_path, mask_path = self.items[epoch_pick(p.seed, 1, ordinal, len(self.items))]
        rgb, mask = _rgb(img_path), _grey(mask_path)
        _same_size(rgb, mask, mask_path)
        img, m = scale_and_crop([to_tensor(rgb), to_tensor(mask)], p.crop, p.long_side(rng), rng)
        m = (m >= 0.5).float()
        if self.paste > 0 and rng.random() < self.paste and m.any():
            img = self._pasted(img, m, rng, p, ordinal)
        return Sample(img, img, m, mask_semantic(m, p.seg_band), False, False, KIND_CODES["opaque"])

    def _pasted(
        self, img: torch.Tensor, m: torch.Tensor, rng: np.random.Generator, p: DrawParams, n: int
    ) -> torch.Tensor:
        bg = self.backgrounds.draw(rng, p.crop, epoch_pick(p.seed, 3, n, len(self.backgrounds)))
        if bg is None or rng.random() < 0.25:
            bg = to_tensor(generate_background(rng, (p.crop, p.crop)))
        # A one-pixel feather: a hard binary cut would be an edge no photo has.
        soft = F.avg_pool2d(m[None], 3, stride=1, padding=1, count_include_pad=False)[0]
        return paste_over(img, bg, soft)


def paste_over(fg: torch.Tensor, bg: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The compositing equation I = alpha F + (1 - alpha) B. fg, bg (3, S, S); alpha (1, S, S)."""
    return alpha * fg + (1.0 - alpha) * bg


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

    def __init__(self, backgrounds: Path | None, exclude: Path | None = None) -> None:
        self.backgrounds = Backgrounds.from_folder(backgrounds, read_names(exclude))

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
        self,
        root: Path,
        backgrounds: Path | None,
        include: Path | None,
        exclude: Path | None,
        backgrounds_exclude: Path | None = None,
    ) -> None:
        super().__init__(backgrounds, backgrounds_exclude)
        self.items = paired(
            root,
            ("fg", "foreground"),
            ("alpha", "alphas"),
            read_names(include),
            read_names(exclude),
        )


class VideoSource(_LayeredSource):
    """VideoMatte240K frames: fgr/CLIP/N.jpg + pha/CLIP/N.jpg over backgrounds."""

    def __init__(
        self, root: Path, backgrounds: Path | None, backgrounds_exclude: Path | None = None
    ) -> None:
        super().__init__(backgrounds, backgrounds_exclude)
        self.items = clips(root)


class SyntheticSource(_LayeredSource):
    """Procedural foregrounds with exact alpha (training.synth) over photos or
    generated backgrounds."""

    def __init__(
        self,
        backgrounds: Path | None,
        generated_share: float,
        backgrounds_exclude: Path | None = None,
    ) -> None:
        super().__init__(backgrounds, backgrounds_exclude)
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
