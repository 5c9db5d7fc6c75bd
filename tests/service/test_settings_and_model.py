"""Settings from the environment, API-key matching, and the default model's
one-time ONNX export into the cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from matting.errors import InputError
from service.auth import key_matches
from service.model import default_onnx_dir, load_service_backend
from service.settings import Settings


def test_settings_read_the_matting_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATTING_MAX_BATCH_SIZE", "3")
    monkeypatch.setenv("MATTING_WARMUP_SIZES", '["1920x1080", "64x32"]')
    monkeypatch.setenv("MATTING_API_KEYS", " a, b ,,")
    monkeypatch.setenv("MAX_BATCH_SIZE", "7")  # no prefix: not ours
    s = Settings()
    assert s.max_batch_size == 3
    assert s.warmup_shapes() == [(1080, 1920), (32, 64)]
    assert s.keys() == [b"a", b"b"]
    assert "a, b" not in repr(s)  # secrets stay out of logs


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MATTING_MAX_BATCH_SIZE", "0"),
        ("MATTING_WARMUP_SIZES", '["big"]'),
        ("MATTING_BACKEND", "tensorflow"),
        ("MATTING_PORT", "70000"),
    ],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("MATTING_").lower()):
        Settings()


def test_keys_file(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_text("one\n  two  \n\n")
    assert Settings(api_keys_file=f).keys() == [b"one", b"two"]
    assert Settings().keys() == []
    with pytest.raises(InputError, match="MATTING_API_KEYS_FILE"):
        Settings(api_keys_file=tmp_path / "missing").keys()
    # Auth asked for but no key given: an empty secret must not turn auth off.
    (tmp_path / "blank").write_text("\n  \n")
    with pytest.raises(InputError, match="MATTING_API_KEYS_FILE is set but holds no API key"):
        Settings(api_keys_file=tmp_path / "blank").keys()
    with pytest.raises(InputError, match="MATTING_API_KEYS is set but holds no API key"):
        Settings(api_keys=" , ").keys()


def test_key_matches() -> None:
    keys = [b"alpha", b"beta"]
    assert key_matches(b"beta", keys) and key_matches(b"alpha", keys)
    assert not key_matches(b"alph", keys) and not key_matches(b"", keys)
    assert not key_matches(b"beta", [])


def test_default_model_is_exported_once_and_a_damaged_cache_is_redone(tmp_path: Path) -> None:
    logs: list[str] = []
    settings = Settings(cache_dir=tmp_path, device="cpu")
    backend = load_service_backend(settings, logs.append)
    assert (backend.info.name, backend.info.device, backend.info.precision) == (
        "onnxruntime",
        "cpu",
        "fp32",
    )
    [export_dir] = tmp_path.glob("default-onnx-*")
    assert any("first start only" in m for m in logs)
    stamp = os.stat(export_dir / "manifest.json").st_mtime_ns

    logs.clear()
    assert default_onnx_dir(tmp_path, logs.append) == export_dir
    load_service_backend(settings, logs.append)
    assert logs == [] and os.stat(export_dir / "manifest.json").st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [export_dir.name]  # no temp left over

    with open(export_dir / "model.fp32.onnx", "r+b") as f:  # damage the graph
        f.seek(100)
        f.write(b"\xff" * 16)
    backend = load_service_backend(settings, logs.append)
    assert any("exporting again" in m for m in logs)
    assert backend.info.name == "onnxruntime"
    assert backend.info.model.test_time_augmentation  # the shipped model's averaging


def test_default_model_without_tta_gets_its_own_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATTING_TTA", "false")
    settings = Settings(cache_dir=tmp_path, device="cpu")
    assert not settings.tta
    backend = load_service_backend(settings, lambda _m: None)
    assert not backend.info.model.test_time_augmentation
    [export_dir] = tmp_path.glob("default-onnx-*")
    assert export_dir.name.endswith("-no-tta")


def test_png_level_trades_cpu_for_bytes() -> None:
    import io

    import numpy as np
    from PIL import Image

    from matting.imageio import encode_output

    rng = np.random.default_rng(0)
    alpha = np.clip(rng.normal(0.5, 0.3, (64, 64)), 0, 1).astype(np.float32)
    fg = rng.random((64, 64, 3), dtype=np.float32)
    fast, small = (encode_output("rgba", alpha, fg, "png", png_level=lvl) for lvl in (1, 9))
    assert fast != small and len(small) <= len(fast)
    for data in (fast, small):  # both decode to the same pixels
        np.testing.assert_array_equal(
            np.asarray(Image.open(io.BytesIO(data))), np.asarray(Image.open(io.BytesIO(fast)))
        )
    with pytest.raises(ValueError, match="png_level"):
        encode_output("rgba", alpha, fg, "png", png_level=10)
