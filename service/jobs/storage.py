"""Where job inputs and outputs live: a small interface, a local directory by default.

Names are made here (a random hex id plus an extension from a fixed list) and
never taken from client input, so a request cannot steer a path. Writes go to a
temporary file that is renamed into place only when complete: a worker killed
mid-write leaves no truncated output under a real name, and a retried chunk can
simply write again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from matting.errors import InputError

EXTENSIONS = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".zip", ".png", ".json"})
_NAME = re.compile(r"^[0-9a-f]{32}(\.[a-z0-9]{1,8})?$")


class StorageError(InputError):
    """A name that this storage did not make, or an object that is not there."""


def new_name(extension: str) -> str:
    """A fresh object name: 32 random hex digits and one of EXTENSIONS."""
    if extension not in EXTENSIONS:
        raise StorageError(f"extension {extension!r} is not one of {sorted(EXTENSIONS)}")
    return secrets.token_hex(16) + extension


def derived_name(seed: str, extension: str) -> str:
    """A name fixed by a service-made seed (e.g. a job id and a chunk number), so that a
    worker resuming a job finds what an earlier worker stored under the same seed."""
    if extension not in EXTENSIONS:
        raise StorageError(f"extension {extension!r} is not one of {sorted(EXTENSIONS)}")
    return hashlib.sha256(seed.encode()).hexdigest()[:32] + extension


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise StorageError(f"{name!r} is not a storage name")
    return name


class Storage(Protocol):
    def writer(self, name: str) -> contextlib.AbstractContextManager[BinaryIO]: ...
    def open(self, name: str) -> BinaryIO: ...
    def size(self, name: str) -> int: ...
    def exists(self, name: str) -> bool: ...
    def delete(self, name: str) -> None: ...
    def local_path(self, name: str) -> Path: ...
    def put_file(self, name: str, source: Path) -> None: ...
    def scratch(self) -> contextlib.AbstractContextManager[Path]: ...
    def older_than(self, age_s: float) -> list[str]: ...


class LocalStorage:
    """Objects as files in one directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def local_path(self, name: str) -> Path:
        return self.root / check_name(name)

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        """A file to write `name` through; it appears under its name only if the
        block ends without an exception (then it replaces any earlier version)."""
        target = self.local_path(name)
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_file(self, name: str, source: Path) -> None:
        """Move a finished local file in under `name` (atomically, replacing any earlier one)."""
        target = self.local_path(name)
        try:
            os.replace(source, target)
        except OSError:  # another filesystem: copy beside the target, then rename
            with self.writer(name) as f, open(source, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
            os.unlink(source)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A private directory on the storage's filesystem for files a worker is still
        writing (PyAV writes to paths); removed on exit, whatever happened."""
        path = Path(tempfile.mkdtemp(prefix=".scratch-", dir=self.root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self.local_path(name), "rb")
        except FileNotFoundError:
            raise StorageError(f"no object {name}") from None

    def size(self, name: str) -> int:
        try:
            return self.local_path(name).stat().st_size
        except FileNotFoundError:
            raise StorageError(f"no object {name}") from None

    def exists(self, name: str) -> bool:
        return self.local_path(name).is_file()

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.local_path(name).unlink()

    def older_than(self, age_s: float) -> list[str]:
        """Names of the objects last written more than age_s ago. Leftovers of crashed
        writers (temporary files and scratch directories) that old are removed here."""
        cutoff = time.time() - age_s
        names = []
        for entry in os.scandir(self.root):
            try:
                old = entry.stat(follow_symlinks=False).st_mtime < cutoff
            except FileNotFoundError:
                continue
            if not old:
                continue
            if _NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                names.append(entry.name)
            elif entry.name.startswith((".part-", ".scratch-")):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return names


def read_range(storage: Storage, name: str, start: int, end: int | None = None) -> bytes:
    """Bytes [start, end] of an object (end inclusive, as in an HTTP Range header;
    None means to the end). Raises StorageError for a range outside the object."""
    size = storage.size(name)
    last = size - 1 if end is None else min(end, size - 1)
    if start < 0 or start > last:
        raise StorageError(f"range {start}-{end} is outside {name} ({size} bytes)")
    with storage.open(name) as f:
        f.seek(start)
        return f.read(last - start + 1)
