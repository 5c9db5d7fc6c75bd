"""The learning curve's training subsets: nested, of the stated sizes, and free of
held-out photos (configs/learning_curve)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPLITS = ROOT / "configs" / "splits"


def _names(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {s.strip() for s in lines if s.strip() and not s.startswith("#")}


def _make_splits():
    path = ROOT / "configs" / "learning_curve" / "make_splits.py"
    spec = importlib.util.spec_from_file_location("make_splits", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_subsets_are_nested_sized_and_leave_the_held_out_split_alone() -> None:
    stems = [f"{i:03d}" for i in range(1, 41)]
    held = {f"{i:03d}" for i in range(8, 41, 8)}
    out = _make_splits().subsets(stems, held, (5, 12), seed=3)
    assert [len(out[5]), len(out[12])] == [5, 12]
    assert set(out[5]) < set(out[12])
    assert not set(out[12]) & held
    assert out == _make_splits().subsets(list(reversed(stems)), held, (5, 12), seed=3)
    assert out != _make_splits().subsets(stems, held, (5, 12), seed=4)


def test_committed_subsets() -> None:
    held = _names(SPLITS / "human-seg-heldout.txt")
    small, large = (
        _names(SPLITS / "human-seg-train-050.txt"),
        _names(SPLITS / "human-seg-train-101.txt"),
    )
    assert (len(small), len(large)) == (50, 101)
    assert small < large
    assert not large & held
