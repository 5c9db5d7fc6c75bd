"""`matting train --config FILE`: run one training stage described by a TOML file."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("train")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML training config (see configs/ and the README's Training section).",
)
@click.option("--steps", type=click.IntRange(min=1), help="Override the number of steps.")
@click.option(
    "--output", type=click.Path(file_okay=False, path_type=Path), help="Override the run folder."
)
@click.option("--device", help="Override the device (auto, cpu, cuda, cuda:N).")
@click.option(
    "--workers",
    type=click.IntRange(min=0, max=64),
    help="Override the number of processes that make batches ahead (0: none).",
)
@click.option("--fresh", is_flag=True, help="Ignore a saved state and start from step 0.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(
    config_path: Path,
    steps: int | None,
    output: Path | None,
    device: str | None,
    workers: int | None,
    fresh: bool,
    progress: bool,
) -> None:
    """Train (or resume training) a model; writes OUTPUT/model.safetensors."""

    from training.config import load_config
    from training.trainer import train as run_training

    cfg = load_config(config_path)
    given = {"steps": steps, "output": output, "device": device, "workers": workers}
    update = {k: v for k, v in given.items() if v is not None}
    if update:
        cfg = cfg.model_copy(update=update)
    path = run_training(cfg, progress=progress, resume=not fresh)
    click.echo(str(path))
