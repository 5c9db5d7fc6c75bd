"""Reading a matting request's bytes: a raw image body, or multipart with an
`image` file (and optional `background` and `plate` files).

The body is read in chunks against the byte limit, so an oversized upload is
refused after `limit` bytes instead of being held in memory whole. Content
types are only used to tell raw from multipart: the image type itself is
sniffed from the bytes when decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from matting.errors import InputError, InputTooLargeError, UnsupportedTypeError

RAW_TYPES = ("image/jpeg", "image/png", "image/webp", "application/octet-stream")
FORM_FIELDS = ("image", "background", "plate")


@dataclass(frozen=True)
class Payload:
    image: bytes
    background: bytes | None = None  # an image to composite over
    plate: bytes | None = None  # the background plate, for background-guided models


def _too_large(limit: int) -> InputTooLargeError:
    return InputTooLargeError(f"request body is larger than the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to answer; an InputError keeps it out of the 5xx counts
        # and the error log.
        raise InputError(f"the client went away after {size} bytes of the body") from None
    return b"".join(chunks)


def _replay(request: Request, body: bytes) -> Request:
    """A request over the same scope whose body is `body` (already read)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


async def _form_payload(request: Request, body: bytes) -> Payload:
    try:
        form = await _replay(request, body).form(max_files=len(FORM_FIELDS), max_fields=16)
    except Exception as e:  # python-multipart and Starlette raise several types
        raise InputError(f"malformed multipart body: {getattr(e, 'detail', e)}") from None
    try:
        unknown = sorted(set(form.keys()) - set(FORM_FIELDS))
        if unknown:
            raise InputError(f"unknown form fields {unknown}; expected {list(FORM_FIELDS)}")
        parts: dict[str, bytes | None] = {}
        for name in FORM_FIELDS:
            values = form.getlist(name)
            if len(values) > 1:
                raise InputError(f"form field {name!r} is given {len(values)} times")
            value = values[0] if values else None
            if value is not None and not isinstance(value, UploadFile):
                raise InputError(f"form field {name!r} must be a file upload, not text")
            parts[name] = None if value is None else await value.read()
    finally:
        await form.close()
    image = parts["image"]
    if image is None:
        raise InputError("multipart body has no 'image' file field")
    if not image:
        raise InputError("the 'image' file is empty (0 bytes)")
    return Payload(image, parts["background"] or None, parts["plate"] or None)


async def read_payload(request: Request, limit: int) -> Payload:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # Other image/* types pass: sniffing the bytes names them in the error.
    accepted = ctype in ("", "multipart/form-data", *RAW_TYPES) or ctype.startswith("image/")
    if not accepted:
        raise UnsupportedTypeError(
            f"content type {ctype!r} is not accepted: send the image bytes "
            f"({', '.join(RAW_TYPES)}) or multipart/form-data with an 'image' file"
        )
    body = await read_body(request, limit)
    if not body:
        raise InputError("empty body: send an image (JPEG, PNG or WebP)")
    if ctype == "multipart/form-data":
        return await _form_payload(request, body)
    return Payload(body)
