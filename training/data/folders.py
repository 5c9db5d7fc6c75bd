"""Finding the files of each folder layout and pairing them by file stem."""

from __future__ import annotations

from pathlib import Path

from matting.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def image_files(folder: Path) -> dict[str, Path]:
    """stem -> path of the images directly in a folder."""
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    }


def first_existing(root: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise InputError(f"{root}: expected a sub-folder named {' or '.join(names)}")


def read_names(path: Path | None) -> set[str] | None:
    """A file of stems, one per line ('#' comments and blank lines ignored)."""
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such name list") from None
    return {s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")}


def paired(
    root: Path,
    first: tuple[str, ...],
    second: tuple[str, ...],
    include: set[str] | None = None,
    exclude: set[str] | None = None,
) -> list[tuple[str, Path, Path]]:
    """(stem, first path, second path) for stems present in both sub-folders."""
    a = image_files(first_existing(root, first))
    b = image_files(first_existing(root, second))
    missing = sorted(set(a) - set(b))
    if missing:
        raise InputError(
            f"{root}: {len(missing)} file(s) in {first[0]}/ have no match in {second[0]}/, "
            f"e.g. {missing[0]}"
        )
    stems = sorted(a)
    if include is not None:
        stems = [s for s in stems if s in include]
    if exclude is not None:
        stems = [s for s in stems if s not in exclude]
    if not stems:
        raise InputError(f"{root}: no training pairs left (check the folder and name lists)")
    return [(s, a[s], b[s]) for s in stems]


def clips(root: Path) -> list[tuple[str, Path, Path]]:
    """VideoMatte240K layout: fgr/CLIP/*.jpg with pha/CLIP/*.jpg -> one entry per frame."""
    fgr, pha = root / "fgr", root / "pha"
    if not fgr.is_dir() or not pha.is_dir():
        raise InputError(f"{root}: expected fgr/ and pha/ folders of clip sub-folders")
    frames = []
    for clip in sorted(p for p in fgr.iterdir() if p.is_dir()):
        for stem, f, a in paired(clip.parent.parent, (f"fgr/{clip.name}",), (f"pha/{clip.name}",)):
            frames.append((f"{clip.name}/{stem}", f, a))
    if not frames:
        raise InputError(f"{root}: no frames found under fgr/")
    return frames
