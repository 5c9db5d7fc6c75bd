"""Tests for matting.imageio: decoding with limits, and encoding of outputs.

Every input is made here with Pillow (or, where Pillow cannot write it, by
hand-assembling PNG chunks), so nothing is read from disk or the network.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from matting import imageio
from matting.compositing import to_uint8
from matting.errors import InputError, InputTooLargeError
from matting.imageio import (
    DecodedImage,
    ImageLimits,
    decode_image,
    default_format,
    encode_output,
    extension,
    parse_color,
    read_image,
    resize_cover,
)

# --------------------------------------------------------------------------- helpers


def _save(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)


def _raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG from already filtered scanlines (each row starts with filter byte 0)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _header_only_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height, with a one-byte IDAT: a bomb."""
    return _raw_png(width, height, 8, 2, b"\x00")


def _gradient_rgb(h: int = 12, w: int = 16) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 15, y * 20, (x + y) * 7], axis=-1).astype(np.uint8)


def _quadrants(w: int = 64, h: int = 32) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2 :] = (0, 255, 0)
    a[h // 2 :, : w // 2] = (0, 0, 255)
    a[h // 2 :, w // 2 :] = (255, 255, 255)
    return Image.fromarray(a, "RGB")


_NAMED = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


def _quadrant_names(rgb: np.ndarray) -> list[str]:
    """Colour names at the centres of the TL, TR, BL, BR quadrants."""
    h, w = rgb.shape[:2]
    names = []
    for y, x in (
        (h // 4, w // 4),
        (h // 4, 3 * w // 4),
        (3 * h // 4, w // 4),
        (3 * h // 4, 3 * w // 4),
    ):
        px = rgb[y, x].astype(int)
        names.append(min(_NAMED, key=lambda n: int(np.abs(px - _NAMED[n]).sum())))
    return names


def _assert_well_formed(d: DecodedImage, h: int, w: int) -> None:
    assert d.rgb.shape == (h, w, 3)
    assert d.rgb.dtype == np.uint8
    assert d.rgb.flags.c_contiguous
    if d.alpha is not None:
        assert d.alpha.shape == (h, w)
        assert d.alpha.dtype == np.uint8
        assert d.alpha.flags.c_contiguous


# --------------------------------------------------------------------------- decode: types


def test_decode_png_rgb_exact() -> None:
    a = _gradient_rgb()
    d = decode_image(_save(Image.fromarray(a), "PNG"))
    _assert_well_formed(d, 12, 16)
    assert d.format == "PNG"
    assert d.alpha is None
    np.testing.assert_array_equal(d.rgb, a)


def test_decode_jpeg_rgb() -> None:
    d = decode_image(_save(Image.new("RGB", (20, 10), (200, 40, 90)), "JPEG", quality=95))
    _assert_well_formed(d, 10, 20)
    assert d.format == "JPEG"
    assert d.alpha is None
    assert np.abs(d.rgb.astype(int) - (200, 40, 90)).max() <= 4


def test_decode_mpo_is_reported_as_jpeg() -> None:
    first = Image.new("RGB", (16, 8), (10, 200, 30))
    data = _save(first, "MPO", save_all=True, append_images=[Image.new("RGB", (16, 8), "blue")])
    assert Image.open(io.BytesIO(data)).format == "MPO"  # what Pillow calls it
    d = decode_image(data)
    assert d.format == "JPEG"
    _assert_well_formed(d, 8, 16)
    assert np.abs(d.rgb.astype(int) - (10, 200, 30)).max() <= 4  # the first frame


def test_decode_webp_lossless_rgb_and_rgba() -> None:
    a = _gradient_rgb()
    d = decode_image(_save(Image.fromarray(a), "WEBP", lossless=True))
    assert d.format == "WEBP"
    assert d.alpha is None
    np.testing.assert_array_equal(d.rgb, a)

    alpha = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (12, 1))
    rgba = np.dstack([a, alpha])
    d = decode_image(_save(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True, exact=True))
    _assert_well_formed(d, 12, 16)
    np.testing.assert_array_equal(d.alpha, alpha)
    np.testing.assert_array_equal(d.rgb, a)


def test_decode_rgba_png_splits_alpha() -> None:
    a = _gradient_rgb()
    alpha = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (12, 1))
    d = decode_image(_save(Image.fromarray(np.dstack([a, alpha]), "RGBA"), "PNG"))
    _assert_well_formed(d, 12, 16)
    np.testing.assert_array_equal(d.rgb, a)
    np.testing.assert_array_equal(d.alpha, alpha)


def test_decode_greyscale_l_and_1bit() -> None:
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1))
    d = decode_image(_save(Image.fromarray(grey, "L"), "PNG"))
    _assert_well_formed(d, 4, 16)
    assert d.alpha is None
    for c in range(3):
        np.testing.assert_array_equal(d.rgb[..., c], grey)

    bits = Image.fromarray(grey > 127).convert("1")
    d = decode_image(_save(bits, "PNG"))
    np.testing.assert_array_equal(d.rgb[..., 0], np.where(grey > 127, 255, 0))


def test_decode_la_gives_alpha() -> None:
    grey = np.full((4, 6), 90, np.uint8)
    alpha = np.tile(np.array([0, 50, 100, 150, 200, 255], np.uint8), (4, 1))
    la = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)])
    d = decode_image(_save(la, "PNG"))
    _assert_well_formed(d, 4, 6)
    np.testing.assert_array_equal(d.rgb, np.full((4, 6, 3), 90))
    np.testing.assert_array_equal(d.alpha, alpha)


