"""Receiving a video upload: streamed to storage (never whole in memory), hashed on the way
for idempotency, then checked with PyAV against the limits before a job is queued.

The body is the raw file, or multipart/form-data with the file field `video` (and, for
composites, an image `background`). The
container is sniffed from the first bytes; the file name and type the client sends are
only used to tell raw from multipart.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from matting.errors import InputError, InputTooLargeError, UnsupportedTypeError
from matting.imageio import ImageLimits, decode_image
from matting.videoio import VideoInfo, probe, read_frames
from service.jobs.storage import Storage, new_name

VIDEO_RAW_TYPES = (
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
    "video/x-msvideo",
    "application/octet-stream",
)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class VideoLimits:
    max_bytes: int
    max_duration_s: float
    max_pixels: int


@dataclass(frozen=True)
class Upload:
    name: str  # the storage object
    sha256: str
    size: int
    background: bytes | None = None  # multipart `background`: an image for composites


def sniff_extension(head: bytes) -> str:
    """A container's extension from its first bytes (a hint for FFmpeg's probe)."""
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return ".mkv"  # Matroska and WebM
    if head[4:8] == b"ftyp":
        return ".mov" if head[8:10] == b"qt" else ".mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi"
    raise UnsupportedTypeError(
        "the upload is not an MP4, MOV, WebM, MKV or AVI file (judged by its first bytes)"
    )


def _too_large(limit: int) -> InputTooLargeError:
    return InputTooLargeError(f"the video is larger than the limit of {limit} bytes")


async def _chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise InputError(f"the client went away after {size} bytes of the upload") from None


async def _store(chunks: AsyncIterator[bytes], storage: Storage) -> Upload:
    digest, size = hashlib.sha256(), 0
    first = b""
    async for chunk in chunks:  # the first chunk names the container
        first = chunk
        break
    if not first:
        raise InputError("empty body: send a video file")
    name = new_name(sniff_extension(first[:16]))
    with storage.writer(name) as f:
        for piece in (first,):
            f.write(piece)
            digest.update(piece)
            size += len(piece)
        async for chunk in chunks:
            f.write(chunk)  # a local disk write of 1 MiB; not worth a thread hop
            digest.update(chunk)
            size += len(chunk)
    return Upload(name, digest.hexdigest(), size)


async def receive_video(request: Request, storage: Storage, limit: int) -> Upload:
    """Store the request's video; InputError (400/413/415) for what cannot be a video."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    if ctype == "multipart/form-data":
        return await _receive_form(request, storage, limit)
    if ctype and ctype not in VIDEO_RAW_TYPES and not ctype.startswith("video/"):
        raise UnsupportedTypeError(
            f"content type {ctype!r} is not accepted: send the video bytes "
            "(video/*) or multipart/form-data with a 'video' file"
        )
    return await _store(_chunks(request, limit), storage)


async def _receive_form(request: Request, storage: Storage, limit: int) -> Upload:
    chunks = _chunks(request, limit)

    async def receive() -> Message:  # the same byte limit applies to a multipart body
        try:
            return {"type": "http.request", "body": await anext(chunks), "more_body": True}
        except StopAsyncIteration:
            return {"type": "http.request", "body": b"", "more_body": False}

    limited = Request(request.scope, receive)
    try:
        form = await limited.form(max_files=2, max_fields=4)
    except InputError:
        raise
    except Exception as e:  # python-multipart and Starlette raise several types
        raise InputError(f"malformed multipart body: {getattr(e, 'detail', e)}") from None
    try:
        unknown = sorted(set(form.keys()) - {"video", "background"})
        if unknown:
            raise InputError(f"unknown form fields {unknown}; expected 'video' (and 'background')")
        video = form.get("video")
        if video is None or isinstance(video, str):
            raise InputError("multipart body has no 'video' file field")
        backdrop = form.get("background")
        if isinstance(backdrop, str):
            raise InputError("the 'background' field must be an image file")
        background = None if backdrop is None else await backdrop.read()

        async def parts() -> AsyncIterator[bytes]:
            while piece := await video.read(_CHUNK):
                yield piece

        upload = await _store(parts(), storage)
        return Upload(upload.name, upload.sha256, upload.size, background)
    finally:
        await form.close()


def store_background(storage: Storage, data: bytes, limits: ImageLimits) -> tuple[str, str]:
    """Decode a composite's background image (JPEG, PNG or WebP, within the image limits) and
    store it as PNG. Returns (storage name, sha256 of the bytes sent)."""
    image = decode_image(data, limits)
    name = new_name(".png")
    with storage.writer(name) as f:
        Image.fromarray(image.rgb).save(f, format="PNG", compress_level=1)
    return name, hashlib.sha256(data).hexdigest()


def check_video(path: Path, limits: VideoLimits) -> VideoInfo:
    """Probe a stored upload and decode its first frame (a missing decoder shows there)."""
    info = probe(path)
    pixels = info.width * info.height
    if pixels > limits.max_pixels:
        raise InputTooLargeError(
            f"{info.width}x{info.height} frames are over the limit of {limits.max_pixels} pixels"
        )
    if info.duration_s > limits.max_duration_s:
        raise InputTooLargeError(
            f"the video lasts {info.duration_s:.0f} s, over the limit of "
            f"{limits.max_duration_s:.0f} s"
        )
    if info.frame_count < 1:
        raise InputError("the video has no frames")
    try:
        next(read_frames(path, 0, 1))
    except StopIteration:
        raise InputError("the video's first frame cannot be decoded") from None
    except InputError as e:
        raise UnsupportedTypeError(f"the video cannot be decoded: {e}") from None
    return info


def discard(storage: Storage, name: str) -> None:
    with contextlib.suppress(OSError):
        storage.delete(name)
