"""`matting eval`: score a checkpoint on a labelled dataset folder."""

from __future__ import annotations

from pathlib import Path

import click

from matting.errors import InputError


def read_split_file(path: Path) -> list[str]:
    """Image stems, one a line; blank lines and lines starting with # are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such split file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the split file is not UTF-8 text") from None
    names = [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]
    if not names:
        raise InputError(f"{path}: the split file lists no image names")
    return names


@click.command("eval")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    required=True,
    help="Dataset folder: image/ + alpha/ [+ trimap/] (matting) or images/ + masks/ "
    "(segmentation).",
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
    "--band",
    type=click.IntRange(0),
    default=7,
    show_default=True,
    help="Segmentation data: px around the mask edge left out of mse_outside_band.",
)
@click.option(
    "--split-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Text file with one image stem per line; only those images are evaluated.",
)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="Matting data: also score the blurred binarised output (blurred-mask baseline).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the full report (every image) to this JSON file.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def evaluate(
    data: Path,
    checkpoint: Path | None,
    device: str,
    precision: str,
    band: int,
    split_file: Path | None,
    baseline: bool,
    json_path: Path | None,
    quiet: bool,
) -> None:
    """Score a model on a labelled folder and print one row per image plus the means."""
    import json

    from matting.fileio import write_bytes_atomic
    from matting.inference import load_predictor
    from training.evaluate import evaluate_folder, find_dataset

    names = read_split_file(split_file) if split_file is not None else None
    find_dataset(data, names)  # a bad folder fails here, before the slow model load
    predictor = load_predictor(checkpoint, device, precision)
    if predictor.needs_background:
        raise InputError("this model is background-guided; eval has no background plates for it")
    report = evaluate_folder(
        lambda rgb: predictor.predict(rgb).alpha,
        data,
        names=names,
        band=band,
        baseline=baseline,
        progress=not quiet,
    )
    click.echo(report.to_table())
    if json_path is not None:
        doc = {"checkpoint": str(checkpoint) if checkpoint else "default", **report.to_json()}
        write_bytes_atomic(json_path, (json.dumps(doc, indent=2) + "\n").encode())
        if not quiet:
            click.echo(f"wrote {json_path}", err=True)
