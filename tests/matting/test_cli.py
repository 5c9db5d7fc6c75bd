"""The `matting` command, run as a user would: a subprocess of the installed entry point."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from matting.checkpoint import save_checkpoint
from matting.config import preset
from matting.models import build_model


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matting.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_clean_failure(proc: subprocess.CompletedProcess[str], match: str) -> None:
    """Non-zero exit, one 'error:' line naming the problem, never a traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert match in lines[0], lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "rt.safetensors"
    save_checkpoint(path, build_model(preset("realtime")))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    (root / "sub").mkdir()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (33, 50, 4), dtype=np.uint8)).save(root / "sub" / "b.png")
    Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(root / "c.webp")
    (root / "notes.txt").write_text("not an image, skipped when walking the folder")
    return root


def test_version_and_help() -> None:
    v = run("--version")
    assert v.returncode == 0 and "matting, version" in v.stdout
    for cmd in ([], ["image"], ["checkpoint"], ["checkpoint", "init"], ["checkpoint", "info"]):
        h = run(*cmd, "--help")
        assert h.returncode == 0 and "Usage:" in h.stdout, cmd


@pytest.mark.parametrize("kind", ["rgba", "alpha", "foreground", "composite"])
def test_each_output_kind(kind: str, checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    proc = run("image", photos / "a.jpg", "-o", out, "--output", kind, "--checkpoint", checkpoint)
    assert proc.returncode == 0, proc.stderr
    mode = {"rgba": "RGBA", "alpha": "L", "foreground": "RGB", "composite": "RGB"}[kind]
    with Image.open(out) as im:
        assert im.mode == mode and im.size == (64, 48)


def test_folder_with_progress_and_composite_background(
    checkpoint: Path, photos: Path, tmp_path: Path
) -> None:
    bg = tmp_path / "bg.png"
    Image.new("RGB", (10, 7), (0, 0, 255)).save(bg)
    out = tmp_path / "out"
    proc = run(
        "image",
        photos,
        "-o",
        out,
        "--checkpoint",
        checkpoint,
        "--output",
        "composite",
        "--background",
        bg,
        "--format",
        "jpeg",
        "--refine",
        "band",
    )
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert written == ["a.jpg", "c.jpg", "sub/b.jpg"]
    assert "3/3" in proc.stderr  # the progress bar ran over the folder


def test_rgba_input_keeps_its_transparency(checkpoint: Path, tmp_path: Path) -> None:
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[:, 16:, 3] = 255  # left half fully transparent in the source
    Image.fromarray(rgba).save(tmp_path / "in.png")
    proc = run(
        "image",
        tmp_path / "in.png",
        "-o",
        tmp_path / "o.png",
        "--output",
        "alpha",
        "--checkpoint",
        checkpoint,
    )
    assert proc.returncode == 0, proc.stderr
    alpha = np.asarray(Image.open(tmp_path / "o.png"))
    assert int(alpha[:, :16].max()) == 0


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def test_bad_inputs_fail_cleanly(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    jpeg = (photos / "a.jpg").read_bytes()
    cases = {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "notes.txt": (b"just some text\n", "not a recognised image"),
        "zero.png": (b"", "empty input"),
        "huge.png": (_png_header_only(30000, 30000), "30000x30000"),
    }
    for name, (data, match) in cases.items():
        (tmp_path / name).write_bytes(data)
        proc = run("image", tmp_path / name, "-o", tmp_path / "o.png", "--checkpoint", checkpoint)
        assert_clean_failure(proc, match)
        assert not (tmp_path / "o.png").exists()


def test_bad_checkpoints_fail_cleanly(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(checkpoint.read_bytes()[:4096])
    proc = run("image", photos / "a.jpg", "-o", tmp_path / "o.png", "--checkpoint", corrupt)
    assert_clean_failure(proc, "corrupt")

    from tests.matting.test_checkpoint import _rewrite

    other = tmp_path / "other-arch.safetensors"
    weights = {k: v.contiguous() for k, v in build_model(preset("quality")).state_dict().items()}
    _rewrite(checkpoint, other, weights)
    proc = run("image", photos / "a.jpg", "-o", tmp_path / "o.png", "--checkpoint", other)
    assert_clean_failure(proc, "another architecture")


def test_usage_errors_fail_cleanly(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    ck = ("--checkpoint", checkpoint)
    assert_clean_failure(
        run("image", tmp_path / "missing.jpg", "-o", tmp_path, *ck), "no such file"
    )
    assert_clean_failure(
        run("image", photos / "a.jpg", "-o", tmp_path / "o.jpg", "--output", "rgba", *ck),
        "cannot carry alpha",
    )
    assert_clean_failure(
        run("image", photos / "a.jpg", "-o", tmp_path / "o.png", "--background", "red", *ck),
        "only to --output composite",
    )
    assert_clean_failure(
        run("image", photos / "a.jpg", "-o", tmp_path / "o.png", "--device", "cuda:7", *ck),
        "cuda",
    )
    assert_clean_failure(
        run(
            "image",
            photos / "a.jpg",
            "-o",
            tmp_path / "o.png",
            "--precision",
            "fp16",
            "--device",
            "cpu",
            *ck,
        ),
        "fp16 needs a CUDA device",
    )


def test_one_bad_file_in_a_folder_loses_nothing(checkpoint: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (20, 20), (10, 20, 30)).save(src / "good.png")
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    proc = run("image", src, "-o", tmp_path / "out", "--checkpoint", checkpoint, "-q")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "bad.png" in proc.stderr and "1 of 2 image(s) failed" in proc.stderr
    assert (tmp_path / "out" / "good.png").exists()
    assert not (tmp_path / "out" / "bad.png").exists()


def test_checkpoint_init_and_info(tmp_path: Path) -> None:
    out = tmp_path / "q.safetensors"
    assert run("checkpoint", "init", "--preset", "resnet18", "-o", out).returncode == 0
    info = run("checkpoint", "info", out)
    assert info.returncode == 0 and '"backbone": "resnet18"' in info.stdout
    assert_clean_failure(
        run("checkpoint", "init", "--preset", "giant", "-o", out), "unknown model preset"
    )


def test_never_overwrites_inputs_and_skips_its_output_folder(
    checkpoint: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(src)
    before = src.read_bytes()
    proc = run("image", src, "-o", src, "--checkpoint", checkpoint)
    assert_clean_failure(proc, "overwrite an input")
    assert src.read_bytes() == before

    folder = tmp_path / "shoot"
    folder.mkdir()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(folder / "x.jpg")
    for _ in range(2):  # the second run must not treat the first run's outputs as inputs
        proc = run("image", folder, "-o", folder / "out", "--checkpoint", checkpoint, "-q")
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (folder / "out").rglob("*")) == ["x.png"]


def test_missing_input_is_named_even_with_an_image_suffix_output(
    checkpoint: Path, tmp_path: Path
) -> None:
    proc = run("image", tmp_path / "gone.jpg", "-o", tmp_path / "o.png", "--checkpoint", checkpoint)
    assert_clean_failure(proc, "gone.jpg: no such file")


def test_background_errors(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    args = (
        "image",
        photos / "a.jpg",
        "-o",
        tmp_path / "o.png",
        "--output",
        "composite",
        "--checkpoint",
        checkpoint,
    )
    broken = tmp_path / "bg.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert_clean_failure(run(*args, "--background", broken), "bg.jpg")
    assert_clean_failure(run(*args, "--background", tmp_path / "nope.png"), "no such background")
    assert_clean_failure(run(*args, "--background", ""), "empty")
    assert_clean_failure(run(*args, "--background", "notacolour"), "notacolour")


def test_background_plate_models(tmp_path: Path) -> None:
    ck = tmp_path / "bgm.safetensors"
    save_checkpoint(ck, build_model(preset("realtime-bgm")))
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "plate.png")
    Image.new("RGB", (10, 10)).save(tmp_path / "small.png")
    base = ("image", tmp_path / "a.png", "-o", tmp_path / "out.png", "--checkpoint", ck)
    ok = run(*base, "--plate", tmp_path / "plate.png")
    assert ok.returncode == 0, ok.stderr
    assert Image.open(tmp_path / "out.png").size == (56, 40)
    assert_clean_failure(run(*base), "pass --plate")
    assert_clean_failure(run(*base, "--plate", tmp_path / "small.png"), "plate is 10x10")


def test_plate_refused_by_a_plain_model(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    proc = run(
        "image",
        photos / "a.jpg",
        "-o",
        tmp_path / "o.png",
        "--checkpoint",
        checkpoint,
        "--plate",
        photos / "a.jpg",
    )
    assert_clean_failure(proc, "takes no background plate")


def test_unwritable_outputs_fail_cleanly(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder is needed")
    proc = run("image", photos / "a.jpg", "-o", blocker / "o.png", "--checkpoint", checkpoint)
    assert_clean_failure(proc, "file.txt")
    proc = run("checkpoint", "init", "-o", blocker / "ck.safetensors")
    assert_clean_failure(proc, "file.txt")