def test_decode_palette_without_and_with_transparency() -> None:
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = Image.fromarray(idx, "P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3))
    expected = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)[idx]

    d = decode_image(_save(pal, "PNG"))
    assert d.alpha is None
    np.testing.assert_array_equal(d.rgb, expected)

    d = decode_image(_save(pal, "PNG", transparency=1))  # index 1 (green) transparent
    _assert_well_formed(d, 2, 3)
    np.testing.assert_array_equal(d.rgb, expected)
    np.testing.assert_array_equal(d.alpha, np.where(idx == 1, 0, 255))


def test_decode_16bit_greyscale_scales_instead_of_clipping() -> None:
    values = np.array([[0, 128, 257, 32896, 40000, 65280, 65534, 65535]], np.uint16)
    data = _save(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really 16-bit on disk
    d = decode_image(data)
    _assert_well_formed(d, 1, 8)
    assert d.alpha is None
    grey = d.rgb[0, :, 0].tolist()
    assert grey[0] == 0
    assert grey[-1] == 255  # 65535 -> 255
    assert grey[3] == 128  # 32896 -> 128 (convert("L") would give 255)
    assert grey == np.round(values[0] / 257).astype(int).tolist()
    np.testing.assert_array_equal(d.rgb[..., 0], d.rgb[..., 2])


def test_decode_16bit_gradient_is_monotonic_and_full_range() -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(1, -1)
    d = decode_image(_save(Image.fromarray(ramp), "PNG"))
    grey = d.rgb[0, :, 0].astype(int)
    assert grey[0] == 0
    assert grey[-1] == 255
    assert np.all(np.diff(grey) >= 0)
    np.testing.assert_array_equal(grey, np.arange(256))


@pytest.mark.parametrize("mode", ["I", "I;16B"])
def test_grey16_variants_of_pillow_modes(mode: str) -> None:
    # Older Pillow presented 16-bit PNGs as "I"; big-endian buffers are "I;16B".
    values = np.array([[0, 32896, 65535]], np.int64)
    if mode == "I":
        im = Image.fromarray(values.astype(np.int32), "I")
    else:
        im = Image.frombytes("I;16B", (3, 1), values.astype(">u2").tobytes())
    rgb, alpha = imageio._to_arrays(im)
    assert alpha is None
    assert rgb[0, :, 0].tolist() == [0, 128, 255]


def test_decode_16bit_greyscale_colour_key_gives_alpha() -> None:
    values = np.array([[0, 1000, 65535]], np.uint16)
    d = decode_image(_save(Image.fromarray(values), "PNG", transparency=1000))
    assert d.alpha is not None
    assert d.alpha.tolist() == [[255, 0, 255]]


def test_decode_16bit_rgb_and_rgba_png() -> None:
    # Pillow cannot write these, so the scanlines are assembled by hand.
    px = [(65535, 0, 32896), (0, 65535, 256)]
    rows = b"\x00" + b"".join(struct.pack(">HHH", *p) for p in px)
    d = decode_image(_raw_png(2, 1, 16, 2, rows))
    _assert_well_formed(d, 1, 2)
    assert d.alpha is None
    assert d.rgb.tolist() == [[[255, 0, 128], [0, 255, 1]]]

    rows = b"\x00" + b"".join(
        struct.pack(">HHHH", *p, a) for p, a in zip(px, (65535, 0), strict=True)
    )
    d = decode_image(_raw_png(2, 1, 16, 6, rows))
    assert d.rgb.tolist() == [[[255, 0, 128], [0, 255, 1]]]
    assert d.alpha is not None
    assert d.alpha.tolist() == [[255, 0]]


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [
        ((0, 255, 255, 0), (255, 0, 0)),
        ((255, 0, 255, 0), (0, 255, 0)),
        ((0, 0, 0, 128), (127, 127, 127)),
    ],
)
def test_decode_cmyk_jpeg(cmyk, rgb) -> None:
    data = _save(Image.new("CMYK", (16, 16), cmyk), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    d = decode_image(data)
    _assert_well_formed(d, 16, 16)
    assert d.format == "JPEG"
    assert np.abs(d.rgb.astype(int) - rgb).max() <= 8


def test_decode_animated_webp_and_png_give_first_frame() -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in ("red", "lime", "blue")]
    for fmt, options in (("WEBP", {"lossless": True}), ("PNG", {})):
        data = _save(
            frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options
        )
        assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
        d = decode_image(data)
        _assert_well_formed(d, 6, 8)
        assert d.format == fmt
        np.testing.assert_array_equal(d.rgb, np.broadcast_to([255, 0, 0], (6, 8, 3)))


