"""The configs that train the shipped model (and the learning curve's) load, and none
of them lets a held-out photo into training: not as a training image, and not as a
background."""

from __future__ import annotations

from pathlib import Path

import pytest

from matting.checkpoint import read_checkpoint_info
from matting.inference import DEFAULT_CHECKPOINT
from training.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "default").glob("*.toml")) + sorted(
    (ROOT / "configs" / "learning_curve").glob("*.toml")
)
HELD_OUT = (ROOT / "configs" / "splits" / "human-seg-heldout.txt").resolve()


def test_there_are_shipped_configs() -> None:
    assert {p.stem for p in CONFIGS} >= {"pretrain", "teacher", "student", "finetune"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_held_out_split_is_never_trained_on(path: Path) -> None:
    cfg = load_config(path)  # paths are resolved, not opened: no data needed
    for src in cfg.data:
        if src.path is not None and src.path.name == "human-seg":
            assert src.exclude is not None and src.exclude.resolve() == HELD_OUT, src
        if src.backgrounds is not None and src.backgrounds.name == "human-seg":
            assert src.backgrounds_exclude is not None, src
            assert src.backgrounds_exclude.resolve() == HELD_OUT, src


def test_shipped_model_has_the_student_config() -> None:
    """The shipped checkpoint is the student stage's output: retraining with the
    shipped configs gives a model served the same way (resolution, mirror averaging)."""
    student = load_config(ROOT / "configs" / "default" / "student.toml")
    assert read_checkpoint_info(DEFAULT_CHECKPOINT).config == student.model_config_()
