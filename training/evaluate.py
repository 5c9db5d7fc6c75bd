"""Evaluation of a predictor on a folder of labelled images.

Two folder layouts, told apart by their sub-folders:

* matting: ``image/`` (or ``images/``) NAME.{jpg,png} with soft ground truth
  ``alpha/NAME.png`` and optionally ``trimap/NAME.png`` ({0, 128, 255});
* segmentation: ``images/NAME.jpg`` with binary masks ``masks/NAME.png`` (0/255).

The scoring functions are pure; ``evaluate_folder`` reads the files, runs the
predictor on each image at its own size and collects an EvalReport.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image
from scipy import ndimage

from matting import metrics
from matting.errors import InputError, MattingError
from matting.imageio import read_image
from training.evalreport import BASELINE_PREFIX, EvalReport, ImageScore, Layout

__all__ = [
    "Dataset",
    "EvalReport",
    "ImageScore",
    "Sample",
    "blurred_mask_baseline",
    "edge_band",
    "evaluate_folder",
    "find_dataset",
    "read_label",
    "read_trimap",
    "score_matting",
    "score_segmentation",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_EXPECTED_LAYOUT = (
    "expected image/ (or images/) + alpha/ [+ trimap/] for matting data, "
    "or images/ + masks/ for segmentation data"
)
_GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_TRIMAP_VALUES = (0, 128, 255)

Predict = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- scoring


def score_matting(
    alpha_pred: ArrayLike, alpha_true: ArrayLike, trimap: ArrayLike | None = None
) -> dict[str, float]:
    """Matting metrics of one image.

    Args:
        alpha_pred, alpha_true: (H, W) mattes, float in [0, 1] or uint8.
        trimap: optional (H, W) uint8 with 128 marking the unknown band.

    Returns:
        sad, mse, mad, grad, conn over the whole image (matting.metrics.evaluate),
        and trans_sad, trans_mse over the transition region: the trimap's unknown
        band when given, else 0.05 < alpha_true < 0.95 (seed 003).
    """
    scores = metrics.evaluate(alpha_pred, alpha_true)
    if trimap is not None:
        region = metrics.trimap_unknown(trimap)
    else:
        region = metrics.transition_region(alpha_true)
    scores["trans_sad"] = metrics.sad(alpha_pred, alpha_true, region)
    scores["trans_mse"] = metrics.mse(alpha_pred, alpha_true, region)
    return scores


def edge_band(foreground: NDArray[np.bool_], band: float) -> NDArray[np.bool_]:
    """Pixels whose Euclidean distance to a pixel of the other class is <= band.

    Args:
        foreground: (H, W) bool mask.
        band: width in pixels, >= 0 (0 selects nothing: every distance is >= 1).

    Returns:
        (H, W) bool, True inside the band; all False when the mask has one class only.
    """
    fg = np.asarray(foreground, dtype=bool)
    if band < 0:
        raise ValueError(f"band must be >= 0 pixels, got {band}")
    if fg.all() or not fg.any():
        return np.zeros(fg.shape, dtype=bool)  # no edge, hence no band
    # edt gives each non-zero pixel its distance to the nearest zero pixel.
    dist = np.where(fg, ndimage.distance_transform_edt(fg), ndimage.distance_transform_edt(~fg))
    return dist <= band


def score_segmentation(alpha_pred: ArrayLike, mask: ArrayLike, band: int = 7) -> dict[str, float]:
    """Metrics of a matte against a binary segmentation mask (weak label).

    Args:
        alpha_pred: (H, W) matte, float in [0, 1] or uint8.
        mask: (H, W) mask, uint8 0/255 or float 0/1.
        band: pixels within this distance (px) of the mask edge are left out of
            mse_outside_band, where a binary label says nothing about soft alpha.

    Returns:
        iou: IoU of alpha >= 0.5 with mask >= 128 (1.0 when both are empty);
        mse_outside_band: MSE against mask / 255 outside the band;
        mse, sad: over the whole image.
    """
    whole_mse = metrics.mse(alpha_pred, mask)  # validates shapes, dtypes and ranges
    pred, truth = _unit(alpha_pred), _unit(mask)
    fg = truth >= 0.5  # 127/255 < 0.5 < 128/255: the same as mask >= 128
    hit = pred >= 0.5
    union = int(np.count_nonzero(hit | fg))
    iou = 1.0 if union == 0 else np.count_nonzero(hit & fg) / union
    outside = ~edge_band(fg, band)
    return {
        "iou": float(iou),
        "mse_outside_band": metrics.mse(pred, truth, outside),
        "mse": whole_mse,
        "sad": metrics.sad(pred, truth),
    }


def blurred_mask_baseline(alpha_pred: ArrayLike, sigma: float = 2.0) -> NDArray[np.float64]:
    """The model's binarised matte (alpha >= 0.5) blurred by a Gaussian of `sigma` px.

    A matting model should beat this: it is what a segmentation model plus
    feathering gives. Input (H, W) float in [0, 1]; output (H, W) float64 in [0, 1].
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 pixels, got {sigma}")
    hard = (np.asarray(alpha_pred) >= 0.5).astype(np.float64)
    return np.clip(ndimage.gaussian_filter(hard, sigma), 0.0, 1.0)


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    label: Path  # alpha/NAME.png or masks/NAME.png
    trimap: Path | None