@pytest.mark.parametrize(
    ("orientation", "shape", "expected"),
    [
        (1, (32, 64), ["red", "green", "blue", "white"]),
        (3, (32, 64), ["white", "blue", "green", "red"]),  # rotate 180
        (6, (64, 32), ["blue", "red", "white", "green"]),  # rotate 90 clockwise
        (8, (64, 32), ["green", "white", "red", "blue"]),  # rotate 90 anticlockwise
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_decode_applies_exif_orientation(orientation, shape, expected, fmt) -> None:
    img = _quadrants()
    exif = img.getexif()
    exif[0x0112] = orientation
    d = decode_image(_save(img, fmt, exif=exif))
    _assert_well_formed(d, *shape)
    assert _quadrant_names(d.rgb) == expected


# --------------------------------------------------------------------------- decode: limits


def test_empty_input() -> None:
    with pytest.raises(InputError, match=r"^empty input"):
        decode_image(b"")


def test_byte_limit() -> None:
    data = _save(Image.new("RGB", (8, 8)), "PNG")
    decode_image(data, ImageLimits(max_bytes=len(data)))  # exactly at the limit is fine
    with pytest.raises(
        InputTooLargeError, match=rf"input is {len(data)} bytes.*limit of {len(data) - 1} bytes"
    ):
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))


def test_pixel_limit() -> None:
    data = _save(Image.new("RGB", (20, 10)), "PNG")
    decode_image(data, ImageLimits(max_pixels=200))
    with pytest.raises(
        InputTooLargeError, match=r"20x10 pixels \(0\.0 MP\).*limit.*\(199 pixels\)"
    ):
        decode_image(data, ImageLimits(max_pixels=199))


def test_side_limit() -> None:
    data = _save(Image.new("RGB", (20, 10)), "JPEG")
    decode_image(data, ImageLimits(max_side=20))
    with pytest.raises(InputTooLargeError, match=r"longest side of 20 pixels.*limit of 19 pixels"):
        decode_image(data, ImageLimits(max_side=19))


