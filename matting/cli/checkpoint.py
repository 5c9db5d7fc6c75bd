"""`matting checkpoint`: make and inspect checkpoint files."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def checkpoint() -> None:
    """Create and inspect checkpoint files."""


@checkpoint.command("init")
@click.option(
    "--preset",
    "preset_name",
    default="realtime",
    show_default=True,
    help="Model variant: realtime (MobileNetV2), lite0 (EfficientNet-Lite0, the shipped "
    "model's backbone), lite1 (EfficientNet-Lite1), quality (ResNet-50), resnet18, "
    "resnet34, realtime-bgm, quality-bgm.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write (.safetensors).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initialisation.")
def init(preset_name: str, out: Path, seed: int) -> None:
    """Write a freshly initialised (untrained) checkpoint, e.g. to start training."""
    import torch

    from matting.checkpoint import save_checkpoint
    from matting.config import preset
    from matting.errors import MattingError
    from matting.models import build_model

    try:
        config = preset(preset_name)
    except ValueError as e:
        raise MattingError(str(e)) from None
    torch.manual_seed(seed)
    save_checkpoint(
        out, build_model(config), {"trained": False, "seed": seed, "preset": preset_name}
    )
    click.echo(f"wrote untrained {preset_name} checkpoint to {out}")


@checkpoint.command("info")
@click.argument("path", type=click.Path(path_type=Path))
def info(path: Path) -> None:
    """Print a checkpoint's format version, model config and metadata as JSON."""
    from matting.checkpoint import read_checkpoint_info

    meta = read_checkpoint_info(path)
    click.echo(
        json.dumps(
            {
                "format_version": meta.format_version,
                "config": meta.config.model_dump(mode="json"),
                "metadata": meta.metadata,
            },
            indent=2,
        )
    )
