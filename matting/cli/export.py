"""`matting export onnx|tensorrt`: checkpoints to gated, manifested engines."""

from __future__ import annotations

from pathlib import Path

import click

from matting.errors import ExportError


@click.group("export")
def export() -> None:
    """Export a checkpoint to ONNX, or an ONNX export to a TensorRT engine."""


@export.command("onnx")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Checkpoint to export (default: the shipped default model).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--precision",
    "precisions",
    type=click.Choice(["fp32", "fp16"]),
    multiple=True,
    default=("fp32", "fp16"),
    show_default=True,
    help="Repeat for several.",
)
@click.option(
    "--dense/--no-dense",
    default=False,
    show_default=True,
    help="Also export the dense-refinement graph (for `matting bench`).",
)
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True)
@click.option(
    "--tta/--no-tta",
    default=True,
    show_default=True,
    help="Keep the model's test-time augmentation (mirror and scale averaging) in the "
    "graphs; --no-tta exports one coarse pass.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the manifest path.")
def onnx(
    checkpoint: Path | None,
    out: Path,
    precisions: tuple[str, ...],
    dense: bool,
    opset: int,
    tta: bool,
    quiet: bool,
) -> None:
    """Trace, check (onnx.checker, ONNX Runtime parity) and write OUT/manifest.json."""
    from export.onnx_export import export_onnx
    from matting.inference import default_checkpoint

    def log(msg: str) -> None:
        if not quiet:
            click.echo(msg, err=True)

    manifest = export_onnx(
        checkpoint or default_checkpoint(),
        out,
        precisions=precisions,  # type: ignore[arg-type]
        variants=("sparse", "dense") if dense else ("sparse",),
        opset=opset,
        log=log,
        tta=tta,
    )
    for a in manifest.artifacts:
        worst = a.max_alpha_error
        log(f"{a.file}: {a.precision} {a.variant}, max alpha error {worst:.2e}, sha256 {a.sha256}")
    click.echo(str(out / "manifest.json"))


@export.command("tensorrt")
@click.option(
    "--onnx",
    "onnx_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="An ONNX export directory (or its manifest.json).",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    help="name:BxHxW-BxHxW-BxHxW (min-opt-max); repeat. Default: 512, hd and 4k, batch 1-8.",
)
@click.option("--max-batch", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--fp16/--fp32", default=True, show_default=True)
@click.option("--workspace-gib", type=click.FloatRange(min=0.25), default=8.0, show_default=True)
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Timing cache file, read if present and updated (default: OUT/timing.cache).",
)
def tensorrt(
    onnx_dir: Path,
    out: Path,
    profiles: tuple[str, ...],
    max_batch: int,
    fp16: bool,
    workspace_gib: float,
    timing_cache: Path | None,
) -> None:
    """Build a TensorRT engine (needs tensorrt and an NVIDIA GPU), gate it, extend the manifest."""
    from export import tensorrt as trt_export

    try:
        chosen = (
            tuple(trt_export.parse_profile(p) for p in profiles)
            if profiles
            else trt_export.default_profiles(max_batch)
        )
    except ValueError as e:
        raise ExportError(str(e)) from None
    root = onnx_dir if onnx_dir.is_dir() else onnx_dir.parent
    path = trt_export.build_engine(
        root,
        onnx_file=None,
        out_dir=out,
        profiles=chosen,
        fp16=fp16,
        workspace_gib=workspace_gib,
        timing_cache=timing_cache or out / "timing.cache",
    )
    click.echo(str(path))
