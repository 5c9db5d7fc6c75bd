"""`matting image`: cut out files and folders of images."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from matting.errors import InputError, MattingError

if TYPE_CHECKING:
    import numpy as np

    from matting.imageio import ImageLimits

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
_SUFFIX_FORMATS = {".png": "png", ".webp": "webp", ".jpg": "jpeg", ".jpeg": "jpeg"}


def _walk_images(folder: Path, skip: Path) -> list[Path]:
    """Image files below `folder`, sorted, leaving out `skip` (the output folder)
    and failing loudly on a subfolder that cannot be read."""

    def fail(e: OSError) -> None:
        raise InputError(f"{e.filename}: cannot read the folder ({e.strerror or e})")

    found = []
    for root, dirs, files in os.walk(folder, onerror=fail):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if (here / d).resolve() != skip)
        found += [here / f for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def plan_outputs(inputs: list[Path], out: Path, ext: str) -> list[tuple[Path, Path]]:
    """Pair each input image with its output path.

    One input file and an `out` with an image suffix: write exactly there.
    Otherwise `out` is a folder; files land as out/<stem><ext> and folders are
    walked recursively, keeping their relative layout. No output may replace an
    input.
    """
    for item in inputs:
        if not item.exists():
            raise InputError(f"{item}: no such file or folder")
    if out.suffix.lower() in IMAGE_SUFFIXES:
        if len(inputs) != 1 or not inputs[0].is_file():
            raise InputError(f"{out}: with several inputs or a folder, -o must name a folder")
        pairs = [(inputs[0], out)]
    else:
        pairs = []
        skip = out.resolve()
        for item in inputs:
            if item.is_dir():
                found = _walk_images(item, skip)
                if not found:
                    raise InputError(f"{item}: folder holds no JPEG, PNG or WebP files")
                pairs += [(p, out / p.relative_to(item).with_suffix(ext)) for p in found]
            else:
                pairs.append((item, out / (item.stem + ext)))
    seen: dict[Path, Path] = {}
    sources = {src.resolve() for src, _ in pairs}
    for src, dst in pairs:
        if dst.resolve() in sources:
            raise InputError(f"{dst}: the output would overwrite an input; choose another -o")
        if dst in seen:
            raise InputError(f"{seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src
    return pairs


def _background(value: str | None, limits: ImageLimits) -> np.ndarray | tuple[int, int, int]:
    """A composite background: an image file, or else a colour (default white)."""
    from matting.imageio import parse_color, read_image

    if value is None:
        return parse_color("white")
    if not value.strip():
        raise InputError("--background is empty; give a colour or an image file")
    path = Path(value)
    if path.is_file():
        return read_image(path, limits).rgb
    if path.suffix.lower() in IMAGE_SUFFIXES or os.sep in value:
        raise InputError(f"{value}: no such background image")
    return parse_color(value)


def _resolve_format(out: Path, fmt: str | None) -> str:
    suffix_fmt = _SUFFIX_FORMATS.get(out.suffix.lower())
    if suffix_fmt and fmt and fmt != suffix_fmt:
        raise InputError(f"--format {fmt} conflicts with the output name {out.name}")
    return fmt or suffix_fmt or "png"


@click.command("image")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output file (one input) or folder.",
)
@click.option(
    "--output",
    "kind",
    default="rgba",
    show_default=True,
    type=click.Choice(["rgba", "alpha", "foreground", "composite"]),
    help="rgba cut-out, alpha matte, premultiplied foreground, or composite.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "webp", "jpeg"]),
    default=None,
    help="Output format; default from the output name, else png.",
)
@click.option(
    "--background",
    default=None,
    help="For composite: a colour (#00ff00, green, 0,255,0) or an image file. Default white.",
)
@click.option(
    "--plate",
    type=click.Path(path_type=Path),
    default=None,
    help="Background plate (the scene without the subject) for background-guided models.",
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Model checkpoint (.safetensors). Default: the shipped model.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--precision",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
    help="auto is fp16 on CUDA, fp32 on the CPU.",
)
@click.option(
    "--refine",
    "refine_mode",
    type=click.Choice(["topk", "band", "full", "none"]),
    default=None,
    help="Patch selection of the refiner (default: the model's).",
)
@click.option(
    "--refine-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Share of 4x4 patches refined in topk mode.",
)
@click.option(
    "--tta/--no-tta",
    default=True,
    show_default=True,
    help="Test-time augmentation the model is served with (the default model averages "
    "mirrored and rescaled coarse passes); --no-tta runs one pass: faster, a little worse.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=40_000_000,
    show_default=True,
    help="Refuse larger images (decompression-bomb guard).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def image(
    inputs: tuple[Path, ...],
    out: Path,
    kind: str,
    fmt: str | None,
    background: str | None,
    plate: Path | None,
    checkpoint: Path | None,
    device: str,
    precision: str,
    refine_mode: str | None,
    refine_fraction: float | None,
    tta: bool,
    max_pixels: int,
    quiet: bool,
) -> None:
    """Cut out the subject of each image in INPUTS (files or folders)."""
    from tqdm import tqdm

    from matting.fileio import write_bytes_atomic
    from matting.imageio import ImageLimits, encode_output, extension, read_image
    from matting.inference import load_predictor

    if background is not None and kind != "composite":
        raise InputError("--background applies only to --output composite")
    out_format = _resolve_format(out, fmt)
    if out_format == "jpeg" and kind == "rgba":
        raise InputError("jpeg cannot carry alpha; use png or webp for --output rgba")
    pairs = plan_outputs(list(inputs), out, extension(out_format))  # type: ignore[arg-type]
    limits = ImageLimits(max_pixels=max_pixels)

    bg = _background(background, limits) if kind == "composite" else None
    predictor = load_predictor(checkpoint, device, precision, tta=tta)
    if predictor.needs_background and plate is None:
        raise InputError("this model is background-guided: pass --plate with the empty scene")
    if not predictor.needs_background and plate is not None:
        raise InputError("--plate given, but this model takes no background plate")
    plate_rgb = read_image(plate, limits).rgb if plate is not None else None

    def process(src: Path, dst: Path) -> None:
        decoded = read_image(src, limits)
        if plate_rgb is not None and plate_rgb.shape != decoded.rgb.shape:
            raise InputError(
                f"{src}: image is {decoded.rgb.shape[1]}x{decoded.rgb.shape[0]} but the "
                f"plate is {plate_rgb.shape[1]}x{plate_rgb.shape[0]}"
            )
        try:
            pred = predictor.predict(decoded.rgb, plate_rgb, refine_mode, refine_fraction)  # type: ignore[arg-type]
        except RuntimeError as e:  # out of memory, above all: report it, go on
            raise MattingError(f"{src}: inference failed ({str(e).splitlines()[0]})") from None
        alpha = pred.alpha
        if decoded.alpha is not None:  # keep what the source already had transparent
            alpha = alpha * (decoded.alpha.astype("float32") / 255.0)
        data = encode_output(kind, alpha, pred.foreground, out_format, bg)  # type: ignore[arg-type]
        try:
            write_bytes_atomic(dst, data)
        except OSError as e:
            raise MattingError(f"{dst}: cannot write ({e.strerror or e})") from None

    failures = 0
    bar = tqdm(pairs, unit="image", disable=quiet or len(pairs) < 2, file=sys.stderr)
    for src, dst in bar:
        bar.set_postfix_str(src.name, refresh=False)
        try:
            process(src, dst)
        except MattingError as e:
            if len(pairs) == 1:
                raise  # one input: its own error is the whole story
            failures += 1
            tqdm.write(f"error: {e}", file=sys.stderr)
    bar.close()
    if failures:
        raise MattingError(f"{failures} of {len(pairs)} image(s) failed; the others were written")
    if not quiet:
        click.echo(f"wrote {len(pairs)} image(s) to {out}", err=True)
