"""One matting request end to end: decode (worker thread), batch and infer,
encode (worker thread). The event loop only moves bytes and awaits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio
import numpy as np
from PIL import Image

from matting.errors import InputError
from matting.imageio import (
    ImageLimits,
    OutputFormat,
    OutputKind,
    decode_image,
    encode_output,
    parse_color,
    resize_cover,
)
from service.batcher import Batcher
from service.request import Payload

MEDIA_TYPES: dict[str, str] = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}


@dataclass(frozen=True)
class MatteOptions:
    output: OutputKind = "rgba"
    format: OutputFormat = "png"
    background_color: tuple[int, int, int] | None = None
    max_side: int | None = None

    @classmethod
    def parse(
        cls,
        output: OutputKind,
        fmt: OutputFormat | None,
        background_color: str | None,
        max_side: int | None,
    ) -> MatteOptions:
        """Checked before any pixel is decoded, so a bad combination costs nothing."""
        fmt = fmt or "png"
        if output == "rgba" and fmt == "jpeg":
            raise InputError("jpeg cannot carry alpha; use png or webp for output=rgba")
        color = None
        if background_color is not None:
            if output != "composite":
                raise InputError("background_color applies only to output=composite")
            color = parse_color(background_color)
        return cls(output, fmt, color, max_side)


@dataclass(frozen=True)
class Prepared:
    image: np.ndarray  # (H, W, 3) uint8
    plate: np.ndarray | None
    background: np.ndarray | None  # composite backdrop, any size


@dataclass
class MatteOutput:
    data: bytes
    media_type: str
    width: int
    height: int
    batch_size: int
    refined_patches: int
    timings_ms: dict[str, float] = field(default_factory=dict)


def fit_within(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (H, W, 3) uint8 so that its long side is at most max_side."""
    h, w = rgb.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def prepare(
    payload: Payload, options: MatteOptions, limits: ImageLimits, needs_plate: bool
) -> Prepared:
    """Decode and check every image of a request (CPU work: run off the loop)."""

    def decode(data: bytes, what: str) -> np.ndarray:
        try:
            return decode_image(data, limits).rgb
        except InputError as e:
            raise type(e)(f"{what}: {e}") from None

    image = fit_within(decode(payload.image, "image"), options.max_side)
    plate = None
    if needs_plate:
        if payload.plate is None:
            raise InputError("this model is background-guided: send the plate as 'plate'")
        plate = decode(payload.plate, "plate")
        if plate.shape != image.shape:
            plate = resize_cover(plate, image.shape[:2])
    elif payload.plate is not None:
        raise InputError("this model takes no background plate; leave 'plate' out")
    background = None
    if payload.background is not None:
        if options.output != "composite":
            raise InputError("a background image applies only to output=composite")
        background = decode(payload.background, "background")
    return Prepared(image, plate, background)


def encode(
    options: MatteOptions, alpha: np.ndarray, fg: np.ndarray, prep: Prepared, png_level: int
) -> bytes:
    backdrop = prep.background if prep.background is not None else options.background_color
    return encode_output(options.output, alpha, fg, options.format, backdrop, png_level)


async def run_matte(
    batcher: Batcher,
    payload: Payload,
    options: MatteOptions,
    limits: ImageLimits,
    deadline_s: float,
    limiters: tuple[anyio.CapacityLimiter, anyio.CapacityLimiter],
    png_level: int = 6,
) -> MatteOutput:
    start = time.perf_counter()
    needs_plate = batcher.backend.info.model.background_input
    prep = await anyio.to_thread.run_sync(
        prepare, payload, options, limits, needs_plate, limiter=limiters[0]
    )
    decoded = time.perf_counter()
    left = deadline_s - (decoded - start)
    result = await batcher.submit(prep.image, prep.plate, deadline_s=left)
    inferred = time.perf_counter()
    data = await anyio.to_thread.run_sync(
        encode, options, result.alpha, result.foreground, prep, png_level, limiter=limiters[1]
    )
    done = time.perf_counter()
    h, w = result.alpha.shape
    return MatteOutput(
        data=data,
        media_type=MEDIA_TYPES[options.format],
        width=w,
        height=h,
        batch_size=result.batch_size,
        refined_patches=result.num_patches,
        timings_ms={
            "decode": (decoded - start) * 1e3,
            "queue": result.queue_wait_s * 1e3,
            "infer": result.inference_s * 1e3,
            "encode": (done - inferred) * 1e3,
            "total": (done - start) * 1e3,
        },
    )