@pytest.fixture
def load_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records every ImageFile.load call, to prove pixels were never decoded."""
    calls: list[object] = []
    original = ImageFile.ImageFile.load

    def spy(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def test_header_bomb_30000x30000_is_refused_before_decoding(load_calls) -> None:
    # 900 MP is above twice Pillow's own limit, so Pillow raises while opening.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputTooLargeError, match=r"30000x30000 pixels \(900\.0 MP\).*40\.0 MP"):
            decode_image(_header_only_png(30000, 30000))
    assert load_calls == []


def test_header_over_our_limit_but_under_pillows_is_refused(load_calls) -> None:
    with pytest.raises(InputTooLargeError, match=r"10000x5000 pixels \(50\.0 MP\).*40\.0 MP"):
        decode_image(_header_only_png(10000, 5000))
    with pytest.raises(InputTooLargeError, match=r"longest side of 20000 pixels.*16384"):
        decode_image(_header_only_png(20000, 100))
    assert load_calls == []


def test_pillow_bomb_warning_is_reported_not_leaked(load_calls) -> None:
    # 100 MP passes these generous limits but triggers Pillow's DecompressionBombWarning.
    limits = ImageLimits(max_pixels=150_000_000, max_side=20000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputTooLargeError, match=r"10000x10000 pixels \(100\.0 MP\)"):
            decode_image(_header_only_png(10000, 10000), limits)
    assert load_calls == []


def test_webp_header_is_checked_before_pillow_allocates() -> None:
    # VP8X header declaring a 9000x9000 canvas; nothing else is needed.
    vp8x = b"\x00\x00\x00\x00" + (8999).to_bytes(3, "little") + (8999).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    with pytest.raises(InputTooLargeError, match=r"9000x9000 pixels \(81\.0 MP\)"):
        decode_image(data)


def test_text_file_is_not_an_image() -> None:
    with pytest.raises(
        InputError, match=r"not a recognised image.*expected JPEG, PNG or WebP"
    ) as e:
        decode_image(b"hello, this is a text file\n")
    assert not isinstance(e.value, InputTooLargeError)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_types_are_unsupported(fmt: str) -> None:
    data = _save(Image.new("RGB", (8, 8), "red"), fmt)
    with pytest.raises(
        InputError, match=rf"unsupported image type {fmt}; expected JPEG, PNG or WebP"
    ):
        decode_image(data)


def test_truncated_jpeg() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _save(Image.fromarray(noise), "JPEG", quality=90)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="JPEG data is truncated or corrupt"):
            decode_image(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png_and_damaged_header() -> None:
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = _save(Image.fromarray(noise), "PNG")
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])
    with pytest.raises(InputError, match="PNG data is truncated or corrupt"):
        decode_image(data[:20])
    bad_crc = bytearray(data)
    bad_crc[29] ^= 0xFF  # IHDR checksum
    with pytest.raises(InputError, match=r"PNG data is truncated or corrupt \(unreadable header\)"):
        decode_image(bytes(bad_crc))


def test_errors_are_one_line() -> None:
    noise = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    data = _save(Image.fromarray(noise), "JPEG")
    for bad in (b"", b"text", data[:200], _header_only_png(30000, 30000)):
        with pytest.raises(InputError) as e:
            decode_image(bad)
        assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- read_image


def test_read_image(tmp_path: Path) -> None:
    a = _gradient_rgb()
    path = tmp_path / "photo.unknown-extension"  # the name plays no part
    path.write_bytes(_save(Image.fromarray(a), "PNG"))
    d = read_image(path)
    assert d.format == "PNG"
    np.testing.assert_array_equal(d.rgb, a)
    np.testing.assert_array_equal(read_image(str(path)).rgb, a)


def test_read_image_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    with pytest.raises(InputError, match=re.escape(f"{missing}: no such file")):
        read_image(missing)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}: is a directory")):
        read_image(tmp_path)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=re.escape(f"{empty}: empty input")):
        read_image(empty)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InputError, match=re.escape(f"{text}: not a recognised image")):
        read_image(text)


def test_read_image_checks_size_before_reading(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 101)

    def no_open(*args, **kwargs):
        raise AssertionError("the file must not be opened")

    monkeypatch.setattr(imageio, "open", no_open, raising=False)
    with pytest.raises(
        InputTooLargeError, match=re.escape(f"{path}: input is 101 bytes") + ".*limit of 100 bytes"
    ):
        read_image(path, ImageLimits(max_bytes=100))


# --------------------------------------------------------------------------- parse_color


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("#0f0", (0, 255, 0)),
        ("#00ff00", (0, 255, 0)),
        ("#12AbEf", (0x12, 0xAB, 0xEF)),
        ("green", (0, 128, 0)),
        ("White", (255, 255, 255)),
        ("0,255,0", (0, 255, 0)),
        (" 10, 20 ,30 ", (10, 20, 30)),
    ],
)
def test_parse_color(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_color(text) == rgb


@pytest.mark.parametrize(
    "text", ["", "#12", "#12345", "#gggggg", "0,256,0", "1,2", "1,2,3,4", "nocolour"]
)
def test_parse_color_rejects(text: str) -> None:
    with pytest.raises(InputError, match="invalid colour"):
        parse_color(text)


# --------------------------------------------------------------------------- resize_cover


def _thirds(h: int, w: int, vertical: bool) -> np.ndarray:
    """Red, green, blue thirds side by side (or stacked when vertical)."""
    a = np.zeros((h, w, 3), np.uint8)
    n = h if vertical else w
    for i, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        sl = slice(i * n // 3, (i + 1) * n // 3)
        if vertical:
            a[sl] = c
        else:
            a[:, sl] = c
    return a


def test_resize_cover_crops_the_centre_of_a_wide_source() -> None:
    out = resize_cover(_thirds(90, 270, vertical=False), (40, 40))
    assert out.shape == (40, 40, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    # Only the green middle third survives (edges may ring slightly).
    assert np.abs(out[:, 4:-4].astype(int) - (0, 255, 0)).max() <= 3


def test_resize_cover_crops_the_centre_of_a_tall_source_and_upscales() -> None:
    out = resize_cover(_thirds(300, 10, vertical=True), (50, 200))
    assert out.shape == (50, 200, 3)
    assert np.abs(out[4:-4].astype(int) - (0, 255, 0)).max() <= 3


def test_resize_cover_same_size_is_a_copy_and_bad_input_is_refused() -> None:
    a = _gradient_rgb()
    out = resize_cover(a, a.shape[:2])
    np.testing.assert_array_equal(out, a)
    assert out is not a
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        resize_cover(a.astype(np.float32), (4, 4))
    with pytest.raises(ValueError, match="size must be a positive"):
        resize_cover(a, (0, 4))


# --------------------------------------------------------------------------- encode_output


def _outputs(h: int = 6, w: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    alpha = rng.random((h, w), dtype=np.float32)
    alpha[0, 0], alpha[0, 1] = 0.0, 1.0
    foreground = rng.random((h, w, 3), dtype=np.float32)
    return alpha, foreground


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_encode_rgba(fmt: str) -> None:
    alpha, fg = _outputs()
    im = _open(encode_output("rgba", alpha, fg, fmt))
    assert im.format == fmt.upper()
    assert im.mode == "RGBA"
    assert im.size == (8, 6)
    arr = np.asarray(im)
    np.testing.assert_array_equal(arr[..., 3], to_uint8(alpha))
    np.testing.assert_array_equal(arr[..., :3], to_uint8(fg))  # lossless, exact colours


def test_encode_rgba_refuses_jpeg() -> None:
    alpha, fg = _outputs()
    with pytest.raises(InputError, match="jpeg cannot carry alpha; use png or webp"):
        encode_output("rgba", alpha, fg, "jpeg")


def test_encode_alpha_png_is_8bit_greyscale() -> None:
    alpha, fg = _outputs()
    im = _open(encode_output("alpha", alpha, fg))
    assert im.format == "PNG"
    assert im.mode == "L"
    assert im.size == (8, 6)
    np.testing.assert_array_equal(np.asarray(im), to_uint8(alpha))


def test_encode_alpha_webp_is_lossless() -> None:
    alpha, fg = _outputs()
    im = _open(encode_output("alpha", alpha, fg, "webp"))
    assert im.format == "WEBP"
    np.testing.assert_array_equal(np.asarray(im.convert("L")), to_uint8(alpha))


def test_encode_foreground_is_premultiplied() -> None:
    alpha, fg = _outputs()
    im = _open(encode_output("foreground", alpha, fg))
    assert im.mode == "RGB"
    assert im.size == (8, 6)
    arr = np.asarray(im)
    np.testing.assert_array_equal(arr, to_uint8(fg * alpha[..., None]))
    assert arr[0, 0].tolist() == [0, 0, 0]  # alpha 0 -> black


@pytest.mark.parametrize("fmt", ["png", "webp", "jpeg"])
def test_encode_composite_green_over_red_at_half_alpha(fmt: str) -> None:
    alpha = np.full((16, 16), 0.5, np.float32)
    fg = np.zeros((16, 16, 3), np.float32)
    fg[..., 1] = 1.0
    im = _open(encode_output("composite", alpha, fg, fmt, background=(255, 0, 0)))
    assert im.format == fmt.upper()
    assert im.mode == "RGB"
    assert im.size == (16, 16)
    tolerance = 0 if fmt == "png" else 6
    assert np.abs(np.asarray(im).astype(int) - (128, 128, 0)).max() <= tolerance


def test_encode_composite_default_background_is_white() -> None:
    alpha, fg = _outputs()
    arr = np.asarray(_open(encode_output("composite", alpha, fg)))
    assert arr[0, 0].tolist() == [255, 255, 255]  # alpha 0
    np.testing.assert_array_equal(arr[0, 1], to_uint8(fg[0, 1]))  # alpha 1
    expected = to_uint8(fg * alpha[..., None] + (1 - alpha[..., None]))
    assert np.abs(arr.astype(int) - expected).max() <= 1


def test_encode_composite_over_background_image_cover_resizes() -> None:
    alpha = np.zeros((20, 20), np.float32)  # fully transparent: output = background
    fg = np.zeros((20, 20, 3), np.float32)
    bg = _thirds(50, 150, vertical=False)  # wider than the output: centre third kept
    arr = np.asarray(_open(encode_output("composite", alpha, fg, background=bg)))
    assert arr.shape == (20, 20, 3)
    assert np.abs(arr[:, 3:-3].astype(int) - (0, 255, 0)).max() <= 3
    np.testing.assert_array_equal(arr, resize_cover(bg, (20, 20)))


def test_encode_validates_arrays_and_options() -> None:
    alpha, fg = _outputs()
    with pytest.raises(ValueError, match="foreground must have shape"):
        encode_output("rgba", alpha, fg[:, :-1])
    with pytest.raises(ValueError, match=r"alpha must have shape \(H, W\)"):
        encode_output("rgba", alpha[..., None], fg)
    with pytest.raises(ValueError, match="alpha must be a float array"):
        encode_output("alpha", to_uint8(alpha), fg)
    with pytest.raises(InputError, match="unknown output kind 'mask'"):
        encode_output("mask", alpha, fg)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown output format 'gif'"):
        encode_output("alpha", alpha, fg, "gif")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="background must be"):
        encode_output("composite", alpha, fg, background=(300, 0, 0))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        encode_output("composite", alpha, fg, background=np.zeros((4, 4, 3), np.float32))


def test_encode_webp_refuses_sides_over_16383() -> None:
    alpha = np.zeros((1, 16384), np.float32)
    fg = np.zeros((1, 16384, 3), np.float32)
    with pytest.raises(InputError, match=r"webp cannot store.*16384x1.*use png"):
        encode_output("alpha", alpha, fg, "webp")


def test_default_format_and_extension() -> None:
    for kind in ("rgba", "alpha", "foreground", "composite"):
        assert default_format(kind) == "png"
    assert extension("png") == ".png"
    assert extension("webp") == ".webp"
    assert extension("jpeg") == ".jpg"
    with pytest.raises(InputError):
        extension("bmp")  # type: ignore[arg-type]
