"""The local storage: generated names only, atomic writes, ranges."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.jobs.storage import LocalStorage, StorageError, check_name, new_name, read_range


def test_names_are_made_here_and_nothing_else_is_accepted(tmp_path: Path) -> None:
    a, b = new_name(".mp4"), new_name(".mp4")
    assert a != b and check_name(a) == a and a.endswith(".mp4") and len(a) == 36
    store = LocalStorage(tmp_path / "objects")
    for bad in ("../etc/passwd", "x.mp4", a.upper(), a + "/", "/" + a, "", a[:-4] + ".exe!"):
        with pytest.raises(StorageError):
            store.local_path(bad)
    with pytest.raises(StorageError, match="extension"):
        new_name(".sh")


def test_write_is_atomic_and_replaces(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    name = new_name(".zip")
    with store.writer(name) as f:
        f.write(b"first")
    assert store.exists(name) and store.size(name) == 5
    with pytest.raises(RuntimeError), store.writer(name) as f:
        f.write(b"half of a second version")
        raise RuntimeError("killed mid-write")
    # The failed write left the old object and no temporary file behind.
    with store.open(name) as f:
        assert f.read() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    with store.writer(name) as f:
        f.write(b"second")
    assert store.open(name).read() == b"second"
    store.delete(name)
    store.delete(name)  # deleting twice is fine
    assert not store.exists(name)
    with pytest.raises(StorageError, match="no object"):
        store.size(name)


def test_read_range(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    name = new_name(".mov")
    with store.writer(name) as f:
        f.write(bytes(range(100)))
    assert read_range(store, name, 0, 3) == bytes([0, 1, 2, 3])
    assert read_range(store, name, 98) == bytes([98, 99])
    assert read_range(store, name, 95, 1000) == bytes(range(95, 100))
    for start, end in ((100, None), (-1, 5), (10, 5)):
        with pytest.raises(StorageError, match="outside"):
            read_range(store, name, start, end)
