"""`matting bench`: latency and throughput of each available backend."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click


def _sizes(text: str) -> list[tuple[int, int]]:
    """ "512x512,1920x1080" (WIDTHxHEIGHT) -> [(h, w), ...]."""
    out = []
    for part in text.split(","):
        try:
            w, h = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise click.BadParameter(f"{part!r} is not WIDTHxHEIGHT") from None
        if w < 1 or h < 1:
            raise click.BadParameter(f"{part!r} must be positive")
        out.append((h, w))
    return out


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers") from None
    if any(v < 1 for v in values):
        raise click.BadParameter("batch sizes must be >= 1")
    return values


@click.command("bench")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--export-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="An ONNX/TensorRT export with sparse and dense graphs "
    "(default: export the checkpoint to a temporary folder first).",
)
@click.option("--backends", default="torch,onnxruntime,tensorrt", show_default=True)
@click.option("--sizes", default="512x512,1920x1080,3840x2160", show_default=True)
@click.option("--batches", default="1,8", show_default=True)
@click.option("--precisions", default="fp32,fp16", show_default=True)
@click.option("--refine", default="sparse,dense", show_default=True)
@click.option(
    "--fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    help="Share of 4x4 patches refined in sparse mode (default: the model's own).",
)
@click.option("--rounds", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0.0),
    default=20.0,
    show_default=True,
    help="A configuration whose warm-up takes longer is timed once; larger batches are skipped.",
)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch and ORT.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bench/bench.json"), show_default=True)  # fmt: skip
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("bench/bench.png"), show_default=True)  # fmt: skip
def bench(
    checkpoint: Path | None,
    export_dir: Path | None,
    backends: str,
    sizes: str,
    batches: str,
    precisions: str,
    refine: str,
    fraction: float | None,
    rounds: int,
    max_seconds: float,
    threads: int | None,
    json_path: Path,
    plot_path: Path,
) -> None:
    """Time Backend.infer (host uint8 in, host float32 out; no decode/encode)."""
    import importlib.util

    import torch

    from export.bench import load_for_bench, plot, run_bench, sparse_dense_ratios, write_report

    if threads:
        torch.set_num_threads(threads)
    names = [b.strip() for b in backends.split(",") if b.strip()]
    unknown = set(names) - {"torch", "onnxruntime", "tensorrt"}
    if unknown:
        raise click.BadParameter(f"unknown backends {sorted(unknown)}", param_hint="--backends")
    if "tensorrt" in names and not (
        importlib.util.find_spec("tensorrt") and torch.cuda.is_available()
    ):
        click.echo("tensorrt: skipped (needs the tensorrt package and an NVIDIA GPU)", err=True)
        names.remove("tensorrt")
    precs = [p.strip() for p in precisions.split(",")]
    refines = [r.strip() for r in refine.split(",")]
    with tempfile.TemporaryDirectory(prefix="matting-bench-") as tmp:
        if export_dir is None and set(names) & {"onnxruntime", "tensorrt"}:
            from export.onnx_export import export_onnx
            from matting.inference import default_checkpoint

            export_dir = Path(tmp)
            click.echo(f"exporting to {export_dir} (parity-gated)...", err=True)
            export_onnx(
                checkpoint or default_checkpoint(),
                export_dir,
                precisions=[p for p in precs if p in ("fp32", "fp16")],  # type: ignore[misc]
                variants=[r for r in refines if r in ("sparse", "dense")],  # type: ignore[misc]
            )
        loaded = load_for_bench(export_dir, checkpoint, names, precs, refines, threads)
        results = run_bench(
            loaded,
            _sizes(sizes),
            _ints(batches),
            fraction=fraction,
            rounds=rounds,
            max_seconds=max_seconds,
            log=lambda m: click.echo(m, err=True),
        )
        write_report(results, json_path, {"fraction": fraction, "rounds": rounds})
        plot(results, plot_path)
    for r in results:
        med = r.median
        shown = r.skipped or (
            f"{med * 1000:9.1f} ms  {r.config.batch / med:8.2f} img/s  ({len(r.seconds)} runs)"
            if med is not None
            else "no result"
        )
        click.echo(f"{r.config.label:<44} k={r.num_patches:<7} {shown}")
    for row in sparse_dense_ratios(results):
        click.echo(
            f"sparse/dense {row['backend']} {row['precision']} {row['width']}x{row['height']} "
            f"b{row['batch']} k={row['num_patches']}: {row['sparse_median_seconds']:.3f} s / "
            f"{row['dense_median_seconds']:.3f} s = {row['ratio']:.1%}"
        )
    click.echo(f"wrote {json_path} and {plot_path}")
