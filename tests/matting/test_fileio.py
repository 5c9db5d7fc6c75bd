"""Atomic writes: ordinary permissions, and nothing half-written on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from matting.fileio import atomic_path, write_bytes_atomic


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_creates_parents_and_uses_umask(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    write_bytes_atomic(target, b"data")
    assert target.read_bytes() == b"data"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
