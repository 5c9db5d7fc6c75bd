"""Small generated images and clips for the page tests (nothing read from disk)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def disc_on_gradient(height: int = 120, width: int = 160) -> bytes:
    """A warm disc on a cool left-to-right gradient, as PNG."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.empty((height, width, 3), np.float32)
    rgb[..., 0] = 40 + 60 * x / width
    rgb[..., 1] = 90 + 80 * y / height
    rgb[..., 2] = 200 - 50 * x / width
    disc = (x - width * 0.45) ** 2 + (y - height * 0.55) ** 2 < (min(height, width) * 0.3) ** 2
    rgb[disc] = (230, 120, 60)
    return png(rgb.round().astype(np.uint8))


def solid(color: tuple[int, int, int], height: int = 50, width: int = 70) -> bytes:
    return png(np.broadcast_to(np.array(color, np.uint8), (height, width, 3)).copy())


def decode(data: bytes) -> np.ndarray:
    """An encoded image as an array (H, W, C) in its own mode."""
    return np.asarray(Image.open(io.BytesIO(data)))


def _clip(fmt: str, codec: str, pix_fmt: str, frames: int, width: int, height: int) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream: Any = container.add_stream(codec, rate=8)  # a video stream
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            rgba = np.zeros((height, width, 4), np.uint8)
            rgba[..., 0] = np.linspace(30, 220, width, dtype=np.float32)[None].astype(np.uint8)
            rgba[..., 1] = (20 * i) % 256
            rgba[..., 2] = 120
            rgba[..., 3] = 255
            left = width // 3 + (2 * i) % (width // 3)
            rgba[height // 4 : 3 * height // 4, left : left + width // 3, :3] = (240, 200, 80)
            rgba[: height // 5, :, 3] = 0
            alpha = pix_fmt.startswith("yuva")
            frame = av.VideoFrame.from_ndarray(
                rgba if alpha else np.ascontiguousarray(rgba[..., :3]),
                format="rgba" if alpha else "rgb24",
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def mp4_clip(frames: int = 8, width: int = 96, height: int = 64) -> bytes:
    """A short H.264 MP4 (what a phone would upload)."""
    return _clip("mp4", "libx264", "yuv420p", frames, width, height)


def webm_alpha_clip(frames: int = 8, width: int = 96, height: int = 64) -> bytes:
    """A short VP9 WebM with alpha (what the service answers by default)."""
    return _clip("webm", "libvpx-vp9", "yuva420p", frames, width, height)