@dataclass(frozen=True)
class Dataset:
    root: Path
    layout: Layout
    samples: tuple[Sample, ...]


def find_dataset(data_dir: str | Path, names: Sequence[str] | None = None) -> Dataset:
    """Detect the layout of `data_dir` and pair every image with its labels.

    Only reads the folder listings, so a bad folder fails before a model is loaded.
    `names` restricts the images to these file stems, in the given order.
    Raises InputError for a missing folder, an unknown layout, an empty dataset,
    names not found, and images without their alpha, mask or trimap.
    """
    root = Path(data_dir)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    layout, image_dir, label_dir, trimap_dir = _detect_layout(root)
    images = _list_images(image_dir)
    if not images:
        raise InputError(f"{image_dir}: no JPEG, PNG or WebP images; the dataset is empty")
    if names is None:
        stems = sorted(images)
    else:
        if isinstance(names, str):
            raise TypeError("names must be a sequence of file stems, not one string")
        stems = list(dict.fromkeys(names))  # drop repeats, keep the order
        if not stems:
            raise InputError("the list of image names to evaluate is empty")
        unknown = [n for n in stems if n not in images]
        if unknown:
            raise InputError(f"{len(unknown)} name(s) not found in {image_dir}: {_few(unknown)}")
    # A trimap folder is all or nothing: mixing regions would make the means meaningless.
    for folder in (label_dir, trimap_dir):
        if folder is None:
            continue
        missing = [s for s in stems if not (folder / f"{s}.png").is_file()]
        if missing:
            raise InputError(
                f"{len(missing)} image(s) in {image_dir} have no {folder.name}/NAME.png: "
                f"{_few(missing)}"
            )
    samples = tuple(
        Sample(
            s,
            images[s],
            label_dir / f"{s}.png",
            None if trimap_dir is None else trimap_dir / f"{s}.png",
        )
        for s in stems
    )
    return Dataset(root, layout, samples)


def _detect_layout(root: Path) -> tuple[Layout, Path, Path, Path | None]:
    subdirs = {p.name for p in root.iterdir() if p.is_dir()}
    image_dirs = [d for d in ("image", "images") if d in subdirs]
    is_matting = "alpha" in subdirs and bool(image_dirs)
    is_segmentation = {"images", "masks"} <= subdirs
    if is_matting and is_segmentation:
        raise InputError(f"{root}: holds both alpha/ and masks/; cannot tell which labels to use")
    if is_matting:
        if len(image_dirs) > 1:
            raise InputError(f"{root}: holds both image/ and images/; keep one")
        trimap = root / "trimap" if "trimap" in subdirs else None
        return "matting", root / image_dirs[0], root / "alpha", trimap
    if is_segmentation:
        return "segmentation", root / "images", root / "masks", None
    found = ", ".join(f"{d}/" for d in sorted(subdirs)) or "none"
    raise InputError(f"{root}: unknown dataset layout; {_EXPECTED_LAYOUT}; sub-folders: {found}")


