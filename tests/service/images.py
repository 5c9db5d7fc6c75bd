"""Request bodies for the service tests: real encoded images, odd ones and bad ones."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from export.parity import scene_image


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def photo(height: int = 96, width: int = 128, seed: int = 0, fmt: str = "JPEG") -> bytes:
    rgb = scene_image(np.random.default_rng(seed), height, width)
    return (
        encode(Image.fromarray(rgb), fmt, quality=92)
        if fmt == "JPEG"
        else encode(Image.fromarray(rgb), fmt)
    )


def greyscale_png(height: int = 80, width: int = 100) -> bytes:
    grey = np.linspace(0, 255, height * width).reshape(height, width).astype(np.uint8)
    return encode(Image.fromarray(grey, "L"), "PNG")


def cmyk_jpeg(height: int = 64, width: int = 96) -> bytes:
    return encode(Image.new("CMYK", (width, height), (0, 255, 255, 0)), "JPEG", quality=95)


def exif_rotated_jpeg(height: int = 64, width: int = 96, orientation: int = 6) -> bytes:
    """Stored as width x height; orientation 6 means "rotate 90 degrees clockwise"."""
    img = Image.fromarray(scene_image(np.random.default_rng(3), height, width))
    exif = img.getexif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", exif=exif, quality=92)


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    body = tag + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid PNG header that claims width x height, with a one-byte image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00"))
        + _png_chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    data = photo()
    return data[: len(data) // 2]


def gif() -> bytes:
    return encode(Image.new("RGB", (8, 8), "red"), "GIF")