def _list_images(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise InputError(f"{found[path.stem]} and {path} share the name {path.stem!r}")
        found[path.stem] = path
    return found


def _few(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --------------------------------------------------------------------------- reading


def _read_grey(path: Path) -> NDArray[np.uint8]:
    try:
        with Image.open(path) as im:
            if im.mode in _GREY16_MODES:
                # convert("L") clips 16-bit values at 255 instead of scaling them.
                raw = np.clip(np.asarray(im), 0, 65535).astype(np.uint32)
                return ((raw + 128) // 257).astype(np.uint8)
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except MemoryError:
        raise
    except Exception as e:  # Pillow reports bad files with many exception types
        raise InputError(f"{path}: cannot read the label image ({e})") from None


def read_label(path: str | Path) -> NDArray[np.float32]:
    """An alpha matte or mask PNG as (H, W) float32 in [0, 1] (greyscale, 8-bit)."""
    return _read_grey(Path(path)).astype(np.float32) / np.float32(255.0)


def read_trimap(path: str | Path) -> NDArray[np.uint8]:
    """A trimap PNG as (H, W) uint8; values other than 0, 128, 255 are refused."""
    trimap = _read_grey(Path(path))
    odd = np.setdiff1d(np.unique(trimap), _TRIMAP_VALUES)
    if odd.size:
        raise InputError(
            f"{path}: a trimap holds only 0, 128 and 255, found {', '.join(map(str, odd[:5]))}"
        )
    return trimap


def _check_size(image: Path, hw: tuple[int, ...], label: Path, arr: np.ndarray) -> None:
    if arr.shape != hw:
        raise InputError(
            f"{image} is {hw[1]}x{hw[0]} pixels but {label} is {arr.shape[1]}x{arr.shape[0]}"
        )


# --------------------------------------------------------------------------- running


def evaluate_folder(
    predict: Predict,
    data_dir: str | Path,
    *,
    names: Sequence[str] | None = None,
    band: int = 7,
    baseline: bool = False,
    baseline_sigma: float = 2.0,
    progress: bool = True,
) -> EvalReport:
    """Run `predict` on every image of a dataset folder and score it.

    Args:
        predict: (H, W, 3) uint8 RGB -> (H, W) float alpha in [0, 1], at the
            image's own size.
        data_dir: a folder in the matting or the segmentation layout.
        names: only these image stems (a held-out split); None for all images.
        band: segmentation only, see score_segmentation.
        baseline: matting only: also score blurred_mask_baseline(alpha, baseline_sigma)
            under baseline_* names, and compare the means.
        progress: show a tqdm bar on stderr.

    Returns:
        an EvalReport. Raises InputError for bad folders and files (see find_dataset).
    """
    from tqdm import tqdm

    if band < 0:
        raise ValueError(f"band must be >= 0 pixels, got {band}")
    dataset = find_dataset(data_dir, names)
    use_baseline = baseline and dataset.layout == "matting"
    rows = []
    with tqdm(dataset.samples, unit="image", disable=not progress, file=sys.stderr) as bar:
        for sample in bar:
            bar.set_postfix_str(sample.name, refresh=False)
            rgb = read_image(sample.image).rgb
            hw = rgb.shape[:2]
            label = read_label(sample.label)
            _check_size(sample.image, hw, sample.label, label)
            trimap = None
            if sample.trimap is not None:
                trimap = read_trimap(sample.trimap)
                _check_size(sample.image, hw, sample.trimap, trimap)
            alpha = _predict(predict, rgb, sample.image)
            if dataset.layout == "segmentation":
                scores = score_segmentation(alpha, label, band)
            else:
                scores = score_matting(alpha, label, trimap)
            if use_baseline:
                base = score_matting(blurred_mask_baseline(alpha, baseline_sigma), label, trimap)
                scores |= {BASELINE_PREFIX + k: v for k, v in base.items()}
            rows.append(ImageScore(sample.name, scores))

    settings: dict[str, object]
    if dataset.layout == "segmentation":
        settings = {"band": band}
    else:
        has_trimaps = dataset.samples[0].trimap is not None
        settings = {"region": "trimap unknown" if has_trimaps else "0.05 < alpha < 0.95"}
        if use_baseline:
            settings["baseline_sigma"] = baseline_sigma
    return EvalReport.from_rows(dataset.layout, str(dataset.root), rows, settings)


def _predict(predict: Predict, rgb: np.ndarray, image: Path) -> np.ndarray:
    try:
        alpha = predict(rgb)
    except RuntimeError as e:  # torch's out-of-memory and kernel failures: name the image
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise MattingError(f"{image}: prediction failed ({first})") from e
    alpha = np.asarray(alpha, dtype=np.float32)
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"predict returned shape {alpha.shape} for an image of {rgb.shape[:2]}")
    # Half precision can overshoot [0, 1] by a rounding step, which the metrics refuse.
    return np.clip(alpha, 0.0, 1.0)


def _unit(x: ArrayLike) -> NDArray[np.float64]:
    """A matte in the metrics' convention (uint8 is divided by 255) as float64."""
    arr = np.asarray(x)
    return arr / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
